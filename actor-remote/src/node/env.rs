//! A node's configuration from the environment or a TOML file, for releases: seed 003 sets
//! `RELEASE_NODE=app@$POD_IP` and `RELEASE_COOKIE` and nothing else.
//!
//! The variables and TOML keys are listed on [`NodeConfig::from_env`]. A value that does
//! not parse is a [`ConfigError`] naming the variable (or key), the value,
//! and the accepted forms. The cluster's topology comes from its own variables (see
//! [`cluster`](crate::cluster)).

use std::{net::IpAddr, path::Path, time::Duration};

use actor_core::{NameMode, NodeName};

use super::config::NodeConfig;
use crate::{port_mapper::PortMapperMode, Cookie};

/// A configuration value that is missing or does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A required variable is not set.
    #[error("{var} is not set: set it to the node's name, as {var}=app@10.0.0.5")]
    Missing {
        /// The variable (or TOML key).
        var: &'static str,
    },
    /// A value does not parse.
    #[error("{var}={value:?} is not valid: expected {expected}")]
    Invalid {
        /// The variable (or TOML key).
        var: &'static str,
        /// The value found.
        value: String,
        /// The accepted forms.
        expected: &'static str,
    },
    /// The TLS settings (`NODUS_TLS_*`) are incomplete or not usable.
    #[error("{var}: {reason}")]
    Tls {
        /// The variable (or TOML key).
        var: &'static str,
        /// What is wrong and what to do.
        reason: String,
    },
    /// The file could not be read or is not TOML.
    #[error("the configuration file {path} cannot be used: {reason}")]
    File {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// Where a setting is looked up: by variable name (the TOML reader maps keys to the same
/// names).
type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

fn first(get: Lookup<'_>, vars: &[&'static str]) -> Option<(&'static str, String)> {
    vars.iter()
        .find_map(|v| get(v).filter(|s| !s.trim().is_empty()).map(|s| (*v, s)))
}

fn parse_bool(var: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::Invalid {
            var,
            value: value.to_string(),
            expected: "true or false",
        }),
    }
}

fn parse_with<T: std::str::FromStr>(
    var: &'static str,
    value: &str,
    expected: &'static str,
) -> Result<T, ConfigError> {
    value.trim().parse().map_err(|_| ConfigError::Invalid {
        var,
        value: value.to_string(),
        expected,
    })
}

