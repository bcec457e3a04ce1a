//! Helpers of the call tests (`calls_*.rs`): the network namespace each
//! case runs in, the servers and CLI processes of a call, and the
//! analysis of what a recording sounds like.

#![allow(dead_code)]

pub mod netns;
pub mod peers;
pub mod tone;
