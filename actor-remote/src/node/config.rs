//! How to start a node.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::Duration,
};

use actor_core::NameMode;

use crate::{
    port_mapper::PortMapperMode,
    proto::{DEFAULT_SETUP_TIME, DEFAULT_TICK_INTENSITY, DEFAULT_TICK_TIME},
    transport::{MemoryNetwork, DEFAULT_SEND_QUEUE_LIMIT},
    wire::DEFAULT_MAX_FRAME_LEN,
    Cookie,
};

#[cfg(feature = "testing")]
use crate::transport::Faults;
#[cfg(feature = "tls")]
use crate::transport::TlsConfig;

/// How to start a [`Node`](crate::Node). Every field has the BEAM's default.
///
/// ```
/// use std::time::Duration;
/// use actor_remote::{Cookie, NodeConfig};
/// let config = NodeConfig::sname("hoge@localhost")
///     .cookie(Cookie::new("mycookie")?)
///     .tick_time(Duration::from_secs(60));
/// assert!(config.connect_all && !config.hidden);
/// # Ok::<(), actor_remote::CookieError>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NodeConfig {
    /// The node's name, `name@host`.
    pub name: String,
    /// Short names (`--sname`: no dot in the host) or long names (`--name`).
    pub name_mode: NameMode,
    /// The cookie; when `None`, `NODUS_COOKIE`, else the file `~/.nodus.cookie` (created with a
    /// random cookie if missing, as the BEAM does with `~/.erlang.cookie`).
    pub cookie: Option<Cookie>,
    /// The address to listen on for other nodes. When `None`: the host's address if the host
    /// is `localhost` or an IP address, else all interfaces.
    pub listen_ip: Option<IpAddr>,
    /// The port to listen on; 0 (the default) lets the OS choose, as the BEAM does.
    pub listen_port: u16,
    /// The port mapper to register with. When `None`: `127.0.0.1` on `ERL_EPMD_PORT`, else
    /// 4369. If none answers there, the node starts an embedded one, as `erl -sname` starts
    /// epmd; with long names it listens on every interface, as epmd does, so that nodes on
    /// other hosts can look this host's nodes up (with short names, on loopback only). Peers' port mappers are looked up on their hosts at the same port.
    pub port_mapper: Option<SocketAddr>,
    /// What the node does when no port mapper answers at `port_mapper` (default
    /// [`PortMapperMode::Embedded`]: host one in-process, which in-process tests rely on;
    /// [`PortMapperMode::Process`] starts a detached `nodus epmd --daemon`, as `erl -sname`
    /// starts `epmd -daemon`, so registrations outlive this node). Also applied when the
    /// registration is lost later and the node registers again.
    pub port_mapper_mode: PortMapperMode,
    /// A peer silent this long is down with reason `tick_timeout` (default 60 s): as on the
    /// BEAM, the node's one tick clock beats every `tick_time / tick_intensity`, and a peer
    /// heard nothing from for `tick_intensity` beats in a row is down, so between
    /// `tick_time - tick_time / tick_intensity` and `tick_time` after its last sign of life.
    pub tick_time: Duration,
    /// An idle session ticks at every beat, `tick_time / tick_intensity` (default 4).
    pub tick_intensity: u32,
    /// The bound on each step of connecting: port-mapper lookup, TCP connect, each handshake
    /// step, and a ping's round trip (default 7 s, the BEAM's `net_setuptime`).
    pub handshake_timeout: Duration,
    /// Connect to the nodes a new peer is connected to, so nodes form a full mesh (default
    /// true, as the BEAM's `connect_all`). A node lost is not dialled again (as on the BEAM,
    /// a strategy does that), with one exception: a node that rejoins a peer (after a pause,
    /// say) and then, within 5 s, reads that a session its view of the mesh counted is
    /// closed dials that node once more, since the others declared it down and none would.
    pub connect_all: bool,
    /// A hidden node is left out of other nodes' `list()` and of the mesh (default false).
    pub hidden: bool,
    /// The largest message sent or accepted, as a frame (default 64 MiB): the one limit on a
    /// message's size, for framing and decoding alike. A cast, call or task start over it is
    /// refused with a typed error (`TooLarge`, naming the peer and the limit) before it is
    /// sent, and the session stays up. Nodes tell each other their limits in the handshake,
    /// and each session uses the smaller of the two both ways, so a message over the peer's
    /// limit is refused the same way at the sender (a frame over it from a peer of an
    /// earlier build, which does not tell its limit, closes that session).
    pub max_frame_len: usize,
    /// The most nodes remembered as known (`Node::list_kind(ListKind::Known)`; default
    /// 4096). Past it, the node that has been down the longest is forgotten; a connected
    /// node never is.
    pub max_known_nodes: usize,
    /// The bound on the bytes waiting to be written to one peer (default 64 MiB; frames
    /// queued and not yet written, and casts queued while connecting to it). Past it a
    /// cast fails with `SendErrorKind::Busy` (`System::cast_wait` waits for room instead),
    /// and so do calls and task starts; a peer that stops reading costs at most
    /// `send_queue_limit + max_frame_len` bytes. What is queued when a session drops is lost:
    /// at most this much (plus what the sockets' buffers held, which no sender can see);
    /// `Node::send_stats` counts the lost messages, and the session logs the count once.
    pub send_queue_limit: usize,
    /// Injected network faults, for tests (default: none). Keep a clone to freeze the node
    /// or cut it off from peers; see [`Faults`]. Only with the `testing` feature.
    #[cfg(feature = "testing")]
    pub faults: Faults,
    /// Whether BEAM nodes (`erl`, `iex`) may connect too, with the Erlang distribution
    /// protocol on the node's own port (default false; see [`crate::erl`]). Only with the
    /// `erlang` feature.
    #[cfg(feature = "erlang")]
    pub erlang: bool,
    /// TLS between nodes (default: none, plain TCP); see [`crate::transport::tls`]. A node
    /// with TLS and one without refuse each other. Only with the `tls` feature.
    #[cfg(feature = "tls")]
    pub tls: Option<TlsConfig>,
    /// The in-memory network to run on instead of TCP (default `None`: TCP). A node on a
    /// [`MemoryNetwork`] opens no socket and registers with no port mapper: it is reachable
    /// only from nodes of the same network (see [`crate::transport::memory`]).
    pub memory: Option<MemoryNetwork>,
}

