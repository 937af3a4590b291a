//! Port mapper tests: the codec (vectors from a real epmd, incremental decoding, a property
//! test that no input panics), the client against the embedded server, and, where the real
//! epmd is installed, both against it.

use std::{future::Future, net::SocketAddr, time::Duration};

use actor_core::NodeName;
use proptest::prelude::*;

use crate::wire::props::{mutate, mutations, run_reaching};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use super::proto::*;
use super::*;

/// Bounds every network test.
const TEST_TIMEOUT: Duration = Duration::from_secs(20);

fn node(text: &str) -> NodeName {
    NodeName::parse(text).expect("valid node name in test")
}

/// Runs `test` under [`TEST_TIMEOUT`].
async fn bounded<T>(test: impl Future<Output = T>) -> T {
    tokio::time::timeout(TEST_TIMEOUT, test)
        .await
        .expect("test took longer than TEST_TIMEOUT")
}

/// Polls `check` until it holds, for at most 5 seconds.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A loopback port nothing listens on (the OS chose it, then we let it go).
async fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    listener.local_addr().expect("local addr").port()
}

async fn embedded() -> PortMapperServerHandle {
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    PortMapperServer::bind(addr)
        .await
        .expect("bind embedded port mapper")
        .spawn()
}

// ---------------------------------------------------------------------------------------------
// Codec

#[test]
fn alive2_request_bytes() {
    let mut out = Vec::new();
    let req = Request::Alive2(NodeInfo::nodus("fake", 0x1234, NodeType::NORMAL));
    encode_request(&req, &mut out).expect("encode");
    let mut expected = vec![0, 22, 120, 0x12, 0x34, 77, 0, 0, 6, 0, 5, 0, 4];
    expected.extend_from_slice(b"fake");
    expected.extend_from_slice(&[0, 5]);
    expected.extend_from_slice(b"nodus");
    assert_eq!(out, expected);
    assert_eq!(
        decode_request(&out, MAX_REQUEST_LEN),
        Ok(Some((req, out.len())))
    );
}

#[test]
fn replies_seen_from_a_real_epmd() {
    // `76 00 6b04934e`: registering `fake` in OTP 25's epmd (captured from a real epmd).
    let ok = [0x76, 0x00, 0x6b, 0x04, 0x93, 0x4e];
    let expected = Alive2Reply {
        result: 0,
        creation: 0x6b04_934e,
        old_form: false,
    };
    assert_eq!(decode_alive2_reply(&ok), Ok(Some((expected, 6))));
    let mut re = Vec::new();
    encode_alive2_reply(&expected, &mut re);
    assert_eq!(re, ok);
    // The old ALIVE2_RESP with a 2-byte creation.
    let old = [121, 0, 0, 3];
    assert_eq!(
        decode_alive2_reply(&old),
        Ok(Some((
            Alive2Reply {
                result: 0,
                creation: 3,
                old_form: true
            },
            4
        )))
    );
    // An unknown name: `77 01` and nothing more.
    assert_eq!(
        decode_port_please_reply(&[0x77, 0x01]),
        Ok(Some((PortPleaseReply::NotFound { result: 1 }, 2)))
    );
}

#[test]
fn port_please_reply_round_trip_and_names() {
    let info = NodeInfo {
        name: "b".into(),
        port: 45297,
        node_type: NodeType::HIDDEN,
        protocol: 0,
        highest_version: 6,
        lowest_version: 5,
        extra: vec![],
    };
    let mut out = Vec::new();
    encode_port_please_reply(&PortPleaseReply::Found(info.clone()), &mut out).expect("encode");
    assert_eq!(
        decode_port_please_reply(&out),
        Ok(Some((PortPleaseReply::Found(info), out.len())))
    );

    let reply = NamesReply {
        epmd_port: 4369,
        names: vec![("a".into(), 1), ("b".into(), 45297)],
    };
    let mut out = Vec::new();
    encode_names_reply(&reply, &mut out);
    assert_eq!(&out[..4], &[0, 0, 0x11, 0x11]);
    assert_eq!(&out[4..], b"name a at port 1\nname b at port 45297\n");
    assert_eq!(decode_names_reply(&out), Ok(Some(reply)));
    assert_eq!(decode_names_reply(&out[..3]), Ok(None));
    assert!(decode_names_reply(b"\0\0\0\x01garbage\n").is_err());
}

