//! [`Gossip`]: nodes find each other through UDP multicast heartbeats (libcluster's `Gossip`).

pub mod packet;

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use actor_core::NodeName;
use serde::Deserialize;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::{net::UdpSocket, sync::mpsc};

use self::packet::{Codec, Heartbeat, ReplayWindow, MAX_PACKET, NONCE_LEN};
use super::{Context, Running, Strategy, StrategyError};

/// How many discovered nodes may wait for a connect; beyond, heartbeats are not acted on
/// until the connector catches up (the sender's next heartbeat comes soon).
const CONNECT_QUEUE: usize = 64;
/// The pause after a failed receive.
const RECEIVE_ERROR_PAUSE: Duration = Duration::from_millis(100);
/// How many senders the replay check remembers.
const REPLAY_SENDERS: usize = 4096;

/// [`Gossip`]'s configuration; the keys of its TOML `config` table, with libcluster's
/// defaults. Unknown keys are errors.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct GossipConfig {
    /// The UDP port of the heartbeats (default 45892).
    pub port: u16,
    /// The address the socket binds (default `0.0.0.0`; a unicast address there does not
    /// receive multicast on Linux).
    pub if_addr: IpAddr,
    /// The interface (its IPv4 address) multicast is sent from and joined on (default: the
    /// system's choice). `127.0.0.1` keeps heartbeats on this host.
    pub multicast_if: Option<Ipv4Addr>,
    /// The group heartbeats go to (default `233.252.1.32`), or the broadcast address with
    /// `broadcast_only`.
    pub multicast_addr: Ipv4Addr,
    /// The multicast TTL (default 1: this network only; 0: this host only).
    pub multicast_ttl: u32,
    /// Send to `multicast_addr` as a broadcast address, without joining a group, for
    /// networks without multicast (AWS ECS and other VPCs; default false).
    pub broadcast_only: bool,
    /// Seal heartbeats with a key derived from this secret; nodes with another secret (or
    /// none) ignore each other. Without a secret heartbeats are open: use that on trusted
    /// networks only. Never printed by `Debug`.
    pub secret: Option<String>,
    /// A heartbeat goes out at start, then after a random pause of up to this, in
    /// milliseconds (default 5000, libcluster's).
    pub interval_ms: u64,
    /// Heartbeats whose time is further than this from this node's clock are refused, in
    /// milliseconds (default 60000): it bounds how late a recorded heartbeat can be
    /// replayed.
    pub max_skew_ms: u64,
}

impl Default for GossipConfig {
    fn default() -> Self {
        Self {
            port: 45892,
            if_addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            multicast_if: None,
            multicast_addr: Ipv4Addr::new(233, 252, 1, 32),
            multicast_ttl: 1,
            broadcast_only: false,
            secret: None,
            interval_ms: 5000,
            max_skew_ms: 60_000,
        }
    }
}

impl fmt::Debug for GossipConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GossipConfig")
            .field("port", &self.port)
            .field("if_addr", &self.if_addr)
            .field("multicast_if", &self.multicast_if)
            .field("multicast_addr", &self.multicast_addr)
            .field("multicast_ttl", &self.multicast_ttl)
            .field("broadcast_only", &self.broadcast_only)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("interval_ms", &self.interval_ms)
            .field("max_skew_ms", &self.max_skew_ms)
            .finish()
    }
}

/// Finds nodes through UDP heartbeats to a multicast group (or a broadcast address), as
/// libcluster's `Gossip`: each node sends its name, and connects to the nodes it hears.
/// Several nodes on one host share the port (`SO_REUSEPORT`). With a `secret`, heartbeats
/// are authenticated and encrypted, and replays are refused (see [`packet`]).
/// Anything else on the port (garbage, another secret, a replay) is dropped with a debug
/// log and a [`ClusterEvent::Dropped`](super::ClusterEvent::Dropped). It never disconnects.
///
/// ```
/// use actor_remote::cluster::{Gossip, GossipConfig, Topology};
/// let mut config = GossipConfig::default();
/// config.secret = Some("a shared secret".into());
/// config.multicast_if = Some("127.0.0.1".parse()?); // stay on this host
/// let topology = Topology::new("gossip", Gossip::new(config));
/// assert_eq!(topology.kind(), "gossip");
/// # Ok::<(), std::net::AddrParseError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Gossip {
    config: GossipConfig,
}

