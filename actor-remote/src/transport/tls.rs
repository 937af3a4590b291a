//! TLS between nodes (the `tls` feature): [`TlsConfig`], set with
//! [`NodeConfig::tls`](crate::NodeConfig::tls) or the `NODUS_TLS_*` variables.
//!
//! A node with TLS wraps every connection to or from another node in TLS (rustls, TLS 1.2 or
//! 1.3) before the cookie handshake, which then runs inside it unchanged: TLS authenticates
//! the hosts and encrypts the traffic, the cookie still decides which nodes form a cluster.
//!
//! - The dialling node checks the peer's certificate against the CA roots of its
//!   [`TlsConfig`] and against the **host part of the peer's node name** (`name@host`: a DNS
//!   name, or an IP address for `name@10.0.0.5`), so each node's certificate must name its
//!   host (as a subject alternative name). [`TlsConfig::server_name`] checks every peer
//!   against one fixed name instead (one certificate shared by a cluster, say).
//! - The accepting node presents its certificate and, with `require_client_auth` (mutual
//!   TLS), asks for the dialler's and checks it against the same roots (no name check: the
//!   cookie handshake names the dialler). Without it, any client may start the TLS handshake
//!   and the cookie alone authenticates the dialler, as on a plain node.
//!
//! A node with TLS and a node without refuse each other: each looks at the first byte a
//! peer sends (a TLS ClientHello starts with `0x16`, a nodus frame with `0x00`), logs a
//! warning saying what happened and what to do, and answers with bytes that make the other
//! side's error say it too ([`ConnectError::TlsMismatch`](crate::node::ConnectError::TlsMismatch)). A plain node does this with or
//! without the `tls` feature. Connections from BEAM nodes (the `erlang` feature) are plain
//! only, so a node with TLS refuses them.

use std::{net::SocketAddr, time::Duration};

use actor_core::NodeName;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use super::Stream;
use crate::{proto::HandshakeError, wire::FrameError};

/// The first byte of a TLS handshake record, which a ClientHello is.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;
/// The first byte of a TLS alert record.
const TLS_ALERT_RECORD: u8 = 0x15;
/// What a node with TLS writes to a peer that opened in plain nodus, before it closes: a
/// fatal TLS alert (`handshake_failure`). The plain peer's handshake reads it as a frame
/// length starting with `0x15 0x03`, which no nodus frame has, and says the peer requires TLS.
const ALERT_TO_PLAIN: [u8; 7] = [TLS_ALERT_RECORD, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28];
/// What a plain node writes to a peer that opened with a TLS ClientHello, before it closes:
/// a nodus frame header, whose first byte (content type 0) no TLS record has, so the TLS
/// peer's error says the peer speaks plain nodus rather than just "connection closed".
const PLAIN_TO_TLS: [u8; 9] = *b"\0\0\0\x05plain";

/// How a connection opened, from its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opening {
    /// A TLS ClientHello.
    Tls,
    /// Anything else: a nodus frame, an Erlang `send_name`, garbage.
    Plain,
    /// Closed, failed or silent until the deadline.
    Nothing,
}

/// The first byte of a connection, waited for at most `deadline`; nothing is consumed.
async fn opening(stream: &TcpStream, deadline: Duration) -> Opening {
    let mut byte = [0u8; 1];
    match tokio::time::timeout(deadline, stream.peek(&mut byte)).await {
        Ok(Ok(1)) if byte[0] == TLS_HANDSHAKE_RECORD => Opening::Tls,
        Ok(Ok(1)) => Opening::Plain,
        _ => Opening::Nothing,
    }
}

/// What to do to reach every node with TLS or none.
const WHAT_TO_DO: &str = "configure TLS on every node (NodeConfig::tls, or NODUS_TLS_CERT, \
                          NODUS_TLS_KEY and NODUS_TLS_CA) or on none";

