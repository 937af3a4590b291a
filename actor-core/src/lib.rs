//! nodus inside one node: no sockets.
//!
//! (Work in progress: the registry, supervisors, `TaskSupervisor` and function registry land
//! in the next commits.)

pub mod codec;
mod node_name;

pub use node_name::{NameMode, NodeName, NodeNameError};