impl NodeConfig {
    fn with_mode(name: &str, name_mode: NameMode) -> Self {
        Self {
            name: name.to_string(),
            name_mode,
            cookie: None,
            listen_ip: None,
            listen_port: 0,
            port_mapper: None,
            port_mapper_mode: PortMapperMode::Embedded,
            tick_time: DEFAULT_TICK_TIME,
            tick_intensity: DEFAULT_TICK_INTENSITY,
            handshake_timeout: DEFAULT_SETUP_TIME,
            connect_all: true,
            hidden: false,
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            max_known_nodes: super::state::DEFAULT_MAX_KNOWN_NODES,
            send_queue_limit: DEFAULT_SEND_QUEUE_LIMIT,
            #[cfg(feature = "testing")]
            faults: Faults::default(),
            #[cfg(feature = "erlang")]
            erlang: false,
            #[cfg(feature = "tls")]
            tls: None,
            memory: None,
        }
    }

    /// Whether BEAM nodes may connect with the Erlang distribution protocol
    /// ([`crate::erl`]), as `erl -sname` nodes connect to each other.
    #[cfg(feature = "erlang")]
    pub fn erlang(mut self, erlang: bool) -> Self {
        self.erlang = erlang;
        self
    }

    /// A node with a short name (`hoge@localhost`), as `iex --sname`.
    pub fn sname(name: &str) -> Self {
        Self::with_mode(name, NameMode::Short)
    }

    /// A node with a long name (`a@host.example.com`, `a@127.0.0.1`), as `iex --name`.
    pub fn lname(name: &str) -> Self {
        Self::with_mode(name, NameMode::Long)
    }

    /// Sets the cookie.
    pub fn cookie(mut self, cookie: Cookie) -> Self {
        self.cookie = Some(cookie);
        self
    }

    /// Sets what the node does when no port mapper answers ([`NodeConfig::port_mapper_mode`]).
    pub fn port_mapper_mode(mut self, mode: PortMapperMode) -> Self {
        self.port_mapper_mode = mode;
        self
    }

    /// Sets the port mapper's address.
    pub fn port_mapper(mut self, addr: SocketAddr) -> Self {
        self.port_mapper = Some(addr);
        self
    }

    /// Sets the address to listen on.
    pub fn listen(mut self, ip: IpAddr, port: u16) -> Self {
        self.listen_ip = Some(ip);
        self.listen_port = port;
        self
    }

    /// Sets the tick time.
    pub fn tick_time(mut self, tick_time: Duration) -> Self {
        self.tick_time = tick_time;
        self
    }

    /// Sets the handshake (and connect) timeout.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Sets `connect_all`.
    pub fn connect_all(mut self, connect_all: bool) -> Self {
        self.connect_all = connect_all;
        self
    }

    /// Makes the node hidden (or not).
    pub fn hidden(mut self, hidden: bool) -> Self {
        self.hidden = hidden;
        self
    }

    /// Sets the largest frame ([`NodeConfig::max_frame_len`]).
    pub fn max_frame_len(mut self, max: usize) -> Self {
        self.max_frame_len = max;
        self
    }

    /// Sets the most nodes remembered as known ([`NodeConfig::max_known_nodes`]).
    pub fn max_known_nodes(mut self, max: usize) -> Self {
        self.max_known_nodes = max;
        self
    }

    /// Sets the bound on the bytes waiting to be written to one peer.
    pub fn send_queue_limit(mut self, bytes: usize) -> Self {
        self.send_queue_limit = bytes;
        self
    }

    /// This node's TLS settings as the driver sees them, if any (never any without the `tls`
    /// feature).
    pub(crate) fn tls_settings(&self) -> Option<&crate::transport::tls::NodeTls> {
        #[cfg(feature = "tls")]
        return self.tls.as_ref();
        #[cfg(not(feature = "tls"))]
        None
    }

    /// Runs every connection with other nodes over TLS ([`crate::transport::tls`]). Only
    /// with the `tls` feature.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Runs the node on an in-memory network instead of TCP (see
    /// [`crate::transport::memory`]): no listening socket, no port mapper; peers are the
    /// other nodes started on the same `network`.
    pub fn memory(mut self, network: MemoryNetwork) -> Self {
        self.memory = Some(network);
        self
    }

    /// Sets the fault-injection handle (tests). Only with the `testing` feature.
    #[cfg(feature = "testing")]
    pub fn faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    pub(crate) fn default_listen_ip(host: &str) -> IpAddr {
        if host == "localhost" {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            host.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
        }
    }
}
