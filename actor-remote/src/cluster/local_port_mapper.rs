//! [`LocalPortMapper`]: every node this host's port mapper knows (libcluster's `LocalEpmd`).

use std::{net::Ipv4Addr, time::Duration};

use actor_core::NodeName;

use super::{static_hosts::DEFAULT_POLL_INTERVAL, Context, Running, Strategy, StrategyError};
use crate::port_mapper::PortMapperClient;

/// Connects to every node registered with this node's port mapper (the one in its
/// [`NodeConfig`](crate::NodeConfig), else `127.0.0.1` on `ERL_EPMD_PORT` or 4369), named
/// with this node's host, re-reading the list every `poll_interval` (default 5 s).
/// libcluster's `LocalEpmd` reads it once and crashes if epmd is down; here a port mapper
/// that does not answer is logged and asked again at the next poll. It never disconnects.
///
/// ```
/// use std::time::Duration;
/// use actor_remote::cluster::{LocalPortMapper, Topology};
/// let topology = Topology::new("local", LocalPortMapper::new().poll_interval(Duration::from_secs(1)));
/// assert_eq!(topology.kind(), "local_port_mapper");
/// ```
#[derive(Debug, Clone)]
pub struct LocalPortMapper {
    poll_interval: Duration,
}

impl Default for LocalPortMapper {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalPortMapper {
    /// Polls every 5 s.
    pub fn new() -> Self {
        Self {
            poll_interval: DEFAULT_POLL_INTERVAL,
        }
    }

    /// Sets how often the port mapper is asked.
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.poll_interval = every.max(Duration::from_millis(1));
        self
    }
}

impl Strategy for LocalPortMapper {
    fn kind(&self) -> &'static str {
        "local_port_mapper"
    }

    fn start(self: Box<Self>, ctx: Context) -> Result<Running, StrategyError> {
        let client = match ctx.node().config().port_mapper {
            Some(addr) => PortMapperClient::new(addr),
            None => PortMapperClient::from_env(Ipv4Addr::LOCALHOST.into())
                .map_err(|e| StrategyError::Config(e.to_string()))?,
        }
        .with_timeout(ctx.node().config().handshake_timeout);
        let host = ctx.node().name().host().to_string();
        Ok(Box::pin(async move {
            loop {
                match client.names().await {
                    Ok(names) => {
                        let nodes: Vec<NodeName> = names
                            .into_iter()
                            .filter_map(|(name, _port)| {
                                let full = format!("{name}@{host}");
                                match NodeName::parse(&full) {
                                    Ok(node) => Some(node),
                                    Err(e) => {
                                        ctx.dropped(format!("port mapper name {full:?}: {e}"));
                                        None
                                    }
                                }
                            })
                            .collect();
                        for node in &nodes {
                            if node != ctx.node().name() {
                                ctx.seen(node, "registered with the port mapper");
                            }
                        }
                        ctx.connect_nodes(nodes).await;
                    }
                    Err(e) => tracing::debug!(
                        port_mapper = %client.addr(),
                        "[cluster:{}] could not list the port mapper's names: {e}; asking again in {:?}",
                        ctx.topology(),
                        self.poll_interval
                    ),
                }
                tokio::time::sleep(self.poll_interval).await; // the polling period
            }
        }))
    }
}
