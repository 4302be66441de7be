//! The commands that talk to a running server over its HTTP API (and, for
//! `subscribe`, over the wire protocol).

pub mod call;
pub mod databases;
pub mod identity;
pub mod logs;
pub mod publish;
pub mod sql;
pub mod subscribe;
