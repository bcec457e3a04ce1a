//! The call negotiation machine (protocol §12), sans IO.