#[test]
fn every_prefix_needs_more() {
    let mut req = Vec::new();
    encode_request(
        &Request::Alive2(NodeInfo::nodus("hoge", 1, NodeType::NORMAL)),
        &mut req,
    )
    .expect("encode");
    let mut reply = Vec::new();
    encode_port_please_reply(
        &PortPleaseReply::Found(NodeInfo::nodus("hoge", 1, NodeType::NORMAL)),
        &mut reply,
    )
    .expect("encode");
    for n in 0..req.len() {
        assert_eq!(
            decode_request(&req[..n], MAX_REQUEST_LEN),
            Ok(None),
            "prefix {n}"
        );
    }
    for n in 0..reply.len() {
        assert_eq!(
            decode_port_please_reply(&reply[..n]),
            Ok(None),
            "prefix {n}"
        );
    }
    for n in 0..6 {
        assert_eq!(
            decode_alive2_reply(&[118, 0, 0, 0, 0, 1][..n]),
            Ok(None),
            "prefix {n}"
        );
    }
}

#[test]
fn bad_requests_are_typed_errors() {
    assert_eq!(
        decode_request(&[0x10, 0x00], MAX_REQUEST_LEN),
        Err(DecodeError::TooLong {
            len: 4096,
            max: MAX_REQUEST_LEN
        })
    );
    assert_eq!(
        decode_request(&[0, 0], MAX_REQUEST_LEN),
        Err(DecodeError::Empty)
    );
    assert_eq!(
        decode_request(&[0, 1, 107], MAX_REQUEST_LEN),
        Err(DecodeError::UnknownCode { code: 107 })
    );
    // An ALIVE2_REQ whose name length runs past its body.
    assert!(matches!(
        decode_request(
            &[0, 11, 120, 0, 1, 77, 0, 0, 6, 0, 5, 0, 9],
            MAX_REQUEST_LEN
        ),
        Err(DecodeError::Malformed { .. })
    ));
    assert_eq!(
        decode_request(&[0, 3, 122, 0xff, 0xfe], MAX_REQUEST_LEN),
        Err(DecodeError::NameNotUtf8)
    );
    let long = "x".repeat(MAX_NAME_LEN + 1);
    assert!(encode_request(&Request::PortPlease2 { name: long }, &mut Vec::new()).is_err());
    assert!(encode_request(
        &Request::PortPlease2 {
            name: String::new()
        },
        &mut Vec::new()
    )
    .is_err());
}

fn arb_node_info() -> impl Strategy<Value = NodeInfo> {
    (
        "[A-Za-z0-9_-]{1,40}",
        any::<u16>(),
        any::<u8>(),
        any::<u8>(),
        any::<u16>(),
        any::<u16>(),
        proptest::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(
            |(name, port, t, protocol, highest_version, lowest_version, extra)| NodeInfo {
                name,
                port,
                node_type: NodeType(t),
                protocol,
                highest_version,
                lowest_version,
                extra,
            },
        )
}

proptest! {
    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048), max in 0usize..2048) {
        let _ = decode_request(&bytes, max);
        let _ = decode_alive2_reply(&bytes);
        let _ = decode_port_please_reply(&bytes);
        let _ = decode_names_reply(&bytes);
    }

    #[test]
    fn requests_round_trip(info in arb_node_info(), tail in proptest::collection::vec(any::<u8>(), 0..8)) {
        for req in [Request::Alive2(info.clone()), Request::PortPlease2 { name: info.name.clone() }, Request::Names] {
            let mut bytes = Vec::new();
            encode_request(&req, &mut bytes).expect("encodable");
            let used = bytes.len();
            bytes.extend_from_slice(&tail);
            prop_assert_eq!(decode_request(&bytes, MAX_REQUEST_LEN), Ok(Some((req, used))));
        }
    }

    #[test]
    fn port_please_replies_round_trip(info in arb_node_info()) {
        let reply = PortPleaseReply::Found(info);
        let mut bytes = Vec::new();
        encode_port_please_reply(&reply, &mut bytes).expect("encodable");
        prop_assert_eq!(decode_port_please_reply(&bytes), Ok(Some((reply, bytes.len()))));
    }
}

