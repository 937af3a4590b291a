//! The fuzz targets' bodies, one function per decoder of bytes from another node, shared by
//! the cargo-fuzz targets (`fuzz_targets/`) and by `cargo test` in this folder, which replays
//! the committed corpus and a bounded run of pseudo-random inputs through the same functions.
//!
//! Each function takes any bytes and checks, besides "no panic":
//! - no single allocation over [`MAX_ALLOC`] (the [`LimitAlloc`] global allocator refuses it,
//!   which aborts the process: a crash for libFuzzer, a failed test for `cargo test`); inputs
//!   are a few KiB, so a larger allocation means a length read off the input was trusted;
//! - what decodes re-encodes to a value that decodes to the same thing;
//! - the handshake ends in `Established` only if the input holds the valid digest.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    time::Duration,
};

use actor_core::{codec, NodeName, Value};
use actor_remote::{
    port_mapper::proto as pm,
    proto::{Existing, Handshake, HandshakeConfig},
    wire::{
        decode_body,
        message::{HandshakeMessage, NodeMsg, SessionFrame},
        FrameDecoder, DEFAULT_MAX_FRAME_LEN, HANDSHAKE_MAX_FRAME_LEN,
    },
};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// The largest single allocation a decoder may make while fuzzed (16 MiB). Decoding a few KiB
/// legitimately allocates far less; serde preallocates at most 1 MiB for a claimed length.
pub const MAX_ALLOC: usize = 16 << 20;

/// `System`, refusing any single allocation over [`MAX_ALLOC`] (Rust then aborts with
/// "memory allocation of N bytes failed").
#[derive(Debug)]
pub struct LimitAlloc;