impl Gossip {
    /// Gossip with `config`.
    pub fn new(config: GossipConfig) -> Self {
        Self { config }
    }
}

fn socket_error(
    what: &'static str,
    addr: SocketAddr,
    hint: impl Into<String>,
) -> impl FnOnce(std::io::Error) -> StrategyError {
    move |source| StrategyError::Socket {
        what,
        addr,
        source,
        hint: hint.into(),
    }
}

/// Opens the gossip socket as libcluster's (reuse address and port, broadcast, multicast TTL
/// and loop, membership), each step's error naming what to change.
fn open_socket(cfg: &GossipConfig) -> Result<UdpSocket, StrategyError> {
    let bind = SocketAddr::new(cfg.if_addr, cfg.port);
    let group = SocketAddr::new(IpAddr::V4(cfg.multicast_addr), cfg.port);
    if !cfg.broadcast_only && !cfg.multicast_addr.is_multicast() {
        return Err(StrategyError::Config(format!(
            "multicast_addr {} is not a multicast address (224.0.0.0/4); use one, or set broadcast_only = true to send to it as a broadcast address",
            cfg.multicast_addr
        )));
    }
    let domain = if cfg.if_addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).map_err(socket_error(
        "opening a UDP socket",
        bind,
        "check the process's file descriptor limit",
    ))?;
    socket.set_reuse_address(true).map_err(socket_error(
        "setting SO_REUSEADDR",
        bind,
        "this platform may not allow it",
    ))?;
    #[cfg(unix)]
    socket.set_reuse_port(true).map_err(socket_error(
        "setting SO_REUSEPORT",
        bind,
        "this platform may not allow it",
    ))?;
    socket.set_broadcast(true).map_err(socket_error(
        "setting SO_BROADCAST",
        bind,
        "this platform may not allow it",
    ))?;
    if !cfg.broadcast_only {
        socket
            .set_multicast_ttl_v4(cfg.multicast_ttl)
            .map_err(socket_error(
                "setting the multicast TTL",
                group,
                "use a multicast_ttl from 0 to 255",
            ))?;
        socket.set_multicast_loop_v4(true).map_err(socket_error(
            "enabling multicast loop",
            group,
            "this platform may not allow it",
        ))?;
        if let Some(interface) = cfg.multicast_if {
            socket
                .set_multicast_if_v4(&interface)
                .map_err(socket_error(
                    "choosing the multicast interface",
                    group,
                    format!(
                        "multicast_if {interface} must be the IPv4 address of a local interface"
                    ),
                ))?;
        }
    }
    socket.bind(&bind.into()).map_err(socket_error(
        "binding the gossip socket",
        bind,
        format!(
            "another program may hold UDP port {} without SO_REUSEPORT, or if_addr {} is not a local address; choose another `port` or `if_addr`",
            cfg.port, cfg.if_addr
        ),
    ))?;
    if !cfg.broadcast_only {
        let interface = cfg.multicast_if.unwrap_or(Ipv4Addr::UNSPECIFIED);
        socket
            .join_multicast_v4(&cfg.multicast_addr, &interface)
            .map_err(socket_error(
                "joining the multicast group",
                group,
                format!(
                    "the interface {interface} may have no multicast (set multicast_if to the address of one that has, or broadcast_only = true on networks without multicast)"
                ),
            ))?;
    }
    socket.set_nonblocking(true).map_err(socket_error(
        "making the socket non-blocking",
        bind,
        "this platform may not allow it",
    ))?;
    UdpSocket::from_std(socket.into()).map_err(socket_error(
        "registering the socket with tokio",
        bind,
        "start the cluster inside a tokio runtime",
    ))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    if let Err(e) = getrandom::fill(&mut bytes) {
        tracing::warn!("no OS randomness for a gossip nonce or pause: {e}");
    }
    bytes
}