impl NodeConfig {
    /// The configuration from the process's environment:
    ///
    /// | Variable | TOML key (`[node]`) | Meaning | Default |
    /// |---|---|---|---|
    /// | `NODUS_NODE` (or `RELEASE_NODE`) | `name` | `name@host`, or `name` alone with `NODUS_HOST` | required |
    /// | `NODUS_HOST` | `host` | the host part when `NODUS_NODE` has none (a pod IP, say) | |
    /// | `NODUS_DISTRIBUTION` (or `RELEASE_DISTRIBUTION`) | `distribution` | `sname` or `name` (long names) | `name` for an IP or a dotted host, else `sname` |
    /// | `NODUS_COOKIE` (or `RELEASE_COOKIE`) | `cookie` | the cookie | `~/.nodus.cookie` |
    /// | `NODUS_LISTEN_IP` | `listen_ip` | the address to listen on | the host's address if it is one, else all |
    /// | `NODUS_PORT` | `port` | the distribution port; 0 lets the OS choose | 0 |
    /// | `NODUS_PORT_MAPPER` | `port_mapper` | `ip:port` of the port mapper | `127.0.0.1:4369` (`ERL_EPMD_PORT`) |
    /// | `NODUS_PORT_MAPPER_MODE` | `port_mapper_mode` | when none answers: `embedded` (host one), `process` (start a detached `nodus epmd --daemon`, as `erl` starts `epmd -daemon`) or `none` (fail) | `embedded` |
    /// | `NODUS_PORT_MAPPER_PROGRAM` | `port_mapper_program` | the program `process` starts | `nodus` (on `PATH`) |
    /// | `NODUS_TICK_TIME` | `tick_time` | seconds of silence before a peer is down (`net_ticktime`) | 60 |
    /// | `NODUS_HIDDEN` | `hidden` | `true` for a hidden node | `false` |
    /// | `NODUS_CONNECT_ALL` | `connect_all` | `false` to keep out of the full mesh | `true` |
    /// | `NODUS_TLS_CERT` | `tls_cert` | PEM file of this node's certificate chain (TLS between nodes, the `tls` feature; set the three together) | no TLS |
    /// | `NODUS_TLS_KEY` | `tls_key` | PEM file of its private key | |
    /// | `NODUS_TLS_CA` | `tls_ca` | PEM file of the CA certificates peers' certificates must chain to | |
    /// | `NODUS_TLS_VERIFY_CLIENT` | `tls_verify_client` | `false` to accept dialling nodes without a certificate (no mutual TLS) | `true` |
    ///
    ///
    /// `RELEASE_*` are an Elixir release's names, read when the `NODUS_*` one is not set.
    ///
    /// # Errors
    /// [`ConfigError`] naming the variable that is missing or wrong.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&|var| std::env::var(var).ok())
    }

    /// The configuration from the variables `get` gives (the environment's, or a map's in
    /// tests).
    ///
    /// ```
    /// use actor_remote::NodeConfig;
    /// let vars = [("RELEASE_NODE", "app@10.1.2.3"), ("RELEASE_COOKIE", "s3cret")];
    /// let config = NodeConfig::from_lookup(&|k| {
    ///     vars.iter().find(|(name, _)| *name == k).map(|(_, v)| v.to_string())
    /// })?;
    /// assert_eq!(config.name, "app@10.1.2.3");
    /// assert_eq!(config.name_mode, actor_core::NameMode::Long);
    /// assert!(config.cookie.is_some());
    /// # Ok::<(), actor_remote::ConfigError>(())
    /// ```
    ///
    /// # Errors
    /// [`ConfigError`] naming the variable that is missing or wrong.
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let (node_var, node) = first(get, &["NODUS_NODE", "RELEASE_NODE"])
            .ok_or(ConfigError::Missing { var: "NODUS_NODE" })?;
        let name = match (node.contains('@'), first(get, &["NODUS_HOST"])) {
            (true, _) => node.trim().to_string(),
            (false, Some((_, host))) => format!("{}@{}", node.trim(), host.trim()),
            (false, None) => {
                return Err(ConfigError::Invalid {
                    var: node_var,
                    value: node,
                    expected: "name@host (or set NODUS_HOST for the host part)",
                })
            }
        };
        let parsed = NodeName::parse(&name).map_err(|_| ConfigError::Invalid {
            var: node_var,
            value: name.clone(),
            expected: "name@host: letters, digits, '_' and '-' before @, a host name or IP after",
        })?;
        let mode = match first(get, &["NODUS_DISTRIBUTION", "RELEASE_DISTRIBUTION"]) {
            None => parsed.mode(),
            Some((var, value)) => match value.trim() {
                "sname" | "short" => NameMode::Short,
                "name" | "long" => NameMode::Long,
                _ => {
                    return Err(ConfigError::Invalid {
                        var,
                        value,
                        expected: "sname (short names) or name (long names)",
                    })
                }
            },
        };
        if let Err(e) = parsed.check_mode(mode) {
            return Err(ConfigError::Invalid {
                var: node_var,
                value: format!("{name} ({e})"),
                expected:
                    "a host that fits the distribution: no dot for sname, a dot or an IP for name",
            });
        }
        let mut config = match mode {
            NameMode::Short => NodeConfig::sname(&name),
            NameMode::Long => NodeConfig::lname(&name),
        };
        if let Some((var, value)) = first(get, &["NODUS_COOKIE", "RELEASE_COOKIE"]) {
            config.cookie = Some(Cookie::new(value.trim()).map_err(|_| ConfigError::Invalid {
                var,
                value: "(hidden)".into(),
                expected: "a non-empty cookie",
            })?);
        }
        if let Some((var, value)) = first(get, &["NODUS_LISTEN_IP"]) {
            config.listen_ip = Some(parse_with::<IpAddr>(var, &value, "an IP address")?);
        }
        if let Some((var, value)) = first(get, &["NODUS_PORT"]) {
            config.listen_port = parse_with(var, &value, "a port number, 0 to 65535")?;
        }
        if let Some((var, value)) = first(get, &["NODUS_PORT_MAPPER"]) {
            config.port_mapper = Some(parse_with(var, &value, "ip:port, as 127.0.0.1:4369")?);
        }
        if let Some((var, value)) = first(get, &["NODUS_PORT_MAPPER_MODE"]) {
            let program = first(get, &["NODUS_PORT_MAPPER_PROGRAM"])
                .map_or_else(|| "nodus".to_string(), |(_, p)| p.trim().to_string());
            config.port_mapper_mode = match value.trim() {
                "embedded" => PortMapperMode::Embedded,
                "process" => PortMapperMode::process(program),
                "none" => PortMapperMode::None,
                _ => {
                    return Err(ConfigError::Invalid {
                        var,
                        value,
                        expected: "embedded, process or none",
                    })
                }
            };
        }
        if let Some((var, value)) = first(get, &["NODUS_TICK_TIME"]) {
            let secs: u64 = parse_with(var, &value, "whole seconds, at least 1")?;
            if secs == 0 {
                return Err(ConfigError::Invalid {
                    var,
                    value,
                    expected: "whole seconds, at least 1",
                });
            }
            config.tick_time = Duration::from_secs(secs);
        }
        if let Some((var, value)) = first(get, &["NODUS_HIDDEN"]) {
            config.hidden = parse_bool(var, &value)?;
        }
        if let Some((var, value)) = first(get, &["NODUS_CONNECT_ALL"]) {
            config.connect_all = parse_bool(var, &value)?;
        }
        tls_from(get, &mut config)?;
        Ok(config)
    }

    /// The configuration from the `[node]` table of a TOML file, with the keys of the
    /// table of [`NodeConfig::from_env`].
    ///
    /// # Errors
    /// [`ConfigError::File`] for a file that cannot be read or parsed, else as
    /// [`NodeConfig::from_lookup`] with the key's variable named.
    pub fn from_toml_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::from_toml_str(&text).map_err(|e| match e {
            ConfigError::File { reason, .. } => ConfigError::File {
                path: path.display().to_string(),
                reason,
            },
            other => other,
        })
    }

    /// The configuration from TOML text with a `[node]` table.
    ///
    /// ```
    /// use actor_remote::NodeConfig;
    /// let config = NodeConfig::from_toml_str(r#"
    ///     [node]
    ///     name = "hoge@localhost"
    ///     cookie = "mycookie"
    ///     tick_time = 10
    ///     hidden = true
    /// "#)?;
    /// assert_eq!(config.tick_time, std::time::Duration::from_secs(10));
    /// assert!(config.hidden);
    /// # Ok::<(), actor_remote::ConfigError>(())
    /// ```
    ///
    /// # Errors
    /// As [`NodeConfig::from_toml_file`].
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let file = |reason: String| ConfigError::File {
            path: "(text)".into(),
            reason,
        };
        let doc: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| file(e.to_string()))?;
        let node = match doc.get("node") {
            Some(toml::Value::Table(t)) => t.clone(),
            Some(_) => return Err(file("`node` must be a table: write [node]".into())),
            None => return Err(file("no [node] table".into())),
        };
        const KEYS: &[(&str, &str)] = &[
            ("name", "NODUS_NODE"),
            ("host", "NODUS_HOST"),
            ("distribution", "NODUS_DISTRIBUTION"),
            ("cookie", "NODUS_COOKIE"),
            ("listen_ip", "NODUS_LISTEN_IP"),
            ("port", "NODUS_PORT"),
            ("port_mapper", "NODUS_PORT_MAPPER"),
            ("port_mapper_mode", "NODUS_PORT_MAPPER_MODE"),
            ("port_mapper_program", "NODUS_PORT_MAPPER_PROGRAM"),
            ("tick_time", "NODUS_TICK_TIME"),
            ("hidden", "NODUS_HIDDEN"),
            ("connect_all", "NODUS_CONNECT_ALL"),
            ("tls_cert", "NODUS_TLS_CERT"),
            ("tls_key", "NODUS_TLS_KEY"),
            ("tls_ca", "NODUS_TLS_CA"),
            ("tls_verify_client", "NODUS_TLS_VERIFY_CLIENT"),
        ];
        if let Some(unknown) = node.keys().find(|k| !KEYS.iter().any(|(key, _)| key == k)) {
            return Err(file(format!(
                "unknown key `{unknown}` in [node]; known: {}",
                KEYS.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
            )));
        }
        let get = |var: &str| {
            let key = KEYS.iter().find(|(_, v)| *v == var)?.0;
            node.get(key).map(|value| match value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(n) => n.to_string(),
                toml::Value::Float(x) => x.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                // Not a scalar: no variable takes one, so this fails to parse with the
                // key's variable named.
                _ => format!("({} value)", value.type_str()),
            })
        };
        Self::from_lookup(&get)
    }
}

