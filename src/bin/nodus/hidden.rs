//! The command's own node: hidden, named after the process, with the cluster's cookie.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::Duration,
};

use nodus::{
    core::NameMode,
    remote::{cookie::COOKIE_ENV, Cookie, CookieError, Node, NodeConfig, NodeError},
    NodeName,
};

/// Where the command's cookie came from, to say so when a handshake fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CookieFrom {
    Flag,
    Env,
    File,
}

impl fmt::Display for CookieFrom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CookieFrom::Flag => f.write_str("--cookie"),
            CookieFrom::Env => write!(f, "{COOKIE_ENV}; pass --cookie to use another"),
            CookieFrom::File => write!(
                f,
                "~/.nodus.cookie; pass --cookie or set {COOKIE_ENV} to use another"
            ),
        }
    }
}

/// The cookie: `--cookie`, else `NODUS_COOKIE`, else `~/.nodus.cookie` (as a node finds its
/// own, see `nodus::remote::cookie`).
pub(crate) fn cookie(flag: Option<&str>) -> Result<(Cookie, CookieFrom), CookieError> {
    if let Some(text) = flag {
        return Ok((Cookie::new(text)?, CookieFrom::Flag));
    }
    let from = if std::env::var_os(COOKIE_ENV).is_some() {
        CookieFrom::Env
    } else {
        CookieFrom::File
    };
    Ok((Cookie::resolve(None)?, from))
}

/// `nodus_cli_<pid>@<host>`, with short or long names as `target` has them: `localhost` for
/// a short-named target on `localhost`, else this machine's short host name; for a long-named
/// target, this machine's fully qualified host name, else `127.0.0.1` (the command only
/// dials out, so its host part is a label, checked only against the name mode).
pub(crate) fn node_name(target: &NodeName, pid: u32, hostname: Option<&str>) -> String {
    let hostname = hostname.map(str::trim).filter(|h| {
        !h.is_empty()
            && h.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-.".contains(c))
    });
    let host = match target.mode() {
        NameMode::Short if target.host() == "localhost" => "localhost",
        NameMode::Short => hostname
            .and_then(|h| h.split('.').next())
            .filter(|h| !h.is_empty())
            .unwrap_or("localhost"),
        NameMode::Long => match target.host().parse::<IpAddr>() {
            Ok(ip) if ip.is_loopback() => "127.0.0.1",
            _ => hostname.filter(|h| h.contains('.')).unwrap_or("127.0.0.1"),
        },
    };
    format!("nodus_cli_{pid}@{host}")
}

/// This machine's host name, if the OS says.
fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
}

/// Starts the command's hidden node: it listens on loopback only (it dials out, nobody dials
/// it), does not connect to its peers' peers, and each step is bounded by `timeout`.
pub(crate) async fn start(
    target: &NodeName,
    cookie: Cookie,
    port_mapper: Option<SocketAddr>,
    timeout: Duration,
) -> Result<Node, NodeError> {
    let name = node_name(target, std::process::id(), hostname().as_deref());
    let config = match target.mode() {
        NameMode::Short => NodeConfig::sname(&name),
        NameMode::Long => NodeConfig::lname(&name),
    };
    let mut config = config
        .cookie(cookie)
        .hidden(true)
        .connect_all(false)
        .listen(Ipv4Addr::LOCALHOST.into(), 0)
        .handshake_timeout(timeout);
    if let Some(addr) = port_mapper {
        config = config.port_mapper(addr);
    }
    Node::start(config).await
}

/// Leaves the cluster: closes the session (peers see `disconnect`), unregisters, stops.
pub(crate) async fn leave(node: Node, timeout: Duration) {
    if tokio::time::timeout(timeout, node.shutdown())
        .await
        .is_err()
    {
        eprintln!("nodus: warning: this command's node did not stop within {timeout:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(target: &str, hostname: Option<&str>) -> String {
        node_name(&NodeName::parse(target).unwrap(), 42, hostname)
    }

    #[test]
    fn the_name_fits_the_target_name_mode() {
        assert_eq!(
            name("moebi@localhost", Some("box.example.com")),
            "nodus_cli_42@localhost"
        );
        assert_eq!(
            name("a@box2", Some("box.example.com\n")),
            "nodus_cli_42@box"
        );
        assert_eq!(name("a@box2", None), "nodus_cli_42@localhost");
        assert_eq!(
            name("a@127.0.0.1", Some("box.example.com")),
            "nodus_cli_42@127.0.0.1"
        );
        assert_eq!(
            name("a@10.0.0.5", Some("box.example.com")),
            "nodus_cli_42@box.example.com"
        );
        assert_eq!(
            name("a@app.svc.local", Some("box")),
            "nodus_cli_42@127.0.0.1"
        );
        assert_eq!(
            name("a@app.svc.local", Some("bad host!")),
            "nodus_cli_42@127.0.0.1"
        );
        for (target, hostname) in [
            ("a@localhost", None),
            ("a@box2", Some("box.example.com")),
            ("a@10.0.0.5", Some("box")),
            ("a@app.svc.local", Some("box.example.com")),
        ] {
            let target = NodeName::parse(target).unwrap();
            let ours = NodeName::parse(&node_name(&target, 42, hostname)).unwrap();
            assert_eq!(
                ours.check_mode(target.mode()),
                Ok(()),
                "{ours} for {target}"
            );
        }
    }
}