/// Requests with a valid length prefix (the body's real length) and a valid request code,
/// their bodies mutated after the code: most reach the body decoder (not `TooLong`, `Empty`
/// or `UnknownCode`, which random bytes stop at in nearly every case), none panics, and an
/// unmutated request decodes to itself.
#[test]
fn requests_with_valid_prefixes_reach_the_body_decoder() {
    let req = arb_node_info().prop_flat_map(|info| {
        prop_oneof![
            3 => Just(Request::Alive2(info.clone())),
            2 => Just(Request::PortPlease2 { name: info.name.clone() }),
            1 => Just(Request::Names),
        ]
    });
    run_reaching(
        "port-mapper request",
        "the body decoder",
        512,
        75,
        (
            req,
            mutations(3),
            proptest::collection::vec(any::<u8>(), 0..4),
        ),
        |(req, muts, next)| {
            let mut valid = Vec::new();
            encode_request(&req, &mut valid).expect("encodable");
            let mut bytes = mutate(valid.clone(), 3, &muts);
            let len = u16::try_from(bytes.len() - 2).expect("short");
            bytes[..2].copy_from_slice(&len.to_be_bytes());
            let used = bytes.len();
            // The next request's first bytes may already be in the buffer.
            bytes.extend_from_slice(&next);
            let got = decode_request(&bytes, MAX_REQUEST_LEN);
            if bytes[..used] == valid[..] {
                prop_assert_eq!(&got, &Ok(Some((req, used))));
            }
            if let Ok(Some((_, n))) = &got {
                prop_assert_eq!(*n, used);
            }
            let reached = matches!(
                got,
                Ok(Some(_)) | Err(DecodeError::Malformed { .. } | DecodeError::NameNotUtf8)
            );
            Ok(reached)
        },
    );
}

/// `PORT2_RESP` replies with the valid code and result 0, the node info mutated: most reach
/// the node-info decoder.
#[test]
fn port_please_replies_with_valid_prefixes_reach_the_body_decoder() {
    run_reaching(
        "port-mapper PORT2 reply",
        "the node-info decoder",
        512,
        75,
        (arb_node_info(), mutations(3)),
        |(info, muts)| {
            let reply = PortPleaseReply::Found(info);
            let mut valid = Vec::new();
            encode_port_please_reply(&reply, &mut valid).expect("encodable");
            let bytes = mutate(valid.clone(), 2, &muts);
            let got = decode_port_please_reply(&bytes);
            if bytes == valid {
                prop_assert_eq!(&got, &Ok(Some((reply, valid.len()))));
            }
            if let Ok(Some((_, n))) = &got {
                prop_assert!(*n <= bytes.len());
            }
            let reached = bytes.len() > 2
                && matches!(
                    got,
                    Ok(Some((PortPleaseReply::Found(_), _)))
                        | Ok(None)
                        | Err(DecodeError::NameNotUtf8)
                );
            Ok(reached)
        },
    );
}

