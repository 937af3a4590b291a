//! [`ClusterConfig`] from TOML or from environment variables (the keys are in the
//! [module docs](super#configuration)).

use std::{collections::BTreeMap, path::Path, time::Duration};

use actor_core::NodeName;
use serde::Deserialize;

use super::{
    ClusterConfig, DnsPoll, Gossip, GossipConfig, KubernetesDns, KubernetesDnsSrv, LocalPortMapper,
    PartialMesh, StaticHosts, Strategy, Topology,
};

/// Why a cluster configuration could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("could not read the cluster configuration {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not valid TOML, or not the expected shape (an unknown key, a wrong type).
    #[error("invalid cluster configuration: {0}; see the keys in actor_remote::cluster's docs")]
    Toml(#[from] toml::de::Error),
    /// An unknown strategy.
    #[error("topology {topology:?}: unknown strategy {given:?}; use static_hosts, local_port_mapper, gossip, dns_poll, kubernetes_dns, kubernetes_dns_srv or partial_mesh")]
    UnknownStrategy {
        /// The topology.
        topology: String,
        /// What was given.
        given: String,
    },
    /// A value that does not parse.
    #[error("{key}={value:?}: {why}")]
    Invalid {
        /// The key (an environment variable or a TOML key).
        key: String,
        /// Its value.
        value: String,
        /// What is expected.
        why: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    debug: bool,
    #[serde(default)]
    topologies: BTreeMap<String, TopologySpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TopologySpec {
    strategy: String,
    #[serde(default)]
    config: toml::Table,
    backoff_initial_ms: Option<u64>,
    backoff_max_ms: Option<u64>,
    connect_timeout_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StaticHostsSpec {
    hosts: Vec<String>,
    poll_interval_ms: Option<u64>,
}

/// The keys of the three DNS strategies (each checks it has its own required ones and
/// none of another's).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DnsSpec {
    query: Option<String>,
    node_basename: Option<String>,
    service: Option<String>,
    application_name: Option<String>,
    namespace: Option<String>,
    cluster_domain: Option<String>,
    poll_interval_ms: Option<u64>,
    prune: Option<bool>,
    #[serde(default)]
    nameservers: Vec<std::net::SocketAddr>,
    query_timeout_ms: Option<u64>,
}

/// The DNS strategy `kind` from its keys: its required ones must be set, another
/// strategy's must not.
fn dns_strategy(
    topology: &str,
    kind: &str,
    spec: DnsSpec,
) -> Result<Box<dyn Strategy>, ConfigError> {
    let key = |k: &str| format!("topologies.{topology}.config.{k}");
    let given = [
        ("query", &spec.query),
        ("node_basename", &spec.node_basename),
        ("service", &spec.service),
        ("application_name", &spec.application_name),
        ("namespace", &spec.namespace),
        ("cluster_domain", &spec.cluster_domain),
    ];
    let (required, allowed): (&[&str], &[&str]) = match kind {
        "dns_poll" => (&["query", "node_basename"], &[]),
        "kubernetes_dns" => (&["service", "application_name"], &[]),
        _ => (
            &["service", "namespace", "application_name"],
            &["cluster_domain"],
        ),
    };
    let mut values = BTreeMap::new();
    for (name, value) in given {
        match value {
            Some(v) if required.contains(&name) || allowed.contains(&name) => {
                values.insert(name, v.clone());
            }
            Some(v) => {
                return Err(ConfigError::Invalid {
                    key: key(name),
                    value: v.clone(),
                    why: format!(
                        "{kind} has no {name}; its keys are {} (see actor_remote::cluster's docs)",
                        required.join(", ")
                    ),
                })
            }
            None if required.contains(&name) => {
                return Err(ConfigError::Invalid {
                    key: key(name),
                    value: String::new(),
                    why: format!("{kind} needs {name}; set it"),
                })
            }
            None => {}
        }
    }
    let value = |name: &str| values.get(name).cloned().unwrap_or_default();
    macro_rules! common {
        ($s:expr) => {{
            let mut s = $s;
            if let Some(ms) = spec.poll_interval_ms {
                s = s.poll_interval(Duration::from_millis(ms));
            }
            if let Some(prune) = spec.prune {
                s = s.prune(prune);
            }
            for addr in &spec.nameservers {
                s = s.nameserver(*addr);
            }
            if let Some(ms) = spec.query_timeout_ms {
                s = s.query_timeout(Duration::from_millis(ms));
            }
            Box::new(s) as Box<dyn Strategy>
        }};
    }
    Ok(match kind {
        "dns_poll" => common!(DnsPoll::new(value("query"), value("node_basename"))),
        "kubernetes_dns" => common!(KubernetesDns::new(
            value("service"),
            value("application_name")
        )),
        _ => {
            let mut s = KubernetesDnsSrv::new(
                value("service"),
                value("namespace"),
                value("application_name"),
            );
            if let Some(domain) = values.get("cluster_domain") {
                s = s.cluster_domain(domain.clone());
            }
            common!(s)
        }
    })
}

/// `partial_mesh`: contacts (may be empty for the first node) and the overlay's sizes.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PartialMeshSpec {
    #[serde(default)]
    hosts: Vec<String>,
    idle_timeout_ms: Option<u64>,
    overlay_idle_timeout_ms: Option<u64>,
    active_size: Option<usize>,
    passive_size: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PollSpec {
    poll_interval_ms: Option<u64>,
}

/// A topology's `hosts` as node names; a bad one is `ConfigError::Invalid` naming its key.
fn parse_hosts(topology: &str, hosts: Vec<String>) -> Result<Vec<NodeName>, ConfigError> {
    hosts
        .into_iter()
        .map(|host| {
            NodeName::parse(&host).map_err(|e| ConfigError::Invalid {
                key: format!("topologies.{topology}.config.hosts"),
                value: host.clone(),
                why: e.to_string(),
            })
        })
        .collect()
}

fn strategy(
    topology: &str,
    kind: &str,
    config: toml::Table,
) -> Result<Box<dyn Strategy>, ConfigError> {
    Ok(match kind {
        "static_hosts" | "epmd" => {
            let spec: StaticHostsSpec = config.try_into()?;
            let hosts = parse_hosts(topology, spec.hosts)?;
            let mut s = StaticHosts::new(hosts);
            if let Some(ms) = spec.poll_interval_ms {
                s = s.poll_interval(Duration::from_millis(ms));
            }
            Box::new(s)
        }
        "partial_mesh" => {
            let spec: PartialMeshSpec = config.try_into()?;
            let hosts = parse_hosts(topology, spec.hosts)?;
            let mut overlay = super::hyparview::Config::default();
            if let Some(n) = spec.active_size {
                overlay.active_size = n;
            }
            if let Some(n) = spec.passive_size {
                overlay.passive_size = n;
            }
            let mut s = PartialMesh::new(hosts).overlay(overlay);
            if let Some(ms) = spec.idle_timeout_ms {
                s = s.idle_timeout(Duration::from_millis(ms));
            }
            if let Some(ms) = spec.overlay_idle_timeout_ms {
                s = s.overlay_idle_timeout(Duration::from_millis(ms));
            }
            Box::new(s)
        }
        "local_port_mapper" | "local_epmd" => {
            let spec: PollSpec = config.try_into()?;
            let mut s = LocalPortMapper::new();
            if let Some(ms) = spec.poll_interval_ms {
                s = s.poll_interval(Duration::from_millis(ms));
            }
            Box::new(s)
        }
        "gossip" => {
            let cfg: GossipConfig = config.try_into()?;
            Box::new(Gossip::new(cfg))
        }
        "dns_poll" | "kubernetes_dns" | "kubernetes_dns_srv" => {
            let spec: DnsSpec = config.try_into()?;
            dns_strategy(topology, kind, spec)?
        }
        other => {
            return Err(ConfigError::UnknownStrategy {
                topology: topology.to_string(),
                given: other.to_string(),
            })
        }
    })
}

impl ClusterConfig {
    /// Reads topologies from TOML text (the keys are in the [module docs](super#configuration)).
    ///
    /// # Errors
    /// [`ConfigError`]: invalid TOML, an unknown key or strategy, a value of the wrong type.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let file: File = toml::from_str(text)?;
        let mut config = ClusterConfig::new().debug(file.debug);
        for (name, spec) in file.topologies {
            let strategy = strategy(&name, &spec.strategy, spec.config)?;
            let mut topology = Topology::boxed(name, strategy);
            if spec.backoff_initial_ms.is_some() || spec.backoff_max_ms.is_some() {
                let initial = spec
                    .backoff_initial_ms
                    .map_or(topology.backoff_initial, Duration::from_millis);
                let max = spec
                    .backoff_max_ms
                    .map_or(topology.backoff_max, Duration::from_millis);
                topology = topology.backoff(initial, max);
            }
            if let Some(ms) = spec.connect_timeout_ms {
                topology = topology.connect_timeout(Duration::from_millis(ms));
            }
            config = config.topology(topology);
        }
        Ok(config)
    }

    /// Reads topologies from a TOML file.
    ///
    /// # Errors
    /// [`ConfigError::Read`] if the file cannot be read, else as [`ClusterConfig::from_toml`].
    pub fn from_toml_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text)
    }

    /// Reads one topology from the process's `NODUS_CLUSTER_*` environment variables (listed
    /// in the [module docs](super#configuration)); without `NODUS_CLUSTER_STRATEGY`, none.
    ///
    /// # Errors
    /// [`ConfigError`] naming the variable whose value does not parse.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars())
    }

    /// [`ClusterConfig::from_env`] from given variables (for tests, or another source).
    ///
    /// ```
    /// use actor_remote::cluster::ClusterConfig;
    /// let config = ClusterConfig::from_vars([
    ///     ("NODUS_CLUSTER_STRATEGY", "gossip"),
    ///     ("NODUS_CLUSTER_GOSSIP_SECRET", "s3cret"),
    ///     ("NODUS_CLUSTER_GOSSIP_PORT", "45893"),
    ///     ("NODUS_CLUSTER_DEBUG", "true"),
    /// ])?;
    /// assert!(config.is_debug());
    /// assert_eq!(config.topologies().next().map(|t| t.kind()), Some("gossip"));
    /// # Ok::<(), actor_remote::cluster::ConfigError>(())
    /// ```
    ///
    /// # Errors
    /// As [`ClusterConfig::from_env`].
    pub fn from_vars<K, V>(vars: impl IntoIterator<Item = (K, V)>) -> Result<Self, ConfigError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        const PREFIX: &str = "NODUS_CLUSTER_";
        const GOSSIP: &str = "GOSSIP_";
        const DNS: &str = "DNS_";
        let vars: BTreeMap<String, String> = vars
            .into_iter()
            .filter_map(|(k, v)| {
                let k = k.as_ref().strip_prefix(PREFIX)?.to_string();
                Some((k, v.as_ref().to_string()))
            })
            .collect();
        let debug = match vars.get("DEBUG") {
            None => false,
            Some(v) => parse_bool("NODUS_CLUSTER_DEBUG", v)?,
        };
        let mut out = ClusterConfig::new().debug(debug);
        let Some(kind) = vars.get("STRATEGY") else {
            return Ok(out);
        };
        let name = vars
            .get("TOPOLOGY")
            .cloned()
            .unwrap_or_else(|| "default".into());
        let mut config = toml::Table::new();
        let mut topology = toml::Table::new();
        topology.insert("strategy".into(), toml::Value::String(kind.clone()));
        for (key, value) in &vars {
            let var = format!("{PREFIX}{key}");
            match key.as_str() {
                "STRATEGY" | "TOPOLOGY" | "DEBUG" => {}
                "HOSTS" => {
                    let hosts = value
                        .split(',')
                        .map(str::trim)
                        .filter(|h| !h.is_empty())
                        .map(|h| toml::Value::String(h.into()))
                        .collect();
                    config.insert("hosts".into(), toml::Value::Array(hosts));
                }
                "PARTIAL_IDLE_TIMEOUT_MS"
                | "PARTIAL_OVERLAY_IDLE_TIMEOUT_MS"
                | "PARTIAL_ACTIVE_SIZE"
                | "PARTIAL_PASSIVE_SIZE" => {
                    config.insert(
                        key["PARTIAL_".len()..].to_lowercase(),
                        parse_int(&var, value)?,
                    );
                }
                "POLL_INTERVAL_MS" => {
                    config.insert("poll_interval_ms".into(), parse_int(&var, value)?);
                }
                "BACKOFF_INITIAL_MS" | "BACKOFF_MAX_MS" | "CONNECT_TIMEOUT_MS" => {
                    topology.insert(key.to_lowercase(), parse_int(&var, value)?);
                }
                gossip if gossip.starts_with(GOSSIP) => {
                    let field = gossip[GOSSIP.len()..].to_lowercase();
                    let value = match field.as_str() {
                        "port" | "multicast_ttl" | "interval_ms" | "max_skew_ms" => {
                            parse_int(&var, value)?
                        }
                        "broadcast_only" => toml::Value::Boolean(parse_bool(&var, value)?),
                        "if_addr" | "multicast_if" | "multicast_addr" | "secret" => {
                            toml::Value::String(value.clone())
                        }
                        _ => {
                            return Err(ConfigError::Invalid {
                                key: var,
                                value: value.clone(),
                                why: "unknown gossip setting; see actor_remote::cluster's docs"
                                    .into(),
                            })
                        }
                    };
                    config.insert(field, value);
                }
                dns if dns.starts_with(DNS) => {
                    let field = dns[DNS.len()..].to_lowercase();
                    let value = match field.as_str() {
                        "query_timeout_ms" => parse_int(&var, value)?,
                        "prune" => toml::Value::Boolean(parse_bool(&var, value)?),
                        "nameservers" => toml::Value::Array(
                            value
                                .split(',')
                                .map(str::trim)
                                .filter(|v| !v.is_empty())
                                .map(|v| toml::Value::String(v.into()))
                                .collect(),
                        ),
                        "query" | "node_basename" | "service" | "application_name"
                        | "namespace" | "cluster_domain" => toml::Value::String(value.clone()),
                        _ => {
                            return Err(ConfigError::Invalid {
                                key: var,
                                value: value.clone(),
                                why: "unknown DNS setting; see actor_remote::cluster's docs".into(),
                            })
                        }
                    };
                    config.insert(field, value);
                }
                _ => {
                    return Err(ConfigError::Invalid {
                        key: var,
                        value: value.clone(),
                        why: "unknown cluster setting; see actor_remote::cluster's docs".into(),
                    })
                }
            }
        }
        topology.insert("config".into(), toml::Value::Table(config));
        let spec: TopologySpec = topology.try_into()?;
        let strategy = strategy(&name, &spec.strategy, spec.config)?;
        let mut t = Topology::boxed(name, strategy);
        let initial = spec
            .backoff_initial_ms
            .map_or(t.backoff_initial, Duration::from_millis);
        let max = spec
            .backoff_max_ms
            .map_or(t.backoff_max, Duration::from_millis);
        t = t.backoff(initial, max);
        if let Some(ms) = spec.connect_timeout_ms {
            t = t.connect_timeout(Duration::from_millis(ms));
        }
        out = out.topology(t);
        Ok(out)
    }
}

fn parse_int(key: &str, value: &str) -> Result<toml::Value, ConfigError> {
    value
        .trim()
        .parse::<i64>()
        .map(toml::Value::Integer)
        .map_err(|e| ConfigError::Invalid {
            key: key.into(),
            value: value.into(),
            why: format!("expected a whole number: {e}"),
        })
}

fn parse_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        _ => Err(ConfigError::Invalid {
            key: key.into(),
            value: value.into(),
            why: "expected true or false".into(),
        }),
    }
}
