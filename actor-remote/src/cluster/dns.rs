//! DNS strategies, as libcluster's `DNSPoll`, `Kubernetes.DNS` and `Kubernetes.DNSSRV`:
//! [`DnsPoll`], [`KubernetesDns`] and [`KubernetesDnsSrv`] poll a name and connect the nodes
//! its records name. The decisions (what to connect and what to prune, given the last
//! answer and this one) are [`Membership`]'s, sans-IO; the queries are
//! [hickory-resolver](https://docs.rs/hickory-resolver)'s.

mod answer;

use std::{net::SocketAddr, time::Duration};

use actor_core::NodeName;
use hickory_resolver::{
    config::{NameServerConfig, ResolverConfig, ResolverOpts},
    name_server::TokioConnectionProvider,
    proto::{
        rr::{RData, RecordType},
        xfer::Protocol,
    },
    ResolveError, TokioResolver,
};
use tokio::time::Instant;

pub use answer::{node_at_host, node_at_ip, Answer, Decision, Membership};

use super::{static_hosts::DEFAULT_POLL_INTERVAL, Context, Running, Strategy, StrategyError};

/// The default bound on one query (each attempt; two attempts per nameserver).
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// The default cluster domain of [`KubernetesDnsSrv`] when `CLUSTER_DOMAIN` is not set.
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local.";

/// Where the queries go, and the settings every DNS strategy shares.
#[derive(Debug, Clone)]
struct Common {
    poll_interval: Duration,
    prune: bool,
    nameservers: Vec<SocketAddr>,
    query_timeout: Duration,
}

impl Default for Common {
    fn default() -> Self {
        Self {
            poll_interval: DEFAULT_POLL_INTERVAL,
            prune: true,
            nameservers: Vec::new(),
            query_timeout: DEFAULT_QUERY_TIMEOUT,
        }
    }
}

/// The builder methods every DNS strategy has.
macro_rules! common_settings {
    ($t:ty) => {
        impl $t {
            /// Sets how often the name is queried (default 5 s).
            pub fn poll_interval(mut self, every: Duration) -> Self {
                self.common.poll_interval = every.max(Duration::from_millis(1));
                self
            }

            /// Whether nodes found by an earlier answer and missing from a whole new one are
            /// disconnected (default true, as libcluster). Never on a truncated answer or a
            /// failed query.
            pub fn prune(mut self, prune: bool) -> Self {
                self.common.prune = prune;
                self
            }

            /// Sends the queries to this nameserver (UDP, and TCP for an answer too large
            /// for UDP) instead of the system's (`/etc/resolv.conf`); may be given several
            /// times.
            pub fn nameserver(mut self, addr: SocketAddr) -> Self {
                self.common.nameservers.push(addr);
                self
            }

            /// Sets the bound on each attempt of a query (default 2 s; two attempts).
            pub fn query_timeout(mut self, timeout: Duration) -> Self {
                self.common.query_timeout = timeout.max(Duration::from_millis(1));
                self
            }
        }
    };
}

/// Polls the A and AAAA records of `query` and connects `node_basename@<ip>` for each
/// address (libcluster's `DNSPoll`), every `poll_interval` (default 5 s).
///
/// With `prune` on (the default), a node found by an earlier answer and missing from a
/// whole new one is disconnected; a truncated answer or a failed query never prunes (the
/// resolver retries a truncated UDP answer over TCP; one it cannot complete is a failure),
/// and the nodes already known are still kept connected (see [`Membership`]). An empty
/// answer (NXDOMAIN, no records) is a whole answer. A node that left gracefully is not
/// connected again until it is seen again: it connects to this node, or its record drops
/// out of the answer and comes back.
///
/// ```
/// use std::time::Duration;
/// use actor_remote::cluster::{DnsPoll, Topology};
/// let dns = DnsPoll::new("app.internal.example.", "app")
///     .poll_interval(Duration::from_secs(2))
///     .prune(false)
///     .nameserver("127.0.0.1:5353".parse()?); // else the system's resolver
/// assert_eq!(Topology::new("dns", dns).kind(), "dns_poll");
/// # Ok::<(), std::net::AddrParseError>(())
/// ```
#[derive(Debug, Clone)]
pub struct DnsPoll {
    query: String,
    node_basename: String,
    common: Common,
}

impl DnsPoll {
    /// Polls `query`; nodes are `node_basename@<ip>`.
    pub fn new(query: impl Into<String>, node_basename: impl Into<String>) -> Self {
        Self {
            query: query.into(),
            node_basename: node_basename.into(),
            common: Common::default(),
        }
    }
}
common_settings!(DnsPoll);

/// Polls the A and AAAA records of a Kubernetes headless service, `service`, and connects
/// `application_name@<pod ip>` for each (libcluster's `Kubernetes.DNS`). Name the nodes
/// `app@$POD_IP` (libcluster #129). Otherwise as [`DnsPoll`].
///
/// ```
/// use actor_remote::cluster::{KubernetesDns, Topology};
/// let k8s = KubernetesDns::new("myapp-headless.default.svc.cluster.local.", "myapp");
/// assert_eq!(Topology::new("k8s", k8s).kind(), "kubernetes_dns");
/// ```
#[derive(Debug, Clone)]
pub struct KubernetesDns {
    service: String,
    application_name: String,
    common: Common,
}

