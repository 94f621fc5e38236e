//! The verbs: each takes a validated `Config` part and returns what it did; `cli` logs it.

pub mod backup;
pub mod restore;