/// `ALIVE2_X_RESP`/`ALIVE2_RESP` replies: a valid code, then random or valid fields.
#[test]
fn alive2_replies_with_valid_prefixes_reach_the_body_decoder() {
    run_reaching(
        "port-mapper ALIVE2 reply",
        "the body decoder",
        256,
        75,
        (
            any::<u8>(),
            any::<u32>(),
            any::<bool>(),
            proptest::collection::vec(any::<u8>(), 0..8),
        ),
        |(result, creation, old_form, tail)| {
            let mut bytes = Vec::new();
            encode_alive2_reply(
                &Alive2Reply {
                    result,
                    creation,
                    old_form: false,
                },
                &mut bytes,
            );
            if old_form {
                bytes[0] = ALIVE2_RESP;
                bytes.truncate(2);
                bytes.extend_from_slice(&(creation as u16).to_be_bytes());
            }
            let used = bytes.len();
            bytes.extend_from_slice(&tail);
            let got = decode_alive2_reply(&bytes);
            let creation = if old_form {
                u32::from(creation as u16)
            } else {
                creation
            };
            prop_assert_eq!(
                &got,
                &Ok(Some((
                    Alive2Reply {
                        result,
                        creation,
                        old_form
                    },
                    used
                )))
            );
            // Every shorter prefix asks for more bytes.
            for cut in 0..used {
                prop_assert_eq!(decode_alive2_reply(&bytes[..cut]), Ok(None));
            }
            Ok(matches!(got, Ok(Some(_))))
        },
    );
}

/// `NAMES` replies: the 4-byte port, then valid lines, mutated: most reach the line parser.
#[test]
fn names_replies_with_valid_prefixes_reach_the_body_decoder() {
    let names = proptest::collection::vec(("[A-Za-z0-9_-]{1,20}", any::<u16>()), 1..5);
    run_reaching(
        "port-mapper NAMES reply",
        "the line parser",
        512,
        75,
        (any::<u32>(), names, mutations(2)),
        |(epmd_port, names, muts)| {
            let reply = NamesReply { epmd_port, names };
            let mut valid = Vec::new();
            encode_names_reply(&reply, &mut valid);
            let bytes = mutate(valid.clone(), 4, &muts);
            let got = decode_names_reply(&bytes);
            if bytes == valid {
                prop_assert_eq!(&got, &Ok(Some(reply)));
            }
            let reached = matches!(&got, Ok(Some(r)) if !r.names.is_empty())
                || matches!(got, Err(DecodeError::Malformed { .. }));
            Ok(reached)
        },
    );
}

/// A request whose length prefix is over the limit is refused from the prefix alone, before
/// its body arrives: a peer cannot make the server buffer 64 KiB.
#[test]
fn an_oversized_request_is_refused_from_its_prefix() {
    run_reaching(
        "port-mapper request length",
        "the length check",
        256,
        100,
        (
            MAX_REQUEST_LEN as u16 + 1..,
            proptest::collection::vec(any::<u8>(), 0..4),
        ),
        |(len, body)| {
            let mut bytes = len.to_be_bytes().to_vec();
            bytes.extend_from_slice(&body);
            prop_assert_eq!(
                decode_request(&bytes, MAX_REQUEST_LEN),
                Err(DecodeError::TooLong {
                    len: usize::from(len),
                    max: MAX_REQUEST_LEN
                })
            );
            Ok(true)
        },
    );
}

// ---------------------------------------------------------------------------------------------
// Client against the embedded server

#[test]
fn erl_epmd_port() {
    let ip = "127.0.0.1".parse().expect("ip");
    let port = |v| PortMapperClient::from_env_value(ip, v).map(|c| c.addr().port());
    assert_eq!(port(None).ok(), Some(4369));
    assert_eq!(port(Some("4370")).ok(), Some(4370));
    let err = port(Some("nope")).expect_err("invalid");
    assert!(matches!(err, PortMapperError::BadEnvPort { .. }));
    assert!(err.to_string().contains("unset it"), "{err}");
    assert!(port(Some("0")).is_err());
    assert!(port(Some("70000")).is_err());
}

