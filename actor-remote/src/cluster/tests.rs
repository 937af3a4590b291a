//! Configuration from TOML and environment variables.

use std::time::Duration;

use super::{ClusterConfig, ConfigError};

#[test]
fn toml_names_topologies_and_their_strategies() {
    let config = ClusterConfig::from_toml(
        r#"
        debug = true
        [topologies.hosts]
        strategy = "epmd"
        backoff_initial_ms = 100
        backoff_max_ms = 1000
        config = { hosts = ["a@localhost"], poll_interval_ms = 250 }
        [topologies.here]
        strategy = "local_epmd"
        [topologies.gossip]
        strategy = "gossip"
        config = { port = 45000, multicast_if = "127.0.0.1", secret = "s", multicast_ttl = 0 }
        "#,
    )
    .unwrap();
    assert!(config.is_debug());
    let kinds: Vec<_> = config.topologies().map(|t| (t.name(), t.kind())).collect();
    assert_eq!(
        kinds,
        [
            ("gossip", "gossip"),
            ("here", "local_port_mapper"),
            ("hosts", "static_hosts")
        ]
    );
    let hosts = config.topologies().find(|t| t.name() == "hosts").unwrap();
    assert_eq!(hosts.backoff_initial, Duration::from_millis(100));
    assert_eq!(hosts.backoff_max, Duration::from_millis(1000));
}

#[test]
fn a_secret_never_reaches_debug() {
    let config = ClusterConfig::from_toml(
        "[topologies.g]\nstrategy = \"gossip\"\nconfig = { secret = \"hunter2\" }\n",
    )
    .unwrap();
    let cfg = super::GossipConfig {
        secret: Some("hunter2".into()),
        ..Default::default()
    };
    assert!(!format!("{cfg:?}").contains("hunter2"));
    assert!(!format!("{config:?}").contains("hunter2"));
}

#[test]
fn mistakes_are_errors_that_name_them() {
    let unknown_key =
        ClusterConfig::from_toml("[topologies.g]\nstrategy = \"gossip\"\nconfig = { prot = 1 }\n")
            .unwrap_err();
    assert!(unknown_key.to_string().contains("prot"), "{unknown_key}");
    let unknown_strategy =
        ClusterConfig::from_toml("[topologies.g]\nstrategy = \"dns\"\n").unwrap_err();
    assert!(matches!(
        unknown_strategy,
        ConfigError::UnknownStrategy { .. }
    ));
    let bad_host = ClusterConfig::from_toml(
        "[topologies.h]\nstrategy = \"static_hosts\"\nconfig = { hosts = [\"nohost\"] }\n",
    )
    .unwrap_err();
    assert!(
        matches!(bad_host, ConfigError::Invalid { .. }),
        "{bad_host}"
    );
    let missing_hosts =
        ClusterConfig::from_toml("[topologies.h]\nstrategy = \"static_hosts\"\n").unwrap_err();
    assert!(
        missing_hosts.to_string().contains("hosts"),
        "{missing_hosts}"
    );
    let bad_ip = ClusterConfig::from_toml(
        "[topologies.g]\nstrategy = \"gossip\"\nconfig = { multicast_if = \"lo\" }\n",
    )
    .unwrap_err();
    assert!(matches!(bad_ip, ConfigError::Toml(_)), "{bad_ip}");
}

#[test]
fn environment_variables_make_one_topology() {
    let none = ClusterConfig::from_vars([("HOME", "/root")]).unwrap();
    assert_eq!(none.topologies().count(), 0);
    let config = ClusterConfig::from_vars([
        ("NODUS_CLUSTER_STRATEGY", "static_hosts"),
        ("NODUS_CLUSTER_TOPOLOGY", "app"),
        ("NODUS_CLUSTER_HOSTS", "a@localhost, b@localhost"),
        ("NODUS_CLUSTER_POLL_INTERVAL_MS", "100"),
        ("NODUS_CLUSTER_BACKOFF_MAX_MS", "2000"),
        ("NODUS_CLUSTER_DEBUG", "1"),
    ])
    .unwrap();
    let t = config.topologies().next().unwrap();
    assert_eq!((t.name(), t.kind()), ("app", "static_hosts"));
    assert_eq!(t.backoff_max, Duration::from_millis(2000));
    assert!(config.is_debug());
    let gossip = ClusterConfig::from_vars([
        ("NODUS_CLUSTER_STRATEGY", "gossip"),
        ("NODUS_CLUSTER_GOSSIP_BROADCAST_ONLY", "true"),
        ("NODUS_CLUSTER_GOSSIP_MULTICAST_ADDR", "255.255.255.255"),
        ("NODUS_CLUSTER_GOSSIP_INTERVAL_MS", "200"),
    ])
    .unwrap();
    assert_eq!(gossip.topologies().next().unwrap().kind(), "gossip");
    let bad = ClusterConfig::from_vars([
        ("NODUS_CLUSTER_STRATEGY", "gossip"),
        ("NODUS_CLUSTER_GOSSIP_PORT", "many"),
    ])
    .unwrap_err();
    assert!(
        bad.to_string().contains("NODUS_CLUSTER_GOSSIP_PORT"),
        "{bad}"
    );
    let typo = ClusterConfig::from_vars([
        ("NODUS_CLUSTER_STRATEGY", "gossip"),
        ("NODUS_CLUSTER_GOSIP_PORT", "1"),
    ])
    .unwrap_err();
    assert!(
        typo.to_string().contains("NODUS_CLUSTER_GOSIP_PORT"),
        "{typo}"
    );
}