impl KubernetesDns {
    /// Polls `service`; nodes are `application_name@<ip>`.
    pub fn new(service: impl Into<String>, application_name: impl Into<String>) -> Self {
        Self {
            service: service.into(),
            application_name: application_name.into(),
            common: Common::default(),
        }
    }
}
common_settings!(KubernetesDns);

/// Polls the SRV records of a StatefulSet's headless service,
/// `<service>.<namespace>.svc.<cluster domain>`, and connects
/// `application_name@<target>` for each, the pod's stable name
/// (`myapp@myapp-0.myapp.default.svc.cluster.local`), as libcluster's
/// `Kubernetes.DNSSRV`. The cluster domain is `CLUSTER_DOMAIN` from the environment, else
/// `cluster.local.`, unless set. Otherwise as [`DnsPoll`].
///
/// ```
/// use actor_remote::cluster::{KubernetesDnsSrv, Topology};
/// let srv = KubernetesDnsSrv::new("myapp", "default", "myapp").cluster_domain("cluster.local.");
/// assert_eq!(srv.query(), "myapp.default.svc.cluster.local.");
/// assert_eq!(Topology::new("k8s", srv).kind(), "kubernetes_dns_srv");
/// ```
#[derive(Debug, Clone)]
pub struct KubernetesDnsSrv {
    service: String,
    namespace: String,
    application_name: String,
    cluster_domain: Option<String>,
    common: Common,
}

impl KubernetesDnsSrv {
    /// Polls the SRV records of `service` in `namespace`; nodes are
    /// `application_name@<target>`.
    pub fn new(
        service: impl Into<String>,
        namespace: impl Into<String>,
        application_name: impl Into<String>,
    ) -> Self {
        Self {
            service: service.into(),
            namespace: namespace.into(),
            application_name: application_name.into(),
            cluster_domain: None,
            common: Common::default(),
        }
    }

    /// Sets the cluster domain (default: `CLUSTER_DOMAIN`, else `cluster.local.`).
    pub fn cluster_domain(mut self, domain: impl Into<String>) -> Self {
        self.cluster_domain = Some(domain.into());
        self
    }

    /// The name queried: `<service>.<namespace>.svc.<cluster domain>`.
    pub fn query(&self) -> String {
        let domain = self.cluster_domain.clone().unwrap_or_else(|| {
            std::env::var("CLUSTER_DOMAIN").unwrap_or_else(|_| DEFAULT_CLUSTER_DOMAIN.into())
        });
        format!("{}.{}.svc.{domain}", self.service, self.namespace)
    }
}
common_settings!(KubernetesDnsSrv);

/// What to look up, and how records become node names.
#[derive(Debug, Clone)]
enum Lookup {
    /// A and AAAA of `query`: `basename@ip`.
    Addresses { query: String, basename: String },
    /// SRV of `query`: `basename@target`.
    Srv { query: String, basename: String },
}

impl Lookup {
    fn query(&self) -> &str {
        match self {
            Self::Addresses { query, .. } | Self::Srv { query, .. } => query,
        }
    }
}

fn required(kind: &str, key: &str, value: &str) -> Result<(), StrategyError> {
    if value.trim().is_empty() {
        return Err(StrategyError::Config(format!(
            "{kind}: {key} is empty; set it (see actor_remote::cluster's docs)"
        )));
    }
    Ok(())
}

impl Strategy for DnsPoll {
    fn kind(&self) -> &'static str {
        "dns_poll"
    }

    fn start(self: Box<Self>, ctx: Context) -> Result<Running, StrategyError> {
        required(self.kind(), "query", &self.query)?;
        required(self.kind(), "node_basename", &self.node_basename)?;
        node_at_ip(&self.node_basename, [127, 0, 0, 1].into()).map_err(StrategyError::Config)?;
        let lookup = Lookup::Addresses {
            query: self.query,
            basename: self.node_basename,
        };
        start(ctx, lookup, self.common)
    }
}

impl Strategy for KubernetesDns {
    fn kind(&self) -> &'static str {
        "kubernetes_dns"
    }

    fn start(self: Box<Self>, ctx: Context) -> Result<Running, StrategyError> {
        required(self.kind(), "service", &self.service)?;
        required(self.kind(), "application_name", &self.application_name)?;
        node_at_ip(&self.application_name, [127, 0, 0, 1].into()).map_err(StrategyError::Config)?;
        let lookup = Lookup::Addresses {
            query: self.service,
            basename: self.application_name,
        };
        start(ctx, lookup, self.common)
    }
}

