//! Where a message or a task goes: a name, a name on a node, or a pid.

use std::{fmt, sync::Arc};

use crate::{node_name::NodeName, pid::Pid};

/// The target of [`System::cast`](crate::System::cast), [`System::call`](crate::System::call)
/// and the [`TaskSupervisor`](crate::TaskSupervisor) functions.
///
/// As in Erlang, a destination is a registered name on this node, a `{name, node}` pair, or a
/// pid. A `(name, node)` pair naming this node is the same as the bare name; any other node
/// is reached through the node's transport (and answers `NoConnection` when there is none).
///
/// ```
/// use actor_core::Destination;
/// let local: Destination = "Chat.TaskSupervisor".into();
/// let remote: Destination = ("Chat.TaskSupervisor", "kate@localhost").into();
/// assert_eq!(remote.node().map(|n| n.as_str()), Some("kate@localhost"));
/// assert_eq!(local.node(), None);
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Destination {
    /// A name registered on this node.
    Name(Arc<str>),
    /// A name registered on the given node (which may be this one).
    Remote {
        /// The registered name.
        name: Arc<str>,
        /// The node it is registered on.
        node: NodeName,
    },
    /// A specific actor.
    Pid(Pid),
    /// A name registered cluster-wide, as `{:global, name}`: resolved to its pid by the
    /// node's global name table when the message is sent (the node installs the table; a
    /// system without one, or a name nobody holds, answers `NoProc`).
    Global(Arc<str>),
}

impl Destination {
    /// A name registered cluster-wide, as `{:global, name}`.
    ///
    /// ```
    /// use actor_core::Destination;
    /// let leader = Destination::global("leader");
    /// assert_eq!(leader.name(), Some("leader"));
    /// assert_eq!(leader.node(), None); // known only once resolved
    /// assert_eq!(leader.to_string(), r#"{:global, "leader"}"#);
    /// ```
    pub fn global(name: impl Into<Arc<str>>) -> Self {
        Destination::Global(name.into())
    }

    /// The node named by this destination, if it names one.
    pub fn node(&self) -> Option<&NodeName> {
        match self {
            Destination::Name(_) | Destination::Global(_) => None,
            Destination::Remote { node, .. } => Some(node),
            Destination::Pid(pid) => Some(pid.node()),
        }
    }

    /// The registered name, if this destination is a name.
    pub fn name(&self) -> Option<&str> {
        match self {
            Destination::Name(name)
            | Destination::Remote { name, .. }
            | Destination::Global(name) => Some(name),
            Destination::Pid(_) => None,
        }
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Name(name) => write!(f, "{name:?}"),
            Destination::Remote { name, node } => write!(f, "{{{name:?}, {node}}}"),
            Destination::Pid(pid) => write!(f, "{pid}"),
            Destination::Global(name) => write!(f, "{{:global, {name:?}}}"),
        }
    }
}

impl fmt::Debug for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl From<&str> for Destination {
    fn from(name: &str) -> Self {
        Destination::Name(name.into())
    }
}

impl From<String> for Destination {
    fn from(name: String) -> Self {
        Destination::Name(name.into())
    }
}

impl From<&String> for Destination {
    fn from(name: &String) -> Self {
        Destination::Name(name.as_str().into())
    }
}

/// Cheap: names are shared, so reusing one `Destination` in a hot loop does not allocate.
impl From<&Destination> for Destination {
    fn from(dest: &Destination) -> Self {
        dest.clone()
    }
}

impl From<Pid> for Destination {
    fn from(pid: Pid) -> Self {
        Destination::Pid(pid)
    }
}

impl From<&Pid> for Destination {
    fn from(pid: &Pid) -> Self {
        Destination::Pid(pid.clone())
    }
}

impl From<(&str, &str)> for Destination {
    fn from((name, node): (&str, &str)) -> Self {
        Destination::Remote {
            name: name.into(),
            node: NodeName::unchecked(node),
        }
    }
}

impl From<(&str, NodeName)> for Destination {
    fn from((name, node): (&str, NodeName)) -> Self {
        Destination::Remote {
            name: name.into(),
            node,
        }
    }
}

impl From<(&str, &NodeName)> for Destination {
    fn from((name, node): (&str, &NodeName)) -> Self {
        Destination::Remote {
            name: name.into(),
            node: node.clone(),
        }
    }
}

impl From<(String, NodeName)> for Destination {
    fn from((name, node): (String, NodeName)) -> Self {
        Destination::Remote {
            name: name.into(),
            node,
        }
    }
}