#[test]
fn dns_strategies_from_toml_and_environment() {
    let config = ClusterConfig::from_toml(
        r#"
        [topologies.poll]
        strategy = "dns_poll"
        config = { query = "app.example.", node_basename = "app", prune = false, nameservers = ["127.0.0.1:5353"], poll_interval_ms = 1000, query_timeout_ms = 500 }
        [topologies.k8s]
        strategy = "kubernetes_dns"
        config = { service = "app-headless.default.svc.cluster.local.", application_name = "app" }
        [topologies.srv]
        strategy = "kubernetes_dns_srv"
        config = { service = "app", namespace = "default", application_name = "app", cluster_domain = "cluster.test." }
        "#,
    )
    .unwrap();
    let kinds: Vec<_> = config.topologies().map(|t| (t.name(), t.kind())).collect();
    assert_eq!(
        kinds,
        [
            ("k8s", "kubernetes_dns"),
            ("poll", "dns_poll"),
            ("srv", "kubernetes_dns_srv")
        ]
    );
    let env = ClusterConfig::from_vars([
        ("NODUS_CLUSTER_STRATEGY", "kubernetes_dns_srv"),
        ("NODUS_CLUSTER_DNS_SERVICE", "app"),
        ("NODUS_CLUSTER_DNS_NAMESPACE", "default"),
        ("NODUS_CLUSTER_DNS_APPLICATION_NAME", "app"),
        ("NODUS_CLUSTER_DNS_PRUNE", "false"),
        ("NODUS_CLUSTER_DNS_NAMESERVERS", "127.0.0.1:53, [::1]:53"),
        ("NODUS_CLUSTER_DNS_QUERY_TIMEOUT_MS", "300"),
        ("NODUS_CLUSTER_POLL_INTERVAL_MS", "100"),
    ])
    .unwrap();
    assert_eq!(
        env.topologies().next().map(|t| t.kind()),
        Some("kubernetes_dns_srv")
    );
}

#[test]
fn dns_mistakes_are_errors_that_name_them() {
    let missing = ClusterConfig::from_toml(
        "[topologies.d]\nstrategy = \"dns_poll\"\nconfig = { query = \"a.\" }\n",
    )
    .unwrap_err();
    assert!(missing.to_string().contains("node_basename"), "{missing}");
    let foreign = ClusterConfig::from_toml(
        "[topologies.d]\nstrategy = \"kubernetes_dns\"\nconfig = { service = \"s\", application_name = \"a\", query = \"q\" }\n",
    )
    .unwrap_err();
    assert!(
        foreign.to_string().contains("kubernetes_dns has no query"),
        "{foreign}"
    );
    let typo = ClusterConfig::from_toml(
        "[topologies.d]\nstrategy = \"dns_poll\"\nconfig = { query = \"q\", node_basename = \"a\", polling_interval = 5000 }\n",
    )
    .unwrap_err();
    assert!(typo.to_string().contains("polling_interval"), "{typo}");
    let bad_ns = ClusterConfig::from_vars([
        ("NODUS_CLUSTER_STRATEGY", "dns_poll"),
        ("NODUS_CLUSTER_DNS_QUERY", "q."),
        ("NODUS_CLUSTER_DNS_NODE_BASENAME", "a"),
        ("NODUS_CLUSTER_DNS_NAMESERVERS", "localhost"),
    ])
    .unwrap_err();
    assert!(matches!(bad_ns, ConfigError::Toml(_)), "{bad_ns}");
    let unknown = ClusterConfig::from_vars([
        ("NODUS_CLUSTER_STRATEGY", "dns_poll"),
        ("NODUS_CLUSTER_DNS_QUERRY", "q."),
    ])
    .unwrap_err();
    assert!(
        unknown.to_string().contains("NODUS_CLUSTER_DNS_QUERRY"),
        "{unknown}"
    );
}

#[test]
fn partial_mesh_from_env_and_toml() {
    let config = ClusterConfig::from_vars([
        ("NODUS_CLUSTER_STRATEGY", "partial_mesh"),
        ("NODUS_CLUSTER_HOSTS", "a@h1,b@h2"),
        ("NODUS_CLUSTER_PARTIAL_ACTIVE_SIZE", "4"),
        ("NODUS_CLUSTER_PARTIAL_IDLE_TIMEOUT_MS", "5000"),
    ])
    .expect("valid partial_mesh variables");
    assert_eq!(
        config.topologies().next().map(|t| t.kind()),
        Some("partial_mesh")
    );
    let toml = "[topologies.o]\nstrategy = \"partial_mesh\"\n[topologies.o.config]\nhosts = []\npassive_size = 20\n";
    let config = ClusterConfig::from_toml(toml).expect("valid partial_mesh TOML");
    assert_eq!(
        config.topologies().next().map(|t| t.kind()),
        Some("partial_mesh")
    );
    let bad = "[topologies.o]\nstrategy = \"partial_mesh\"\n[topologies.o.config]\nactive = 3\n";
    assert!(
        ClusterConfig::from_toml(bad).is_err(),
        "an unknown key is refused"
    );
    let bad = ClusterConfig::from_vars([
        ("NODUS_CLUSTER_STRATEGY", "partial_mesh"),
        ("NODUS_CLUSTER_PARTIAL_ACTIVE_SIZE", "five"),
    ]);
    assert!(bad.is_err(), "a size that is not a number is refused");
}