impl Strategy for KubernetesDnsSrv {
    fn kind(&self) -> &'static str {
        "kubernetes_dns_srv"
    }

    fn start(self: Box<Self>, ctx: Context) -> Result<Running, StrategyError> {
        required(self.kind(), "service", &self.service)?;
        required(self.kind(), "namespace", &self.namespace)?;
        required(self.kind(), "application_name", &self.application_name)?;
        node_at_host(&self.application_name, "localhost").map_err(StrategyError::Config)?;
        let lookup = Lookup::Srv {
            query: self.query(),
            basename: self.application_name,
        };
        start(ctx, lookup, self.common)
    }
}

/// A resolver for `common`: its nameservers, else the system's configuration. Nothing is
/// cached: every poll asks.
fn resolver(common: &Common) -> Result<TokioResolver, StrategyError> {
    let mut builder = if common.nameservers.is_empty() {
        TokioResolver::builder_tokio().map_err(|e| {
            StrategyError::Config(format!(
                "could not read the system's DNS configuration (/etc/resolv.conf): {e}; fix it, or give a nameserver"
            ))
        })?
    } else {
        let mut config = ResolverConfig::new();
        for addr in &common.nameservers {
            config.add_name_server(NameServerConfig::new(*addr, Protocol::Udp));
            config.add_name_server(NameServerConfig::new(*addr, Protocol::Tcp));
        }
        TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
    };
    let opts: &mut ResolverOpts = builder.options_mut();
    opts.timeout = common.query_timeout;
    opts.attempts = 2;
    opts.cache_size = 0;
    opts.positive_max_ttl = Some(Duration::ZERO);
    opts.negative_max_ttl = Some(Duration::ZERO);
    Ok(builder.build())
}

fn start(ctx: Context, lookup: Lookup, common: Common) -> Result<Running, StrategyError> {
    let resolver = resolver(&common)?;
    let mut membership = Membership::new(ctx.node().name().clone(), common.prune);
    // Each query is bounded by the resolver's timeout and attempts; this bounds the whole
    // lookup (A and AAAA, every nameserver) as well.
    let bound = common.query_timeout * 4 + Duration::from_secs(1);
    Ok(Box::pin(async move {
        loop {
            let answer = match tokio::time::timeout(bound, ask(&resolver, &lookup, &ctx)).await {
                Ok(answer) => answer,
                Err(_) => Answer::Failed(format!("no answer within {bound:?}")),
            };
            if let Answer::Failed(why) = &answer {
                tracing::debug!(
                    "[cluster:{}] DNS query {:?} failed: {why}; nothing is pruned, asking again in {:?}",
                    ctx.topology(),
                    lookup.query(),
                    common.poll_interval
                );
            }
            let decision = membership.on_answer(answer);
            for node in &decision.appeared {
                if node != ctx.node().name() {
                    ctx.seen(node, "in the DNS answer");
                    ctx.seen_again(node, "its record (re)appeared in the DNS answer");
                }
            }
            if let Some(why) = &decision.kept {
                ctx.decide(None, "not pruned", why);
            }
            ctx.disconnect_nodes(decision.prune, "no longer in the DNS answer");
            ctx.connect_nodes(decision.connect).await;
            let mut wake = Instant::now() + common.poll_interval;
            if let Some(retry) = ctx.next_retry() {
                wake = wake.min(retry.max(Instant::now()));
            }
            tokio::time::sleep_until(wake).await; // the polling period
        }
    }))
}

/// Whether a resolver error is "no such records" (an answer) rather than a failure.
fn no_records(e: &ResolveError) -> bool {
    e.is_no_records_found() || e.is_nx_domain()
}

/// One poll's query, as an [`Answer`]. A record whose name is not a node name is dropped
/// (counted, with a [`ClusterEvent::Dropped`](super::ClusterEvent::Dropped)).
async fn ask(resolver: &TokioResolver, lookup: &Lookup, ctx: &Context) -> Answer {
    let mut nodes = Vec::new();
    let mut push = |made: Result<NodeName, String>| match made {
        Ok(node) => nodes.push(node),
        Err(why) => ctx.dropped(format!("a DNS record: {why}")),
    };
    match lookup {
        Lookup::Addresses { query, basename } => {
            let (v4, v6) = tokio::join!(
                resolver.lookup(query.as_str(), RecordType::A),
                resolver.lookup(query.as_str(), RecordType::AAAA)
            );
            for result in [v4, v6] {
                match result {
                    Ok(found) => {
                        for record in found.records() {
                            match record.data() {
                                RData::A(a) => push(node_at_ip(basename, a.0.into())),
                                RData::AAAA(a) => push(node_at_ip(basename, a.0.into())),
                                _ => {} // a CNAME on the way
                            }
                        }
                    }
                    Err(e) if no_records(&e) => {}
                    Err(e) => return Answer::Failed(e.to_string()),
                }
            }
        }
        Lookup::Srv { query, basename } => match resolver.srv_lookup(query.as_str()).await {
            Ok(found) => {
                for srv in found.iter() {
                    push(node_at_host(basename, &srv.target().to_ascii()));
                }
            }
            Err(e) if no_records(&e) => {}
            Err(e) => return Answer::Failed(e.to_string()),
        },
    }
    Answer::Complete(nodes)
}
