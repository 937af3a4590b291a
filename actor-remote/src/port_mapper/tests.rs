//! Port mapper tests: the codec (vectors from a real epmd, incremental decoding, a property
//! test that no input panics).

use proptest::prelude::*;

use super::proto::*;

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
    // `76 00 6b04934e`: registering `fake` in OTP 25's epmd (reference/beam.md 1.4).
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