// SAFETY: forwards to `System` unchanged, or returns null, which `GlobalAlloc` allows.
unsafe impl GlobalAlloc for LimitAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MAX_ALLOC {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MAX_ALLOC {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > MAX_ALLOC {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: LimitAlloc = LimitAlloc;

/// Decodes `bytes` as a `T`; a value that decodes must survive encode → decode.
fn decode_checked<T>(bytes: &[u8]) -> Option<T>
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let value: T = codec::decode(bytes).ok()?;
    let again = codec::encode(&value).expect("a decoded value encodes");
    assert_eq!(
        codec::decode::<T>(&again).as_ref(),
        Ok(&value),
        "re-encoding changed it"
    );
    Some(value)
}

/// Every name of the targets, as `fuzz/corpus/<name>/` and `fuzz_targets/<name>.rs`.
pub const TARGETS: [&str; 8] = [
    "frame_decode",
    "handshake_message",
    "handshake_script",
    "session_frame",
    "remote_payload",
    "function_args",
    "port_mapper_request",
    "port_mapper_reply",
];

/// Runs target `name` on `data`.
pub fn run(name: &str, data: &[u8]) {
    match name {
        "frame_decode" => frame_decode(data),
        "handshake_message" => handshake_message(data),
        "handshake_script" => handshake_script(data),
        "session_frame" => session_frame(data),
        "remote_payload" => remote_payload(data),
        "function_args" => function_args(data),
        "port_mapper_request" => port_mapper_request(data),
        "port_mapper_reply" => port_mapper_reply(data),
        other => panic!("no target {other}"),
    }
}

/// Frames: the first byte says where to cut the rest in two; both pieces go through a
/// `FrameDecoder` (session limit) and every body to the session and handshake decoders. The
/// decoder never holds more than it was given.
pub fn frame_decode(data: &[u8]) {
    let Some((&cut, data)) = data.split_first() else {
        return;
    };
    let cut = usize::from(cut).min(data.len());
    let mut dec = FrameDecoder::new(DEFAULT_MAX_FRAME_LEN);
    let mut fed = 0;
    for piece in [&data[..cut], &data[cut..]] {
        dec.extend(piece);
        fed += piece.len();
        assert!(dec.buffered() <= fed);
        while let Ok(Some(body)) = dec.decode() {
            assert!(body.len() <= fed);
            let _ = decode_body::<SessionFrame<NodeMsg>>(body);
            let _ = decode_body::<HandshakeMessage>(body);
        }
    }
}

/// A handshake message body (what an unauthenticated peer sends first).
pub fn handshake_message(data: &[u8]) {
    if data.len() <= HANDSHAKE_MAX_FRAME_LEN {
        decode_checked::<HandshakeMessage>(data);
    }
}

/// A session frame body (every frame after the handshake).
pub fn session_frame(data: &[u8]) {
    decode_checked::<SessionFrame<NodeMsg>>(data);
}

/// The names and cookie of [`handshake_script`]: `y@localhost` with cookie "cookie", whose
/// peer is `x@localhost`.
pub const SCRIPT_COOKIE: &str = "cookie";

/// Bytes read as frames sent to either end of a handshake (`y@localhost`; as initiator it
/// dials `x@localhost`), answered with `Existing::None` when asked: each run ends in
/// `Established` or an error, and in `Established` only if the input holds the digest that
/// proves the cookie (a digest check that always succeeded would be caught here).
pub fn handshake_script(data: &[u8]) {
    let (Ok(y), Ok(x)) = (
        NodeName::parse("y@localhost"),
        NodeName::parse("x@localhost"),
    ) else {
        return;
    };
    let cfg = HandshakeConfig::new(y, SCRIPT_COOKIE);
    let now = tokio::time::Instant::now();
    for initiator in [false, true] {
        let mut hs = if initiator {
            Handshake::initiate(&cfg, x.clone(), [1; 32], now)
        } else {
            Handshake::accept(&cfg, [2; 32], now)
        };
        let mut dec = FrameDecoder::new(HANDSHAKE_MAX_FRAME_LEN);
        dec.extend(data);
        let mut outcome = None;
        while let Ok(Some(body)) = dec.decode() {
            hs.handle_frame_body(now, body);
            while hs.poll_transmit().is_some() {}
            if hs.poll_event().is_some() {
                hs.handle_registration(now, Existing::None);
            }
            if let Some(o) = hs.poll_outcome() {
                assert!(outcome.is_none(), "two outcomes");
                outcome = Some(o);
            }
        }
        hs.handle_timeout(now + Duration::from_secs(3600));
        let outcome = outcome.or_else(|| hs.poll_outcome()).expect("an outcome");
        if outcome.is_ok() {
            let digest = valid_digest(initiator);
            assert!(
                data.windows(digest.len()).any(|w| w == digest),
                "established without the valid digest in the input"
            );
        }
    }
}

/// The digest `x@localhost` must send to [`handshake_script`]'s `y@localhost`: found by
/// running x's side of a real exchange with y's fixed challenge.
pub fn valid_digest(y_initiates: bool) -> [u8; 32] {
    script_exchange(y_initiates)
        .into_iter()
        .find_map(|m| match m {
            HandshakeMessage::ChallengeAck { digest } if y_initiates => Some(digest),
            HandshakeMessage::ChallengeReply { digest, .. } if !y_initiates => Some(digest),
            _ => None,
        })
        .expect("x sends a digest")
}

/// What `x@localhost` sends to `y@localhost` in a successful handshake with
/// [`handshake_script`]'s challenges, in order.
pub fn script_exchange(y_initiates: bool) -> Vec<HandshakeMessage> {
    let name = |s: &str| NodeName::parse(s).expect("valid");
    let y = HandshakeConfig::new(name("y@localhost"), SCRIPT_COOKIE);
    let x = HandshakeConfig::new(name("x@localhost"), SCRIPT_COOKIE);
    let now = tokio::time::Instant::now();
    let (mut i, mut a) = if y_initiates {
        (
            Handshake::initiate(&y, name("x@localhost"), [1; 32], now),
            Handshake::accept(&x, [3; 32], now),
        )
    } else {
        (
            Handshake::initiate(&x, name("y@localhost"), [3; 32], now),
            Handshake::accept(&y, [2; 32], now),
        )
    };
    let mut from_x = Vec::new();
    loop {
        let mut moved = false;
        while let Some(m) = i.poll_transmit() {
            if !y_initiates {
                from_x.push(m.clone());
            }
            a.handle_frame(now, m);
            moved = true;
        }
        if a.poll_event().is_some() {
            a.handle_registration(now, Existing::None);
        }
        while let Some(m) = a.poll_transmit() {
            if y_initiates {
                from_x.push(m.clone());
            }
            i.handle_frame(now, m);
            moved = true;
        }
        if !moved {
            break;
        }
    }
    assert!(
        matches!(i.poll_outcome(), Some(Ok(_))),
        "the exchange succeeds"
    );
    from_x
}

/// A remote actor of the `#[nodus::actor(remote)]` kind, and a `serde_message!` type: their
/// payloads are what `ActorMsg::Send` carries.
pub mod actors {
    use serde::{Deserialize, Serialize};

    /// Handlers of every argument shape: casts and calls.
    #[derive(Debug, Clone)]
    pub struct Store {
        /// Unused state.
        pub n: u64,
    }

    #[nodus::actor(remote, vis = pub)]
    impl Store {
        /// A cast with text and a number.
        pub fn put(&mut self, key: String, n: u64) {
            self.n = n.wrapping_add(key.len() as u64);
        }

        /// A cast with bytes and an option.
        pub fn blob(&mut self, bytes: Vec<u8>, tag: Option<String>) {
            self.n = bytes.len() as u64 + u64::from(tag.is_some());
        }

        /// A call.
        pub fn get(&self, key: String) -> Option<u64> {
            (!key.is_empty()).then_some(self.n)
        }
    }