/// A pause of 1 ..= `max_ms` milliseconds, uniformly random (libcluster's `:rand.uniform`).
fn random_pause(max_ms: u64) -> Duration {
    let r = u64::from_be_bytes(random::<8>());
    Duration::from_millis(1 + r % max_ms.max(1))
}

impl Strategy for Gossip {
    fn kind(&self) -> &'static str {
        "gossip"
    }

    fn start(self: Box<Self>, ctx: Context) -> Result<Running, StrategyError> {
        let cfg = self.config;
        let socket = open_socket(&cfg)?;
        let codec = Codec::new(cfg.secret.as_deref().map(str::as_bytes));
        let dest = SocketAddr::new(IpAddr::V4(cfg.multicast_addr), cfg.port);
        let me = ctx.node().name().clone();
        let port = ctx.node().listen_addr().port();
        ctx.decide(
            None,
            "gossip started",
            &format!(
                "heartbeats to {dest}, {}",
                if codec.is_sealed() {
                    "sealed with the secret"
                } else {
                    "open (no secret)"
                }
            ),
        );
        // Discovered nodes wait here for the connector, so heartbeats keep being read while a
        // connect takes its time.
        let (found_tx, mut found_rx) = mpsc::channel::<NodeName>(CONNECT_QUEUE);
        let connector = {
            let ctx = ctx.clone();
            async move {
                while let Some(node) = found_rx.recv().await {
                    let mut batch = vec![node];
                    while let Ok(more) = found_rx.try_recv() {
                        batch.push(more);
                    }
                    ctx.connect_nodes(batch).await;
                }
            }
        };
        Ok(Box::pin(async move {
            tokio::pin!(connector);
            let mut replay =
                ReplayWindow::new(Duration::from_millis(cfg.max_skew_ms), REPLAY_SENDERS);
            let mut seq: u64 = 0;
            let mut buf = vec![0u8; MAX_PACKET + 1];
            let mut next_beat = tokio::time::Instant::now(); // the first one at once
            loop {
                tokio::select! {
                    () = &mut connector => return,
                    () = tokio::time::sleep_until(next_beat) => {
                        seq += 1;
                        let hb = Heartbeat { node: me.clone(), port, sent_at_ms: now_ms(), seq };
                        let bytes = codec.encode(&hb, random::<NONCE_LEN>());
                        if let Err(e) = socket.send_to(&bytes, dest).await {
                            // As libcluster: a failed send is not fatal; the next may pass.
                            tracing::debug!("[cluster:{}] heartbeat to {dest} not sent: {e}", ctx.topology());
                        }
                        next_beat = tokio::time::Instant::now() + random_pause(cfg.interval_ms);
                    }
                    received = socket.recv_from(&mut buf) => {
                        let (len, from) = match received {
                            Ok(r) => r,
                            Err(e) => {
                                tracing::debug!("[cluster:{}] gossip receive failed: {e}", ctx.topology());
                                // A pause, so that an error that persists is not a busy loop.
                                tokio::time::sleep(RECEIVE_ERROR_PAUSE).await;
                                continue;
                            }
                        };
                        let hb = match codec.decode(&buf[..len]) {
                            Ok(hb) => hb,
                            Err(e) => {
                                ctx.dropped(format_args!("heartbeat from {from}: {e}"));
                                continue;
                            }
                        };
                        if hb.node == me {
                            continue; // our own, looped back
                        }
                        if let Err(e) = replay.check(&hb, now_ms()) {
                            ctx.dropped(format_args!("heartbeat from {from}: {e}"));
                            continue;
                        }
                        ctx.seen(&hb.node, "heartbeat");
                        if ctx.list_nodes().contains(&hb.node) {
                            continue;
                        }
                        if found_tx.try_send(hb.node.clone()).is_err() {
                            ctx.decide(Some(&hb.node), "not yet", "the connect queue is full; its next heartbeat will do");
                        }
                    }
                }
            }
        }))
    }
}
