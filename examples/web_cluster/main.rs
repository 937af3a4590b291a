//! Seed 003 in Rust: a clustered web service whose homepage lists `node()` and
//! `Node.list()`, configured from the environment alone, as a Mix release on a PaaS is.
//!
//! ```sh
//! # three nodes on one machine, found through the local port mapper
//! for i in 1 2 3; do
//!   NODUS_NODE=web$i@127.0.0.1 NODUS_COOKIE=s3cret PORT=400$i \
//!   NODUS_CLUSTER_STRATEGY=local_port_mapper \
//!   cargo run --features status --example web_cluster &
//! done
//! # http://127.0.0.1:4001/ lists the nodes; http://127.0.0.1:4001/status is the live page
//! ```
//!
//! What it reads, and nothing else:
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `NODUS_NODE` (or `RELEASE_NODE`), `NODUS_COOKIE`, ... | the node: [`NodeConfig::from_env`] | `NODUS_NODE` is required |
//! | `NODUS_CLUSTER_STRATEGY`, `NODUS_CLUSTER_*` | the cluster's topology: [`ClusterConfig::from_env`] (`kubernetes_dns` on Kubernetes, `dns_poll`, `static_hosts`, ...) | no topology |
//! | `PORT` | the HTTP port (a PaaS sets it) | 4000 |
//! | `HTTP_IP` | the HTTP address | `0.0.0.0` |
//! | `DRAIN_TIMEOUT_MS` | how long requests under way may finish after SIGTERM | 10000 |
//!
//! Routes: `/` (the homepage), `/status` (the status page: [`nodus::remote::status`],
//! `/status/api/nodes`, `/status/api/events`), `/healthz` (`ok`, for probes).
//!
//! On SIGTERM (or Ctrl-C) it stops accepting requests, lets those under way finish (at most
//! `DRAIN_TIMEOUT_MS`), leaves the cluster gracefully ([`Node::shutdown`]: peers see the
//! node down with reason `shutdown` and their strategies do not connect it again) and
//! exits 0. It prints `<node> listening on http://<addr>` once it serves, and `<node> left
//! the cluster` at the end.
//!
//! `Dockerfile` and `k8s.yaml` next to this file build and deploy it; README's "Operating a
//! cluster" tells the whole story.

use std::{
    future::IntoFuture,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    process::ExitCode,
    time::Duration,
};

use nodus::remote::{
    status::{
        axum::{
            extract::State,
            response::{Html, Redirect},
            routing::get,
            Router,
        },
        Status,
    },
    Cluster, ClusterConfig, Node, NodeConfig,
};
use tokio::net::TcpListener;

/// The HTTP settings the example reads.
struct Http {
    addr: SocketAddr,
    drain: Duration,
}

impl Http {
    fn from_env() -> Result<Http, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let port = match var("PORT") {
            None => 4000,
            Some(v) => v
                .trim()
                .parse::<u16>()
                .map_err(|_| format!("PORT={v:?} is not valid: expected a port, 0 to 65535"))?,
        };
        let ip = match var("HTTP_IP") {
            None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            Some(v) => v.trim().parse().map_err(|_| {
                format!("HTTP_IP={v:?} is not valid: expected an IP address, as 0.0.0.0 or ::")
            })?,
        };
        let drain = match var("DRAIN_TIMEOUT_MS") {
            None => Duration::from_secs(10),
            Some(v) => Duration::from_millis(v.trim().parse().map_err(|_| {
                format!("DRAIN_TIMEOUT_MS={v:?} is not valid: expected milliseconds, as 10000")
            })?),
        };
        Ok(Http {
            addr: SocketAddr::new(ip, port),
            drain,
        })
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("web_cluster: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let http = Http::from_env()?;
    let node = Node::start(NodeConfig::from_env()?).await?;
    let cluster = Cluster::start(&node, ClusterConfig::from_env()?).await?;
    let status = match cluster.topologies().is_empty() {
        true => Status::new(&node),
        false => Status::builder(&node).cluster(&cluster).start(),
    };
    let app = Router::new()
        .route("/", get(home))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(node.clone())
        .nest("/status", status.router())
        .route("/status/", get(|| async { Redirect::permanent("/status") }));
    let listener = TcpListener::bind(http.addr).await.map_err(|e| {
        format!(
            "cannot listen on {}: {e}; set PORT (and HTTP_IP) to a free address",
            http.addr
        )
    })?;
    println!(
        "{} listening on http://{}",
        node.name(),
        listener.local_addr()?
    );

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut server = tokio::spawn(
        nodus::remote::status::axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .into_future(),
    );
    tokio::select! {
        () = terminated() => {}
        result = &mut server => {
            // The server stopped by itself: an error.
            return Err(format!("the HTTP server stopped: {result:?}").into());
        }
    }
    tracing::info!("stopping: draining requests (at most {:?})", http.drain);
    status.close(); // ends the status page's event streams, which never finish by themselves
    let _ = stop.send(());
    match tokio::time::timeout(http.drain, &mut server).await {
        Ok(Ok(Ok(()))) => tracing::info!("requests drained"),
        Ok(Ok(Err(e))) => tracing::warn!("the HTTP server failed while draining: {e}"),
        Ok(Err(e)) => tracing::warn!("the HTTP server failed while draining: {e}"),
        Err(_) => {
            tracing::warn!("requests still running after {:?}; dropped", http.drain);
            server.abort();
        }
    }
    let name = node.name().clone();
    drop(cluster);
    drop(status);
    node.shutdown().await; // the graceful leave: peers see `shutdown`
    println!("{name} left the cluster");
    Ok(())
}

/// SIGTERM (what Kubernetes and a PaaS send) or Ctrl-C.
async fn terminated() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(e) => {
                tracing::warn!("cannot watch SIGTERM ({e}); Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The homepage: `node()` and `Node.list()`, as seed 003's Phoenix page.
async fn home(State(node): State<Node>) -> Html<String> {
    let peers: String = node
        .list()
        .iter()
        .map(|peer| {
            format!(
                "    <li class=\"peer\">{}</li>\n",
                escape(&peer.to_string())
            )
        })
        .collect();
    let me = escape(&node.name().to_string());
    Html(format!(
        "<!doctype html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>{me}</title></head>\n<body>\n\
         <h1>node(): <span id=\"node\">{me}</span></h1>\n\
         <h2>Node.list()</h2>\n<ul id=\"nodes\">\n{peers}</ul>\n\
         <p><a href=\"status\">the cluster's status page</a></p>\n</body>\n</html>\n"
    ))
}

/// Text for HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