#[tokio::test]
async fn register_lookup_names_and_unregister_on_drop() {
    bounded(async {
        let server = embedded().await;
        let client = PortMapperClient::new(server.local_addr());
        assert_eq!(client.names().await.expect("names"), vec![]);
        assert_eq!(client.port_please("hoge").await.expect("lookup"), None);

        let a = client
            .register(&node("hoge@localhost"), 4711, false)
            .await
            .expect("register");
        let b = client
            .register(&node("piyo@localhost"), 4712, true)
            .await
            .expect("register");
        assert_ne!(a.creation(), 0);
        assert!(b.creation() > a.creation(), "creations increase");
        assert_eq!(a.port(), 4711);

        let found = client
            .port_please("hoge")
            .await
            .expect("lookup")
            .expect("registered");
        assert_eq!(found, NodeInfo::nodus("hoge", 4711, NodeType::NORMAL));
        assert!(found.is_nodus());
        let hidden = client
            .port_please("piyo")
            .await
            .expect("lookup")
            .expect("registered");
        assert_eq!(hidden.node_type, NodeType::HIDDEN);
        assert_eq!(
            client.names().await.expect("names"),
            vec![("hoge".to_owned(), 4711), ("piyo".to_owned(), 4712)]
        );

        drop(a);
        eventually("hoge is unregistered", || async {
            client.port_please("hoge").await.expect("lookup").is_none()
        })
        .await;
        assert_eq!(
            client.names().await.expect("names"),
            vec![("piyo".to_owned(), 4712)]
        );
        // The name is free again, with a newer creation.
        let again = client
            .register(&node("hoge@localhost"), 4713, false)
            .await
            .expect("re-register");
        assert!(again.creation() > b.creation());
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn duplicate_name_is_name_in_use() {
    bounded(async {
        let server = embedded().await;
        let client = PortMapperClient::new(server.local_addr());
        let _first = client.register(&node("dup@vm"), 1000, false).await.expect("register");
        let err = client.register(&node("dup@vm"), 1001, false).await.expect_err("duplicate");
        assert!(matches!(&err, PortMapperError::NameInUse { name } if name.as_str() == "dup@vm"));
        assert_eq!(
            err.to_string(),
            "the name dup@vm seems to be in use by another node; pick another name or stop that node"
        );
        // The refused attempt did not disturb the first registration.
        assert_eq!(client.port_please("dup").await.expect("lookup").map(|i| i.port), Some(1000));
    })
    .await;
}

#[tokio::test]
async fn shutdown_closes_registrations() {
    bounded(async {
        let server = embedded().await;
        let client = PortMapperClient::new(server.local_addr());
        let mut reg = client
            .register(&node("a@localhost"), 1, false)
            .await
            .expect("register");
        server.shutdown().await;
        reg.closed().await;
        assert!(matches!(
            client.names().await,
            Err(PortMapperError::Unreachable { .. })
        ));
    })
    .await;
}

/// Sends `bytes` on a fresh connection and returns what the server answers before closing.
async fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    // The server may close (and reset) before taking everything; that is the point.
    let _ = stream.write_all(bytes).await;
    let _ = stream.shutdown().await;
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply).await;
    reply
}

#[tokio::test]
async fn garbage_and_oversized_input_close_only_that_connection() {
    bounded(async {
        let server = embedded().await;
        let addr = server.local_addr();
        let client = PortMapperClient::new(addr);
        let _reg = client
            .register(&node("keep@localhost"), 7, false)
            .await
            .expect("register");

        assert!(raw_exchange(addr, b"GET / HTTP/1.1\r\n\r\n")
            .await
            .is_empty());
        assert!(raw_exchange(addr, &[0xff, 0xff]).await.is_empty()); // 65535-byte request
        assert!(raw_exchange(addr, &[0, 0]).await.is_empty()); // empty request
        assert!(raw_exchange(addr, &[0, 1, 107]).await.is_empty()); // KILL_REQ: not served
        assert!(raw_exchange(addr, &[0, 5, 120, 0]).await.is_empty()); // truncated, then EOF
        assert!(
            raw_exchange(addr, &[0, 13, 120, 0, 1, 77, 0, 0, 6, 0, 5, 0, 0, 0, 0])
                .await
                .is_empty()
        ); // empty name
        let mut huge = vec![0x03, 0xff, 120];
        huge.resize(3 + 1200, b'a');
        assert!(raw_exchange(addr, &huge).await.is_empty());

        // Raw requests in epmd's own bytes still work, and the registration survived.
        let names = raw_exchange(addr, &[0, 1, 110]).await;
        let mut expected = u32::from(addr.port()).to_be_bytes().to_vec();
        expected.extend_from_slice(b"name keep at port 7\n");
        assert_eq!(names, expected);
        assert_eq!(
            raw_exchange(addr, b"\0\x05\x7anone").await,
            vec![0x77, 0x01]
        );
    })
    .await;
}

#[tokio::test]
async fn connection_refused_is_unreachable_and_silence_is_timeout() {
    bounded(async {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port().await));
        let err = PortMapperClient::new(addr)
            .names()
            .await
            .expect_err("nothing listens");
        assert!(
            matches!(err, PortMapperError::Unreachable { addr: a } if a == addr),
            "{err}"
        );

        // A listener that never accepts: the connection completes in the backlog, no reply.
        let silent = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let client = PortMapperClient::new(silent.local_addr().expect("addr"))
            .with_timeout(Duration::from_millis(200));
        let err = client.port_please("x").await.expect_err("no reply");
        assert!(matches!(err, PortMapperError::Timeout { .. }), "{err}");
        let err = client
            .register(&node("x@localhost"), 1, false)
            .await
            .expect_err("no reply");
        assert!(matches!(err, PortMapperError::Timeout { .. }), "{err}");
    })
    .await;
}