    /// A plain serde message.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Note {
        /// Text.
        pub text: String,
        /// Bytes.
        pub bytes: Vec<u8>,
        /// A list.
        pub tags: Vec<(String, u32)>,
    }
    actor_core::serde_message!(Note = "fuzz.Note");
}

/// A remote payload: the first byte picks the type and, for the actor, a cast or a call (a
/// reply sink given or not); the rest is the payload as the receiving node decodes it
/// (`RemoteMessage::from_wire`). What decodes encodes again and decodes the same.
pub fn remote_payload(data: &[u8]) {
    use actor_core::{RemoteMessage, ReplySink};
    let Some((&kind, payload)) = data.split_first() else {
        return;
    };
    match kind % 3 {
        0 => {
            let _ = actors::StoreMsg::from_wire(payload, None);
        }
        1 => {
            // A call's reply port forwards on a task of the current runtime.
            static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> =
                std::sync::OnceLock::new();
            let rt = RUNTIME.get_or_init(|| {
                tokio::runtime::Builder::new_current_thread()
                    .build()
                    .expect("a runtime")
            });
            let _guard = rt.enter();
            drop(actors::StoreMsg::from_wire(
                payload,
                Some(ReplySink::new(|_| {})),
            ));
            // Let the forwarder of a dropped port finish, so tasks do not pile up.
            rt.block_on(tokio::task::yield_now());
        }
        _ => {
            if let Ok(note) = actors::Note::from_wire(payload, None) {
                let again = note.clone().to_wire().expect("encodes").payload;
                assert_eq!(actors::Note::from_wire(&again, None).ok(), Some(note));
            }
        }
    }
}

/// Argument types of functions called by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// A name.
    pub name: String,
    /// Some numbers.
    pub values: Vec<i64>,
    /// Optional bytes.
    pub blob: Option<Vec<u8>>,
}

/// Function arguments from another node (`TaskMsg::Spawn`'s `args`): the first byte picks
/// the argument type; the rest is decoded as `Args::Bytes` is (`codec::decode`) and as a
/// remote value is (`Value::encoded(..).into_typed()`), which must agree.
pub fn function_args(data: &[u8]) {
    let Some((&kind, args)) = data.split_first() else {
        return;
    };
    fn both<T>(args: &[u8])
    where
        T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug + 'static,
    {
        let direct = decode_checked::<T>(args);
        let value = Value::encoded(args.to_vec()).into_typed::<T>().ok();
        assert_eq!(direct, value, "the two decoding paths disagree");
    }
    match kind % 4 {
        0 => both::<(String,)>(args),
        1 => both::<(u64, bool, Option<String>)>(args),
        2 => both::<(Vec<u8>, Vec<String>)>(args),
        _ => both::<(Record, u32)>(args),
    }
}

/// A port-mapper request stream: a request must decode the same from any longer buffer, each
/// shorter prefix asks for more, and what decodes encodes back to the bytes used.
pub fn port_mapper_request(data: &[u8]) {
    let Ok(Some((req, used))) = pm::decode_request(data, pm::MAX_REQUEST_LEN) else {
        return;
    };
    assert!(used <= data.len());
    for cut in [0, 1, used / 2, used - 1] {
        assert_eq!(
            pm::decode_request(&data[..cut], pm::MAX_REQUEST_LEN),
            Ok(None)
        );
    }
    let mut again = Vec::new();
    if pm::encode_request(&req, &mut again).is_ok() {
        assert_eq!(
            pm::decode_request(&again, pm::MAX_REQUEST_LEN),
            Ok(Some((req, again.len())))
        );
    }
}

/// A port-mapper reply: the first byte picks the decoder (ALIVE2, PORT2, NAMES), the rest is
/// the reply.
pub fn port_mapper_reply(data: &[u8]) {
    let Some((&kind, reply)) = data.split_first() else {
        return;
    };
    match kind % 3 {
        0 => {
            if let Ok(Some((r, used))) = pm::decode_alive2_reply(reply) {
                assert!(used <= reply.len());
                if !r.old_form {
                    let mut again = Vec::new();
                    pm::encode_alive2_reply(&r, &mut again);
                    assert_eq!(again, reply[..used]);
                }
            }
        }
        1 => {
            if let Ok(Some((r, used))) = pm::decode_port_please_reply(reply) {
                assert!(used <= reply.len());
                let mut again = Vec::new();
                if pm::encode_port_please_reply(&r, &mut again).is_ok() {
                    assert_eq!(
                        pm::decode_port_please_reply(&again),
                        Ok(Some((r, again.len())))
                    );
                }
            }
        }
        _ => {
            if let Ok(Some(r)) = pm::decode_names_reply(reply) {
                let mut again = Vec::new();
                pm::encode_names_reply(&r, &mut again);
                assert_eq!(pm::decode_names_reply(&again), Ok(Some(r)));
            }
        }
    }
}
