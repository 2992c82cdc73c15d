//! Route table and AWS endpoint knowledge.

pub mod endpoint;
