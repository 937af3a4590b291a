//! [`StaticHosts`]: a fixed list of nodes, kept connected (libcluster's `Epmd`).

use std::time::Duration;

use actor_core::NodeName;
use tokio::{sync::broadcast::error::RecvError, time::Instant};

use super::{Context, Running, Strategy, StrategyError};
use crate::NodeEvent;

/// The default pause between two checks of a static list.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);

/// Connects to a fixed list of nodes, and keeps them connected: a node that starts late or
/// drops (and comes back, under the same name) is connected again (libcluster's `Epmd`
/// connects once; see #148, #168). The list is checked at start, every `poll_interval`
/// (default 5 s), as soon as a listed node goes down, and when a node's backoff ends.
/// An empty list does nothing. It never disconnects.
///
/// ```
/// use std::time::Duration;
/// use actor_remote::cluster::{StaticHosts, Topology};
/// let hosts = StaticHosts::new(["a@localhost".parse()?, "b@localhost".parse()?])
///     .poll_interval(Duration::from_secs(1));
/// let topology = Topology::new("hosts", hosts);
/// assert_eq!(topology.kind(), "static_hosts");
/// # Ok::<(), actor_core::NodeNameError>(())
/// ```
#[derive(Debug, Clone)]
pub struct StaticHosts {
    hosts: Vec<NodeName>,
    poll_interval: Duration,
}

impl StaticHosts {
    /// The nodes to keep connected (this node may be among them: it is skipped).
    pub fn new(hosts: impl IntoIterator<Item = NodeName>) -> Self {
        Self {
            hosts: hosts.into_iter().collect(),
            poll_interval: DEFAULT_POLL_INTERVAL,
        }
    }

    /// Sets how often the list is checked when nothing happens.
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.poll_interval = every.max(Duration::from_millis(1));
        self
    }
}

impl Strategy for StaticHosts {
    fn kind(&self) -> &'static str {
        "static_hosts"
    }

    fn start(self: Box<Self>, ctx: Context) -> Result<Running, StrategyError> {
        if self.hosts.is_empty() {
            ctx.decide(None, "idle", "no hosts configured");
            return Ok(Box::pin(async {}));
        }
        let mut events = ctx.node().events();
        Ok(Box::pin(async move {
            loop {
                ctx.connect_nodes(self.hosts.iter().cloned()).await;
                let mut wake = Instant::now() + self.poll_interval;
                if let Some(retry) = ctx.next_retry() {
                    wake = wake.min(retry.max(Instant::now()));
                }
                // Wait for the next check: its time, or a listed node going down.
                loop {
                    tokio::select! {
                        () = tokio::time::sleep_until(wake) => break,
                        event = events.recv() => match event {
                            Ok(NodeEvent::NodeDown { node, reason, .. }) if self.hosts.contains(&node) => {
                                ctx.decide(Some(&node), "reconnecting", &format!("it went down ({reason})"));
                                break;
                            }
                            Ok(_) => {}
                            Err(RecvError::Lagged(_)) => break,
                            Err(RecvError::Closed) => return,
                        },
                    }
                }
            }
        }))
    }
}