/// The message of [`ConnectError::TlsMismatch`](crate::node::ConnectError::TlsMismatch).
pub(crate) fn mismatch_message(node: &NodeName, peer_requires_tls: bool) -> String {
    if peer_requires_tls {
        format!("{node} requires TLS but this node speaks plain nodus; {WHAT_TO_DO}")
    } else {
        format!("{node} speaks plain nodus but this node requires TLS; {WHAT_TO_DO}")
    }
}

/// A node's TLS settings as the driver sees them: [`TlsConfig`] with the `tls` feature, and
/// a type with no values without it (so a plain build has one code path, with no TLS).
#[cfg(feature = "tls")]
pub(crate) type NodeTls = TlsConfig;
/// A node's TLS settings as the driver sees them: none in a build without the `tls` feature.
#[cfg(not(feature = "tls"))]
#[derive(Debug)]
pub(crate) enum NodeTls {}

/// Why a dialled connection failed at the TLS layer; the node makes a
/// [`ConnectError`](crate::node::ConnectError) of it, naming the peer.
#[derive(Debug)]
pub(crate) enum TlsFailure {
    /// One node runs TLS and the other does not.
    Mismatch {
        /// Whether the peer requires TLS (and this node speaks plain nodus), or the reverse.
        peer_requires_tls: bool,
    },
    /// Any other TLS failure: what failed, and what to do.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    Tls(String),
}

/// An accepted connection after its first byte was looked at.
#[derive(Debug)]
pub(crate) enum Accepted {
    /// A plain connection on a node without TLS (a nodus node's, or a BEAM node's).
    Plain(TcpStream),
    /// A TLS connection on a node with TLS, its TLS handshake done.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    Tls(Stream),
}

/// Looks at the first byte of an accepted connection and, on a node with TLS, runs the TLS
/// handshake (bounded by `timeout`). `None`: the connection was refused (a plain peer on a
/// node with TLS, or the reverse, with a warning; a failed TLS handshake, with a warning) or
/// closed before it said anything.
pub(crate) async fn accept(
    tls: Option<&NodeTls>,
    stream: TcpStream,
    from: SocketAddr,
    timeout: Duration,
) -> Option<Accepted> {
    match (opening(&stream, timeout).await, tls) {
        (Opening::Nothing, _) => {
            tracing::debug!(%from, "incoming connection closed or silent before its first byte");
            None
        }
        (Opening::Plain, None) => Some(Accepted::Plain(stream)),
        (Opening::Tls, None) => {
            tracing::warn!(
                %from,
                "refused a connection: the peer speaks TLS but this node has no TLS configured; \
                 {WHAT_TO_DO}"
            );
            refuse(stream, &PLAIN_TO_TLS, timeout).await;
            None
        }
        (Opening::Plain, Some(_)) => {
            tracing::warn!(
                %from,
                "refused a connection: the peer speaks plain nodus (or is a BEAM node) but this \
                 node requires TLS; {WHAT_TO_DO}"
            );
            refuse(stream, &ALERT_TO_PLAIN, timeout).await;
            None
        }
        #[cfg(feature = "tls")]
        (Opening::Tls, Some(tls)) => tls.accept(stream, from, timeout).await.map(Accepted::Tls),
        #[cfg(not(feature = "tls"))]
        (Opening::Tls, Some(never)) => match *never {},
    }
}

/// Writes `answer` and reads what the peer sent until it closes (all bounded by `timeout`,
/// errors ignored: the connection is being dropped). Closing a socket with unread bytes
/// would reset the connection, and the reset could reach the peer before the answer.
async fn refuse(mut stream: TcpStream, answer: &[u8], timeout: Duration) {
    let answer_then_drain = async {
        stream.write_all(answer).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 1024];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<(), std::io::Error>(())
    };
    let _ = tokio::time::timeout(timeout, answer_then_drain).await;
}

/// Wraps a dialled connection in TLS on a node with TLS (bounded by `timeout`); a plain node
/// keeps it as it is.
///
/// # Errors
/// [`TlsFailure::Mismatch`] if the peer answered in plain nodus, [`TlsFailure::Tls`] for any
/// other TLS failure (a certificate refused, say), with what to do.
pub(crate) async fn connect(
    tls: Option<&NodeTls>,
    node: &NodeName,
    stream: TcpStream,
    timeout: Duration,
) -> Result<Stream, TlsFailure> {
    match tls {
        None => Ok(stream.into()),
        #[cfg(feature = "tls")]
        Some(tls) => tls.connect(node, stream, timeout).await,
        #[cfg(not(feature = "tls"))]
        Some(never) => {
            let _ = (node, timeout);
            match *never {}
        }
    }
}