/// The TLS variables, files first.
const TLS_VARS: [&str; 4] = [
    "NODUS_TLS_CERT",
    "NODUS_TLS_KEY",
    "NODUS_TLS_CA",
    "NODUS_TLS_VERIFY_CLIENT",
];

/// `NODUS_TLS_*`: the three files together (or none), read and checked now.
#[cfg(feature = "tls")]
fn tls_from(get: Lookup<'_>, config: &mut NodeConfig) -> Result<(), ConfigError> {
    use crate::transport::{TlsConfig, TlsError};

    let [cert, key, ca, verify] = TLS_VARS.map(|var| first(get, &[var]));
    let (cert, key, ca) = match (cert, key, ca) {
        (None, None, None) => {
            return match verify {
                None => Ok(()),
                Some((var, _)) => Err(ConfigError::Tls {
                    var,
                    reason: "set without NODUS_TLS_CERT, NODUS_TLS_KEY and NODUS_TLS_CA; set \
                             those too, or unset it"
                        .into(),
                }),
            };
        }
        (Some(cert), Some(key), Some(ca)) => (cert, key, ca),
        files => {
            let set = [&files.0, &files.1, &files.2];
            let missing = (0..3)
                .find(|i| set[*i].is_none())
                .map_or(TLS_VARS[0], |i| TLS_VARS[i]);
            return Err(ConfigError::Tls {
                var: missing,
                reason: "not set, while other NODUS_TLS_* files are: set NODUS_TLS_CERT, \
                         NODUS_TLS_KEY and NODUS_TLS_CA together (or none, for plain TCP)"
                    .into(),
            });
        }
    };
    let require_client_auth = match verify {
        None => true,
        Some((var, value)) => parse_bool(var, &value)?,
    };
    let read = |(var, path): &(&'static str, String)| {
        std::fs::read(path.trim()).map_err(|e| ConfigError::Tls {
            var,
            reason: format!("cannot read {}: {e}", path.trim()),
        })
    };
    let tls = TlsConfig::from_pem(
        &read(&cert)?,
        &read(&key)?,
        &read(&ca)?,
        require_client_auth,
    )
    .map_err(|e| {
        let var = match &e {
            TlsError::Pem { what, .. } if *what == "private key" => key.0,
            TlsError::Pem { what, .. } if *what == "CA certificate" => ca.0,
            _ => cert.0,
        };
        ConfigError::Tls {
            var,
            reason: e.to_string(),
        }
    })?;
    config.tls = Some(tls);
    Ok(())
}

