//! TLS between nodes (issue 11, item 5; the `tls` feature), with a CA and node certificates
//! generated here by rcgen: two TLS nodes ping, call an actor and run a remote task; with
//! mutual TLS a node whose certificate another CA signed is refused (both ways round); a
//! plain node and a TLS node refuse each other with `TlsMismatch` both ways round; a wrong
//! cookie inside TLS is still refused.

use std::time::Duration;

use nodus::{
    remote::{
        port_mapper::{PortMapperServer, PortMapperServerHandle},
        transport::TlsConfig,
        ConnectError, Cookie, Node, NodeConfig, Ping,
    },
    NodeName, TaskSupervisor, TaskSupervisorConfig,
};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use serde::{Deserialize, Serialize};
use tokio::time::timeout;

const DEADLINE: Duration = Duration::from_secs(10);
const SUP: &str = "Tls.TaskSupervisor";

/// A certificate authority made for the test.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        Self {
            issuer: CertifiedIssuer::self_signed(params, key).unwrap(),
        }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A node certificate for `localhost` (the host of every node here), as PEM (chain,
    /// key).
    fn node_cert(&self) -> (String, String) {
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, "node");
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// TLS settings with a certificate `signer` signed, trusting `trusted`.
fn tls(signer: &Ca, trusted: &Ca, mutual: bool) -> TlsConfig {
    let (chain, key) = signer.node_cert();
    TlsConfig::from_pem(
        chain.as_bytes(),
        key.as_bytes(),
        trusted.pem().as_bytes(),
        mutual,
    )
    .unwrap()
}

async fn port_mapper() -> PortMapperServerHandle {
    PortMapperServer::bind(([127, 0, 0, 1], 0).into())
        .await
        .unwrap()
        .spawn()
}

async fn start(
    epmd: &PortMapperServerHandle,
    name: &str,
    cookie: &str,
    tls: Option<TlsConfig>,
) -> Node {
    let mut config = NodeConfig::sname(name)
        .cookie(Cookie::new(cookie).unwrap())
        .port_mapper(epmd.local_addr())
        .handshake_timeout(Duration::from_secs(3));
    if let Some(tls) = tls {
        config = config.tls(tls);
    }
    Node::start(config).await.unwrap()
}

async fn connect(from: &Node, to: &str) -> Result<(), ConnectError> {
    let to: NodeName = to.parse().unwrap();
    timeout(DEADLINE, from.connect(&to))
        .await
        .expect("connect answers in time")
}

/// Answers what it is asked, over the wire.
#[derive(Clone, Default, Serialize, Deserialize)]
struct Echo;

#[nodus::actor(remote)]
impl Echo {
    pub async fn shout(&self, text: String) -> String {
        text.to_uppercase()
    }
}

#[tokio::test]
async fn two_tls_nodes_ping_call_and_run_a_remote_task() {
    let epmd = port_mapper().await;
    let ca = Ca::new("cluster CA");
    let a = start(&epmd, "tls_a@localhost", "c", Some(tls(&ca, &ca, true))).await;
    let b = start(&epmd, "tls_b@localhost", "c", Some(tls(&ca, &ca, true))).await;
    Echo::spawn(&b, Some("echo"), Echo).await.unwrap();
    TaskSupervisor::start(&b, TaskSupervisorConfig::new(SUP))
        .await
        .unwrap();
    b.functions()
        .register("Tls", "double", |n: u64| async move { n * 2 });

    assert_eq!(
        timeout(DEADLINE, a.ping("tls_b@localhost")).await.unwrap(),
        Ping::Pong
    );
    let b_name: NodeName = "tls_b@localhost".parse().unwrap();
    let echo = Echo::client(&a, ("echo", b_name.clone()));
    let shouted = timeout(DEADLINE, echo.shout("over tls".into()))
        .await
        .expect("an answer in time")
        .expect("the call succeeds");
    assert_eq!(shouted, "OVER TLS");
    let task = TaskSupervisor::async_on::<_, u64>(&a, (SUP, b_name), "Tls", "double", 21u64)
        .await
        .unwrap();
    assert_eq!(timeout(DEADLINE, task).await.unwrap(), Ok(42));
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn mutual_tls_refuses_a_node_whose_certificate_another_ca_signed() {
    let epmd = port_mapper().await;
    let (ca, other) = (Ca::new("cluster CA"), Ca::new("another CA"));
    let a = start(&epmd, "mtls_a@localhost", "c", Some(tls(&ca, &ca, true))).await;
    // b trusts the cluster's CA (so it accepts a's certificate) but its own certificate is
    // signed by another CA, which a does not trust.
    let b = start(&epmd, "mtls_b@localhost", "c", Some(tls(&other, &ca, true))).await;

    let err = connect(&b, "mtls_a@localhost").await.unwrap_err();
    assert!(
        matches!(&err, ConnectError::Tls { .. }) && err.to_string().contains("certificate"),
        "b dialling a: {err}"
    );
    let err = connect(&a, "mtls_b@localhost").await.unwrap_err();
    assert!(
        matches!(&err, ConnectError::Tls { .. }) && err.to_string().contains("NODUS_TLS_CA"),
        "a dialling b: {err}"
    );
    assert!(a.list().is_empty() && b.list().is_empty());
    println!("refused: {err}");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_plain_node_and_a_tls_node_refuse_each_other_both_ways() {
    let epmd = port_mapper().await;
    let ca = Ca::new("cluster CA");
    let secure = start(&epmd, "sec@localhost", "c", Some(tls(&ca, &ca, true))).await;
    let plain = start(&epmd, "plain@localhost", "c", None).await;

    let err = connect(&plain, "sec@localhost").await.unwrap_err();
    assert_eq!(
        err,
        ConnectError::TlsMismatch {
            node: "sec@localhost".parse().unwrap(),
            peer_requires_tls: true
        },
        "{err}"
    );
    assert!(err
        .to_string()
        .contains("requires TLS but this node speaks plain"));
    println!("plain dialling tls: {err}");
    let err = connect(&secure, "plain@localhost").await.unwrap_err();
    assert_eq!(
        err,
        ConnectError::TlsMismatch {
            node: "plain@localhost".parse().unwrap(),
            peer_requires_tls: false
        },
        "{err}"
    );
    assert!(err.to_string().contains("NODUS_TLS_CERT"));
    println!("tls dialling plain: {err}");
    assert!(plain.list().is_empty() && secure.list().is_empty());
    plain.shutdown().await;
    secure.shutdown().await;
}

#[tokio::test]
async fn a_wrong_cookie_inside_tls_is_still_refused() {
    let epmd = port_mapper().await;
    let ca = Ca::new("cluster CA");
    let a = start(&epmd, "ck_a@localhost", "one", Some(tls(&ca, &ca, true))).await;
    let b = start(&epmd, "ck_b@localhost", "two", Some(tls(&ca, &ca, true))).await;
    let err = connect(&a, "ck_b@localhost").await.unwrap_err();
    assert!(
        matches!(&err, ConnectError::Handshake { reason, .. } if reason.contains("cookie")),
        "{err}"
    );
    assert!(a.list().is_empty() && b.list().is_empty());
    a.shutdown().await;
    b.shutdown().await;
}
