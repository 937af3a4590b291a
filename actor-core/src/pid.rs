//! Process identifiers that say which node, and which incarnation of it, an actor lives on.

use std::fmt;

use crate::node_name::NodeName;

/// The identity of an actor anywhere in a cluster: its node, the node's *creation* and a
/// number unique on that node.
///
/// The creation is chosen when a [`System`](crate::System) starts and changes every time a
/// node with the same name starts again, so a `Pid` kept from before a restart never reaches
/// a new actor that happens to reuse its number: it answers `NoProc`, as on the BEAM.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use actor_core::{System, SystemConfig};
/// let system = System::start(SystemConfig::named("a@localhost")?).await?;
/// let pid = system.pid_of(&system.root().get_cell());
/// assert_eq!(pid.node().as_str(), "a@localhost");
/// assert_eq!(pid.creation(), system.creation());
/// # system.shutdown().await; Ok(()) }
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Pid {
    node: NodeName,
    creation: u32,
    id: u64,
}

impl Pid {
    /// Builds a pid from its parts.
    pub fn new(node: NodeName, creation: u32, id: u64) -> Self {
        Self { node, creation, id }
    }

    /// The node the actor lives on.
    pub fn node(&self) -> &NodeName {
        &self.node
    }

    /// The creation of that node when the actor was started.
    pub fn creation(&self) -> u32 {
        self.creation
    }

    /// The actor's number on its node.
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{}.{}@{}>", self.id, self.creation, self.node)
    }
}

impl fmt::Debug for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