/// The TLS failure behind a failed cookie handshake, if that is what it was: a plain node
/// that reads a TLS alert where a handshake frame should be talks to a node that requires
/// TLS; a node with TLS whose peer alerts after the TLS handshake had its certificate refused
/// (TLS 1.3 checks the client's certificate after the client is done).
pub(crate) fn handshake_failure(e: &HandshakeError) -> Option<TlsFailure> {
    if let HandshakeError::Undecodable {
        source: FrameError::TooLarge { len, .. },
    } = e
    {
        if len >> 24 == usize::from(TLS_ALERT_RECORD) && (len >> 16) & 0xff == 0x03 {
            return Some(TlsFailure::Mismatch {
                peer_requires_tls: true,
            });
        }
    }
    #[cfg(feature = "tls")]
    if let HandshakeError::Io { source } = e {
        if let Some(rustls::Error::AlertReceived(alert)) = rustls_error(source) {
            return Some(TlsFailure::Tls(format!(
                "the peer ended the TLS session ({alert:?}), likely refusing this node's \
                 certificate; have this node's certificate signed by a CA the peer trusts (its \
                 NODUS_TLS_CA), or see the peer's log"
            )));
        }
    }
    None
}

#[cfg(feature = "tls")]
fn rustls_error(e: &std::io::Error) -> Option<&rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>()
}

#[cfg(feature = "tls")]
pub use config::{TlsConfig, TlsError};

#[cfg(feature = "tls")]
mod config {
    use std::{fmt, net::SocketAddr, path::Path, sync::Arc, time::Duration};