/// `NODUS_TLS_*` in a build without TLS: refused rather than silently running plain TCP.
#[cfg(not(feature = "tls"))]
fn tls_from(get: Lookup<'_>, _config: &mut NodeConfig) -> Result<(), ConfigError> {
    match first(get, &TLS_VARS) {
        None => Ok(()),
        Some((var, _)) => Err(ConfigError::Tls {
            var,
            reason: "this build of nodus has no TLS; build it with the `tls` feature, or unset \
                     the variable"
                .into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn a_release_from_the_pod_ip() {
        let vars = [("RELEASE_NODE", "app@10.1.2.3"), ("RELEASE_COOKIE", "c")];
        let config = NodeConfig::from_lookup(&lookup(&vars)).expect("valid");
        assert_eq!(config.name, "app@10.1.2.3");
        assert_eq!(config.name_mode, NameMode::Long);
        // NODUS_ wins over RELEASE_.
        let vars = [("NODUS_NODE", "a@vm"), ("RELEASE_NODE", "b@vm")];
        let config = NodeConfig::from_lookup(&lookup(&vars)).expect("valid");
        assert_eq!(
            (config.name.as_str(), config.name_mode),
            ("a@vm", NameMode::Short)
        );
        // The host apart, from NODUS_HOST.
        let vars = [("NODUS_NODE", "app"), ("NODUS_HOST", "10.0.0.9")];
        let config = NodeConfig::from_lookup(&lookup(&vars)).expect("valid");
        assert_eq!(config.name, "app@10.0.0.9");
    }

    #[test]
    fn every_setting_is_read() {
        let vars = [
            ("NODUS_NODE", "x@localhost"),
            ("NODUS_DISTRIBUTION", "name"),
            ("NODUS_LISTEN_IP", "127.0.0.1"),
            ("NODUS_PORT", "9100"),
            ("NODUS_PORT_MAPPER", "127.0.0.1:4400"),
            ("NODUS_TICK_TIME", "5"),
            ("NODUS_HIDDEN", "yes"),
            ("NODUS_CONNECT_ALL", "false"),
            ("NODUS_PORT_MAPPER_MODE", "process"),
            ("NODUS_PORT_MAPPER_PROGRAM", "/opt/bin/nodus"),
        ];
        let c = NodeConfig::from_lookup(&lookup(&vars)).expect("valid");
        assert_eq!(
            c.port_mapper_mode,
            PortMapperMode::process("/opt/bin/nodus")
        );
        assert_eq!(c.name_mode, NameMode::Long, "localhost is a long name too");
        assert_eq!(c.listen_ip, Some([127, 0, 0, 1].into()));
        assert_eq!(c.listen_port, 9100);
        assert_eq!(c.port_mapper, Some(([127, 0, 0, 1], 4400).into()));
        assert_eq!(c.tick_time, Duration::from_secs(5));
        assert!(c.hidden && !c.connect_all);
    }

    #[test]
    fn a_bad_value_names_its_variable_and_the_accepted_forms() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "NODUS_NODE"),
            (&[("NODUS_NODE", "app")], "NODUS_NODE"),
            (&[("NODUS_NODE", "a.b@vm")], "NODUS_NODE"),
            (
                &[("NODUS_NODE", "a@vm"), ("NODUS_DISTRIBUTION", "long!")],
                "NODUS_DISTRIBUTION",
            ),
            (
                &[
                    ("NODUS_NODE", "a@h.example.com"),
                    ("NODUS_DISTRIBUTION", "sname"),
                ],
                "NODUS_NODE",
            ),
            (
                &[("NODUS_NODE", "a@vm"), ("NODUS_PORT", "99999")],
                "NODUS_PORT",
            ),
            (
                &[("NODUS_NODE", "a@vm"), ("NODUS_PORT_MAPPER_MODE", "daemon")],
                "NODUS_PORT_MAPPER_MODE",
            ),
            (
                &[("NODUS_NODE", "a@vm"), ("NODUS_TICK_TIME", "0")],
                "NODUS_TICK_TIME",
            ),
            (
                &[("NODUS_NODE", "a@vm"), ("NODUS_HIDDEN", "maybe")],
                "NODUS_HIDDEN",
            ),
            (
                &[("NODUS_NODE", "a@vm"), ("NODUS_LISTEN_IP", "here")],
                "NODUS_LISTEN_IP",
            ),
        ];
        for (vars, var) in cases {
            let err = NodeConfig::from_lookup(&lookup(vars)).expect_err("invalid");
            let text = err.to_string();
            assert!(text.contains(var), "{vars:?}: {text}");
        }
    }

    #[test]
    fn toml_has_the_same_keys_and_refuses_unknown_ones() {
        let c = NodeConfig::from_toml_str(
            "[node]\nname = \"a@10.0.0.1\"\nport = 9000\nconnect_all = false\n",
        )
        .expect("valid");
        assert_eq!((c.listen_port, c.connect_all), (9000, false));
        let err =
            NodeConfig::from_toml_str("[node]\nname = \"a@vm\"\nnmae = 1\n").expect_err("typo");
        assert!(err.to_string().contains("nmae"), "{err}");
        let err =
            NodeConfig::from_toml_str("[node]\nname = \"a@vm\"\nport = \"x\"\n").expect_err("bad");
        assert!(err.to_string().contains("NODUS_PORT"), "{err}");
        assert!(NodeConfig::from_toml_str("name = 1").is_err());
        assert!(matches!(
            NodeConfig::from_toml_file("/nonexistent/nodus.toml"),
            Err(ConfigError::File { .. })
        ));
    }

    /// One TLS file alone is refused, naming a variable to set (with the `tls` feature) or
    /// the variable a build without TLS cannot honour.
    #[test]
    fn tls_variables_go_together_and_need_the_feature() {
        let vars = [("NODUS_NODE", "a@vm"), ("NODUS_TLS_CERT", "/x/node.pem")];
        let err = NodeConfig::from_lookup(&lookup(&vars)).expect_err("incomplete");
        let expected = if cfg!(feature = "tls") {
            "NODUS_TLS_KEY"
        } else {
            "NODUS_TLS_CERT"
        };
        assert!(
            matches!(&err, ConfigError::Tls { var, .. } if *var == expected),
            "{err}"
        );
        let vars = [("NODUS_NODE", "a@vm")];
        assert!(NodeConfig::from_lookup(&lookup(&vars)).is_ok());
    }

    /// The three files configure TLS; a file that is not PEM is an error naming its
    /// variable; `NODUS_TLS_VERIFY_CLIENT` must be a boolean.
    #[cfg(feature = "tls")]
    #[test]
    fn tls_files_from_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["vm".to_string()]).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path.display().to_string()
        };
        let (cert, key, junk) = (
            write("node.pem", &cert.pem()),
            write("node.key", &key.serialize_pem()),
            write("junk.pem", "not pem"),
        );
        let base = |ca: &str, verify: &str| {
            let vars: Vec<(String, String)> = [
                ("NODUS_NODE", "a@vm"),
                ("NODUS_TLS_CERT", cert.as_str()),
                ("NODUS_TLS_KEY", key.as_str()),
                ("NODUS_TLS_CA", ca),
                ("NODUS_TLS_VERIFY_CLIENT", verify),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            NodeConfig::from_lookup(&move |k| {
                vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
            })
        };
        assert!(base(&cert, "false").expect("valid").tls.is_some());
        let err = base(&junk, "true").expect_err("no certificate");
        assert!(
            matches!(
                &err,
                ConfigError::Tls {
                    var: "NODUS_TLS_CA",
                    ..
                }
            ),
            "{err}"
        );
        let err = base(&cert, "maybe").expect_err("not a boolean");
        assert!(err.to_string().contains("NODUS_TLS_VERIFY_CLIENT"), "{err}");
    }
}