#[tokio::test]
async fn ensure_port_mapper_starts_the_embedded_server_when_none_answers() {
    bounded(async {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port().await));
        let first = ensure_port_mapper(addr).await.expect("start embedded");
        assert!(first.is_embedded());
        assert_eq!(first.addr(), addr);
        let _reg = first
            .client()
            .register(&node("one@localhost"), 10, false)
            .await
            .expect("register");

        // A second node finds the first one's server and uses it.
        let second = ensure_port_mapper(addr).await.expect("use running");
        assert!(!second.is_embedded());
        assert_eq!(
            second.client().names().await.expect("names"),
            vec![("one".to_owned(), 10)]
        );

        // The embedded server lives as long as the handle that started it.
        first.shutdown().await;
        assert!(matches!(
            second.client().names().await,
            Err(PortMapperError::Unreachable { .. })
        ));
    })
    .await;
}

#[tokio::test]
async fn ensure_port_mapper_reports_a_non_epmd_answer() {
    bounded(async {
        // Something that answers, but not with an epmd reply.
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut request = [0u8; 3];
                let _ = s.read_exact(&mut request).await;
                let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
            }
        });
        let err = ensure_port_mapper(addr).await.expect_err("not epmd");
        assert!(
            matches!(
                err,
                PortMapperError::Protocol { .. } | PortMapperError::ClosedEarly { .. }
            ),
            "{err}"
        );
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Against the real epmd (Debian's erlang-base)

/// A real epmd on its own loopback port, killed when dropped.
pub(crate) struct RealEpmd {
    child: tokio::process::Child,
    port: u16,
}

impl RealEpmd {
    pub(crate) async fn start() -> RealEpmd {
        let port = free_port().await;
        let child = tokio::process::Command::new("epmd")
            .args(["-port", &port.to_string(), "-address", "127.0.0.1"])
            .kill_on_drop(true)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn epmd");
        let epmd = RealEpmd { child, port };
        let client = epmd.client();
        eventually("the real epmd answers", || async {
            client.names().await.is_ok()
        })
        .await;
        epmd
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn client(&self) -> PortMapperClient {
        PortMapperClient::new(SocketAddr::from(([127, 0, 0, 1], self.port)))
    }

    pub(crate) async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Runs the real `epmd -names` against the port mapper on `port`, returns its stdout.
pub(crate) async fn epmd_names_cli(port: u16) -> String {
    let out = tokio::process::Command::new("epmd")
        .arg("-names")
        .env("ERL_EPMD_PORT", port.to_string())
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("run epmd -names");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
#[cfg_attr(
    not(nodus_has_epmd),
    ignore = "needs the real epmd: apt-get install erlang-base"
)]
async fn real_epmd_lists_a_nodus_registration_until_it_is_dropped() {
    bounded(async {
        let epmd = RealEpmd::start().await;
        let client = epmd.client();
        let reg = client
            .register(&node("nodus_a@localhost"), 40001, false)
            .await
            .expect("register");
        assert_ne!(reg.creation(), 0);
        let listing = epmd_names_cli(epmd.port).await;
        assert!(
            listing.contains(&format!("up and running on port {}", epmd.port)),
            "{listing}"
        );
        assert!(listing.contains("name nodus_a at port 40001"), "{listing}");

        drop(reg);
        eventually("epmd -names no longer lists nodus_a", || async {
            !epmd_names_cli(epmd.port).await.contains("nodus_a")
        })
        .await;
        epmd.stop().await;
    })
    .await;
}

#[tokio::test]
#[cfg_attr(
    not(nodus_has_epmd),
    ignore = "needs the real epmd: apt-get install erlang-base"
)]
async fn real_epmd_port_please_names_and_duplicates() {
    bounded(async {
        let epmd = RealEpmd::start().await;
        let client = epmd.client();
        let a = client
            .register(&node("alpha@localhost"), 40002, false)
            .await
            .expect("register");
        let _b = client
            .register(&node("beta@localhost"), 40003, true)
            .await
            .expect("register");

        let found = client
            .port_please("alpha")
            .await
            .expect("lookup")
            .expect("registered");
        assert_eq!(found, NodeInfo::nodus("alpha", 40002, NodeType::NORMAL));
        assert!(found.is_nodus(), "epmd keeps the extra field");
        let hidden = client
            .port_please("beta")
            .await
            .expect("lookup")
            .expect("registered");
        assert_eq!(hidden.node_type, NodeType::HIDDEN);
        assert_eq!(client.port_please("gamma").await.expect("lookup"), None);

        let mut names = client.names().await.expect("names");
        names.sort();
        assert_eq!(
            names,
            vec![("alpha".to_owned(), 40002), ("beta".to_owned(), 40003)]
        );

        let err = client
            .register(&node("alpha@localhost"), 40004, false)
            .await
            .expect_err("dup");
        assert!(matches!(err, PortMapperError::NameInUse { .. }), "{err}");

        drop(a);
        eventually("epmd forgets alpha", || async {
            client.port_please("alpha").await.expect("lookup").is_none()
        })
        .await;
        epmd.stop().await;
    })
    .await;
}