    use actor_core::NodeName;
    use rustls::{
        crypto::CryptoProvider,
        pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer, ServerName},
        server::WebPkiClientVerifier,
        ClientConfig, RootCertStore, ServerConfig,
    };
    use tokio::net::TcpStream;
    use tokio_rustls::{TlsAcceptor, TlsConnector};

    use super::{rustls_error, Stream, TlsFailure};

    /// A TLS configuration is not usable.
    #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
    #[non_exhaustive]
    pub enum TlsError {
        /// A file could not be read.
        #[error("could not read the {what} file {path}: {reason}")]
        Read {
            /// What the file should hold.
            what: &'static str,
            /// The file.
            path: String,
            /// The error.
            reason: String,
        },
        /// PEM text holds no item of the kind needed, or a malformed one.
        #[error("no valid {what} in {origin} ({reason}); expected PEM, as -----BEGIN {pem}-----")]
        Pem {
            /// What was looked for.
            what: &'static str,
            /// The file, or `(memory)`.
            origin: String,
            /// Why nothing was found.
            reason: String,
            /// The PEM label expected.
            pem: &'static str,
        },
        /// rustls refused the certificates or the key.
        #[error("the TLS settings are not usable: {reason}; check that the key belongs to the first certificate and that the CA certificates are valid")]
        Rustls {
            /// rustls's error.
            reason: String,
        },
        /// The fixed server name is neither a DNS name nor an IP address.
        #[error("{given:?} is not a TLS server name: give a DNS name or an IP address")]
        ServerName {
            /// The name given.
            given: String,
        },
    }

    /// How a node speaks TLS with other nodes: its certificate chain and key (presented as
    /// server and, for mutual TLS, as client), the CA roots that peers' certificates must
    /// chain to, and whether accepted connections must present a certificate. See the
    /// [module](super) for what is checked.
    ///
    /// ```no_run
    /// use actor_remote::{transport::TlsConfig, NodeConfig};
    /// let tls = TlsConfig::from_pem_files("node.pem", "node.key", "ca.pem", true)?;
    /// let config = NodeConfig::lname("app@app-0.example.com").tls(tls);
    /// # Ok::<(), actor_remote::transport::TlsError>(())
    /// ```
    #[derive(Clone)]
    pub struct TlsConfig {
        client: Arc<ClientConfig>,
        server: Arc<ServerConfig>,
        server_name: Option<ServerName<'static>>,
    }

    impl fmt::Debug for TlsConfig {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("TlsConfig")
                .field("server_name", &self.server_name)
                .finish_non_exhaustive()
        }
    }

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn rustls_err(e: impl fmt::Display) -> TlsError {
        TlsError::Rustls {
            reason: e.to_string(),
        }
    }

    fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
        std::fs::read(path).map_err(|e| TlsError::Read {
            what,
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    }

    fn certs(
        what: &'static str,
        pem: &[u8],
        origin: &str,
    ) -> Result<Vec<CertificateDer<'static>>, TlsError> {
        let bad = |reason: String| TlsError::Pem {
            what,
            origin: origin.to_string(),
            reason,
            pem: "CERTIFICATE",
        };
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(e.to_string()))?;
        if certs.is_empty() {
            return Err(bad("none found".into()));
        }
        Ok(certs)
    }

    impl TlsConfig {
        /// From PEM files: this node's certificate chain (its own certificate first), its
        /// private key (PKCS#8, PKCS#1 or SEC1), and the CA certificates peers' certificates
        /// must chain to.
        ///
        /// # Errors
        /// [`TlsError`] naming the file that cannot be read or holds no valid PEM, or what
        /// rustls refused.
        pub fn from_pem_files(
            cert: impl AsRef<Path>,
            key: impl AsRef<Path>,
            ca: impl AsRef<Path>,
            require_client_auth: bool,
        ) -> Result<Self, TlsError> {
            let (cert, key, ca) = (cert.as_ref(), key.as_ref(), ca.as_ref());
            Self::from_pem_origin(
                (&read("certificate", cert)?, &cert.display().to_string()),
                (&read("private key", key)?, &key.display().to_string()),
                (&read("CA certificate", ca)?, &ca.display().to_string()),
                require_client_auth,
            )
        }

        /// As [`TlsConfig::from_pem_files`], from PEM text in memory.
        ///
        /// # Errors
        /// As [`TlsConfig::from_pem_files`].
        pub fn from_pem(
            cert: &[u8],
            key: &[u8],
            ca: &[u8],
            require_client_auth: bool,
        ) -> Result<Self, TlsError> {
            let memory = "(memory)";
            Self::from_pem_origin(
                (cert, memory),
                (key, memory),
                (ca, memory),
                require_client_auth,
            )
        }

        fn from_pem_origin(
            (cert, cert_origin): (&[u8], &str),
            (key, key_origin): (&[u8], &str),
            (ca, ca_origin): (&[u8], &str),
            require_client_auth: bool,
        ) -> Result<Self, TlsError> {
            let chain = certs("certificate", cert, cert_origin)?;
            let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| TlsError::Pem {
                what: "private key",
                origin: key_origin.to_string(),
                reason: e.to_string(),
                pem: "PRIVATE KEY",
            })?;
            let mut roots = RootCertStore::empty();
            for ca in certs("CA certificate", ca, ca_origin)? {
                roots.add(ca).map_err(rustls_err)?;
            }
            Self::new(chain, key, roots, require_client_auth)
        }

        /// From rustls's types: this node's certificate chain and key, and the CA roots.
        ///
        /// # Errors
        /// [`TlsError::Rustls`] if rustls refuses them (a key that does not match, say).
        pub fn new(
            chain: Vec<CertificateDer<'static>>,
            key: PrivateKeyDer<'static>,
            roots: RootCertStore,
            require_client_auth: bool,
        ) -> Result<Self, TlsError> {
            let roots = Arc::new(roots);
            let client = ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(rustls_err)?
                .with_root_certificates(Arc::clone(&roots))
                .with_client_auth_cert(chain.clone(), key.clone_key())
                .map_err(rustls_err)?;
            let server = ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(rustls_err)?;
            let server = if require_client_auth {
                let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider())
                    .build()
                    .map_err(rustls_err)?;
                server.with_client_cert_verifier(verifier)
            } else {
                server.with_no_client_auth()
            }
            .with_single_cert(chain, key)
            .map_err(rustls_err)?;
            Ok(Self::from_rustls(Arc::new(client), Arc::new(server)))
        }

        /// From rustls configurations built by the caller (other verifiers, protocol
        /// versions or providers): `client` for the connections this node dials, `server`
        /// for those it accepts.
        pub fn from_rustls(client: Arc<ClientConfig>, server: Arc<ServerConfig>) -> Self {
            Self {
                client,
                server,
                server_name: None,
            }
        }

        /// Checks every peer's certificate against `name` rather than against the host part
        /// of the peer's node name (one certificate shared by every node, say).
        ///
        /// # Errors
        /// [`TlsError::ServerName`] if `name` is neither a DNS name nor an IP address.
        pub fn server_name(mut self, name: &str) -> Result<Self, TlsError> {
            let parsed =
                ServerName::try_from(name.to_string()).map_err(|_| TlsError::ServerName {
                    given: name.to_string(),
                })?;
            self.server_name = Some(parsed);
            Ok(self)
        }

        pub(super) async fn accept(
            &self,
            stream: TcpStream,
            from: SocketAddr,
            timeout: Duration,
        ) -> Option<Stream> {
            let _ = stream.set_nodelay(true);
            let acceptor = TlsAcceptor::from(Arc::clone(&self.server));
            match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => Some(Stream::boxed(tls)),
                Ok(Err(e)) => {
                    let hint = match rustls_error(&e) {
                        Some(rustls::Error::InvalidCertificate(_)) => {
                            "the peer's certificate does not chain to this node's CA roots \
                             (NODUS_TLS_CA); sign it with that CA"
                        }
                        Some(rustls::Error::NoCertificatesPresented) => {
                            "this node requires a client certificate (mutual TLS) and the \
                             peer presented none"
                        }
                        _ => "see the peer's log",
                    };
                    tracing::warn!(%from, "refused a connection: TLS handshake failed: {e}; {hint}");
                    None
                }
                Err(_) => {
                    tracing::warn!(%from, ?timeout, "refused a connection: TLS handshake timed out");
                    None
                }
            }
        }

        pub(super) async fn connect(
            &self,
            node: &NodeName,
            stream: TcpStream,
            timeout: Duration,
        ) -> Result<Stream, TlsFailure> {
            let failed = TlsFailure::Tls;
            let name = match &self.server_name {
                Some(name) => name.clone(),
                None => ServerName::try_from(node.host().to_string()).map_err(|_| {
                    failed(format!(
                        "the host {:?} is not a TLS server name; name nodes with a DNS name \
                         or an IP address, or set TlsConfig::server_name",
                        node.host()
                    ))
                })?,
            };
            let _ = stream.set_nodelay(true);
            let connector = TlsConnector::from(Arc::clone(&self.client));
            match tokio::time::timeout(timeout, connector.connect(name, stream)).await {
                Ok(Ok(tls)) => Ok(Stream::boxed(tls)),
                Ok(Err(e)) => Err(match rustls_error(&e) {
                    Some(rustls::Error::InvalidMessage(
                        rustls::InvalidMessage::InvalidContentType,
                    )) => TlsFailure::Mismatch {
                        peer_requires_tls: false,
                    },
                    Some(rustls::Error::InvalidCertificate(why)) => failed(format!(
                        "its certificate was refused ({why:?}); it must chain to this node's CA \
                         roots (NODUS_TLS_CA) and name the host {} (or TlsConfig::server_name)",
                        node.host()
                    )),
                    Some(other) => failed(format!("{other}; see the peer's log")),
                    None => failed(format!(
                        "{e}; the peer may not run TLS, or refused this node (see its log)"
                    )),
                }),
                Err(_) => Err(failed(format!(
                    "the TLS handshake timed out after {timeout:?}"
                ))),
            }
        }
    }
}
