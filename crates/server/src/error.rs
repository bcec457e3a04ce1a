//! Why a server did not start ([`StartError`]), typed so that a caller can
//! act on the cause: the desktop app's embedded server moves to the next
//! port on [`StartError::AddrInUse`] and reports anything else.

use crate::ConfigError;
use crate::cluster::BusError;
use crate::store::StoreError;
use std::net::SocketAddr;

/// A server that did not start. Each message says what to change; the
/// underlying error is part of the message (not a separate `source`), so
/// printing the error alone says everything.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Another socket already listens on `addr`.
    #[error("cannot listen on {addr}{flag}: the address is already in use (another server holds it)")]
    AddrInUse {
        /// The address asked for.
        addr: SocketAddr,
        /// The option that named it (` (--metrics-listen)`, or empty for `--listen`).
        flag: &'static str,
    },
    /// `addr` could not be bound for another reason (no such interface,
    /// a privileged port, ...).
    #[error("cannot listen on {addr}{flag}: {error}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The option that named it, as in [`StartError::AddrInUse`].
        flag: &'static str,
        /// What the OS said.
        error: std::io::Error,
    },
    /// The store could not be opened or read at start-up.
    #[error("{step}: {error}")]
    Store {
        /// What the server was doing, e.g. `opening the database in /var/lib/courier`.
        step: String,
        /// What the store said.
        error: StoreError,
    },
    /// A bound socket could not report its address.
    #[error("the listening socket failed: {0}")]
    Listener(std::io::Error),
    /// Redis could not be reached (cluster mode).
    #[error("connecting to Redis (--redis / COURIER_REDIS): {0}")]
    Redis(BusError),
}

impl StartError {
    /// Classifies a failed bind of `addr` (named by `flag`).
    pub(crate) fn bind(addr: SocketAddr, flag: &'static str, error: std::io::Error) -> StartError {
        if error.kind() == std::io::ErrorKind::AddrInUse {
            StartError::AddrInUse { addr, flag }
        } else {
            StartError::Bind { addr, flag, error }
        }
    }

    /// A store failure while `step`.
    pub(crate) fn store(step: impl Into<String>) -> impl FnOnce(StoreError) -> StartError {
        let step = step.into();
        move |error| StartError::Store { step, error }
    }
}