#[tokio::test]
#[cfg_attr(
    not(nodus_has_epmd),
    ignore = "needs the real epmd: apt-get install erlang-base"
)]
async fn real_epmd_cli_reads_the_embedded_server() {
    bounded(async {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port().await));
        let server = PortMapperServer::bind(addr).await.expect("bind").spawn();
        let client = PortMapperClient::new(addr);
        let _a = client.register(&node("emb_a@localhost"), 40005, false).await.expect("register");
        let _b = client.register(&node("emb_b@localhost"), 40006, false).await.expect("register");

        let listing = epmd_names_cli(addr.port()).await;
        assert_eq!(
            listing,
            format!(
                "epmd: up and running on port {} with data:\nname emb_a at port 40005\nname emb_b at port 40006\n",
                addr.port()
            )
        );
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
#[cfg_attr(
    not(nodus_has_epmd),
    ignore = "needs the real epmd: apt-get install erlang-base"
)]
async fn ensure_port_mapper_uses_a_running_real_epmd() {
    bounded(async {
        let epmd = RealEpmd::start().await;
        let addr = epmd.client().addr();
        let handle = ensure_port_mapper(addr).await.expect("find epmd");
        assert!(!handle.is_embedded());
        let _reg = handle
            .client()
            .register(&node("via@localhost"), 40007, false)
            .await
            .expect("register");
        assert!(epmd_names_cli(epmd.port)
            .await
            .contains("name via at port 40007"));
        epmd.stop().await;
    })
    .await;
}
