//! [`StaticHosts`]: a fixed list of nodes, kept connected (libcluster's `Epmd`).

use std::{collections::HashMap, net::SocketAddr, time::Duration};

use actor_core::NodeName;
use tokio::{sync::broadcast::error::RecvError, time::Instant};

use super::{Context, Running, Strategy, StrategyError};
use crate::{port_mapper::PortMapperClient, NodeEvent};

/// The default pause between two checks of a static list.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);

/// Connects to a fixed list of nodes, and keeps them connected: a node that starts late or
/// drops (and comes back, under the same name) is connected again (libcluster's `Epmd`
/// connects once; see #148, #168). The list is checked at start, every `poll_interval`
/// (default 5 s), as soon as a listed node goes down, and when a node's backoff ends.
/// An empty list does nothing. It never disconnects.
///
/// A listed node that left gracefully ([`Node::shutdown`](crate::Node::shutdown)) is not
/// dialled again until it is seen again: it connects to this node (as a restarted node
/// running the same strategy does), or the port mapper on its host has a new registration
/// for it: one after a check found none, or one on another port than the first check
/// after the leave found. (A restart on the same fixed port between two checks is seen only
/// when it connects.)
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
        let mut registrations = Registrations::default();
        Ok(Box::pin(async move {
            loop {
                registrations.retain(|node| ctx.node().has_left(node));
                for node in self.hosts.iter().filter(|n| ctx.node().has_left(n)) {
                    if let Some(port) = registered_port(&ctx, node).await {
                        if registrations.observe(node, port) {
                            ctx.seen_again(node, "its port-mapper registration is new");
                        }
                    }
                }
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

/// Asks the port mapper on `node`'s host for its registration: `Some(None)` if it has
/// none, `None` if the port mapper could not be asked.
async fn registered_port(ctx: &Context, node: &NodeName) -> Option<Option<u16>> {
    let timeout = ctx.node().config().handshake_timeout;
    let port = ctx.node().port_mapper_port();
    let lookup = tokio::net::lookup_host((node.host(), port));
    let addrs: Vec<SocketAddr> = match tokio::time::timeout(timeout, lookup).await {
        Ok(Ok(addrs)) => addrs.collect(),
        _ => return None,
    };
    let addr = addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()?;
    match PortMapperClient::new(addr)
        .with_timeout(timeout)
        .port_please(node.name())
        .await
    {
        Ok(info) => Some(info.map(|i| i.port)),
        Err(e) => {
            ctx.decide(Some(node), "port mapper not asked", &e.to_string());
            None
        }
    }
}

/// What the port mapper said about each node that left, since it left: sans-IO.
#[derive(Debug, Default)]
struct Registrations {
    /// The last port seen (`None`: not registered) for each node that left.
    seen: HashMap<NodeName, Option<u16>>,
}

impl Registrations {
    /// Records that `node` is registered on `port` (`None`: not registered); whether that
    /// is a new registration: one after none, or on another port than before.
    fn observe(&mut self, node: &NodeName, port: Option<u16>) -> bool {
        let new = match (self.seen.get(node), port) {
            (None, _) => false, // the first look after the leave
            (Some(None), Some(_)) => true,
            (Some(Some(before)), Some(now)) => *before != now,
            (Some(_), None) => false,
        };
        if new {
            self.seen.remove(node);
        } else {
            self.seen.insert(node.clone(), port);
        }
        new
    }

    /// Keeps only the nodes `keep` accepts (those that still have left).
    fn retain(&mut self, mut keep: impl FnMut(&NodeName) -> bool) {
        self.seen.retain(|node, _| keep(node));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registration_is_new_after_none_or_on_another_port() {
        let mut r = Registrations::default();
        let a: NodeName = "a@localhost".parse().unwrap();
        // Still registered on its old port right after it left, then on the same port:
        // not new.
        assert!(!r.observe(&a, Some(4000)));
        assert!(!r.observe(&a, Some(4000)));
        // On another port: new (and forgotten).
        assert!(r.observe(&a, Some(4001)));
        // Gone, then registered again (even on the old port): new.
        assert!(!r.observe(&a, None));
        assert!(!r.observe(&a, None));
        assert!(r.observe(&a, Some(4000)));
        // Registered at the first look: that is the baseline, not new.
        assert!(!r.observe(&a, Some(4000)));
        r.retain(|_| false);
        assert!(r.seen.is_empty());
    }
}
