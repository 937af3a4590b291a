//! The seed corpus (`fuzz/corpus/<target>/`), generated here from valid encodings, and a
//! replay of every target on it plus a bounded run of mutated and random inputs: the targets
//! run as a plain `cargo test` even where libFuzzer cannot.
//!
//! ```sh
//! NODUS_WRITE_CORPUS=1 cargo test --manifest-path fuzz/Cargo.toml   # rewrite the seeds
//! cargo test --manifest-path fuzz/Cargo.toml                         # check and replay
//! ```

use std::{collections::BTreeMap, fs, path::PathBuf};

use actor_core::{codec, NodeName};
use actor_remote::{
    port_mapper::proto as pm,
    wire::{
        encode_frame,
        message::{
            ActorMsg, ControlMsg, HandshakeMessage, Hello, LinkMsg, NodeMsg, SessionFrame, Status,
            Target, TaskMsg, WatchMsg, WireDownReason, WireExitReason, WirePid, WireRestart,
            WireTaskError, WireTaskKind, WireTrace,
        },
        DEFAULT_MAX_FRAME_LEN,
    },
};
use nodus::__private::remote;
use nodus_fuzz::{actors::Note, script_exchange, Record, MAX_ALLOC, TARGETS};

fn name(s: &str) -> NodeName {
    NodeName::parse(s).expect("valid")
}

fn session_frames() -> Vec<SessionFrame<NodeMsg>> {
    let target = Target::Name("kv".into());
    vec![
        SessionFrame::Tick,
        SessionFrame::Msg(NodeMsg::Control(ControlMsg::Ping(7))),
        SessionFrame::Msg(NodeMsg::Control(ControlMsg::Peers(vec![name(
            "a@localhost",
        )]))),
        SessionFrame::Msg(NodeMsg::Task(TaskMsg::Spawn {
            req: 1,
            supervisor: Target::Name("Tasks".into()),
            module: "Kv".into(),
            function: "put".into(),
            args: codec::encode(&("k", "v")).expect("encodes"),
            kind: WireTaskKind::Child(WireRestart::Transient),
            trace: None,
        })),
        SessionFrame::Msg(NodeMsg::Task(TaskMsg::Started {
            req: 1,
            result: Ok(9),
        })),
        SessionFrame::Msg(NodeMsg::Task(TaskMsg::Result {
            req: 1,
            result: Err(WireTaskError::NoProc {
                name: "Tasks".into(),
                node: name("b@localhost"),
            }),
        })),
        SessionFrame::Msg(NodeMsg::Task(TaskMsg::Output {
            text: "hello\n".into(),
        })),
        SessionFrame::Msg(NodeMsg::Actor(ActorMsg::Send {
            target: Target::Pid {
                creation: 3,
                id: 42,
            },
            name: "fuzz.Note".into(),
            payload: vec![1, 2, 3],
            call: Some(5),
            trace: Some(WireTrace {
                trace_id: [0x4b; 16],
                span_id: [0xb7; 8],
                flags: 1,
            }),
        })),
        SessionFrame::Msg(NodeMsg::Actor(ActorMsg::Reply {
            call: 5,
            result: Ok(vec![0]),
        })),
        SessionFrame::Msg(NodeMsg::Watch(WatchMsg::Watch { id: 2, target })),
        SessionFrame::Msg(NodeMsg::Watch(WatchMsg::Down {
            id: 2,
            reason: WireDownReason::NoProc,
        })),
        SessionFrame::Msg(NodeMsg::Watch(WatchMsg::Down {
            id: 3,
            reason: WireDownReason::Exit(WireExitReason::Failed {
                why: "panicked".into(),
            }),
        })),
        SessionFrame::Msg(NodeMsg::Link(LinkMsg::Link {
            from: WirePid { creation: 1, id: 7 },
            to: WirePid { creation: 3, id: 42 },
        })),
        SessionFrame::Msg(NodeMsg::Link(LinkMsg::Unlink {
            from: WirePid { creation: 1, id: 7 },
            to: WirePid { creation: 3, id: 42 },
        })),
        SessionFrame::Msg(NodeMsg::Link(LinkMsg::Exit {
            from: WirePid { creation: 1, id: 7 },
            to: WirePid { creation: 3, id: 42 },
            reason: WireExitReason::Stopped {
                reason: "bye".into(),
            },
        })),
    ]
}

fn handshake_messages() -> Vec<HandshakeMessage> {
    vec![
        HandshakeMessage::Hello(Hello {
            min_version: 2,
            max_version: 2,
            capabilities: 0,
            name: name("x@localhost"),
            creation: 1,
            hidden: false,
        }),
        HandshakeMessage::Status(Status::Ok),
        HandshakeMessage::Challenge { challenge: [7; 32] },
        HandshakeMessage::ChallengeReply {
            digest: [8; 32],
            challenge: [9; 32],
        },
        HandshakeMessage::ChallengeAck { digest: [10; 32] },
    ]
}

fn frames<T: serde::Serialize>(msgs: &[T]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        encode_frame(m, &mut out, DEFAULT_MAX_FRAME_LEN).expect("encodes");
    }
    out
}

fn with(kind: u8, bytes: Vec<u8>) -> Vec<u8> {
    [vec![kind], bytes].concat()
}

/// Every seed, by target and file name.
fn seeds() -> BTreeMap<&'static str, Vec<(String, Vec<u8>)>> {
    let mut s: BTreeMap<&'static str, Vec<(String, Vec<u8>)>> = BTreeMap::new();
    let session = session_frames();
    let handshake = handshake_messages();
    s.insert(
        "session_frame",
        session
            .iter()
            .enumerate()
            .map(|(i, f)| (format!("frame-{i:02}"), codec::encode(f).expect("encodes")))
            .collect(),
    );
    s.insert(
        "handshake_message",
        handshake
            .iter()
            .enumerate()
            .map(|(i, m)| {
                (
                    format!("{i}-{}", m.kind().replace(' ', "-")),
                    codec::encode(m).expect("encodes"),
                )
            })
            .collect(),
    );
    s.insert(
        "frame_decode",
        vec![
            ("session-stream".into(), with(10, frames(&session))),
            ("handshake-stream".into(), with(3, frames(&handshake))),
        ],
    );
    let mut scripts = Vec::new();
    for y_initiates in [true, false] {
        let role = if y_initiates {
            "y-initiates"
        } else {
            "y-accepts"
        };
        let valid = script_exchange(y_initiates);
        scripts.push((format!("{role}-valid"), frames(&valid)));
        let wrong: Vec<HandshakeMessage> = valid
            .into_iter()
            .map(|m| match m {
                HandshakeMessage::ChallengeAck { mut digest } => {
                    digest[0] ^= 1;
                    HandshakeMessage::ChallengeAck { digest }
                }
                HandshakeMessage::ChallengeReply {
                    mut digest,
                    challenge,
                } => {
                    digest[0] ^= 1;
                    HandshakeMessage::ChallengeReply { digest, challenge }
                }
                m => m,
            })
            .collect();
        scripts.push((format!("{role}-wrong-digest"), frames(&wrong)));
    }
    s.insert("handshake_script", scripts);
    let note = Note {
        text: "hi".into(),
        bytes: vec![1, 2],
        tags: vec![("a".into(), 1)],
    };
    s.insert(
        "remote_payload",
        vec![
            (
                "actor-put".into(),
                with(0, remote::encode(0, &(&"key", &7u64)).expect("encodes")),
            ),
            (
                "actor-blob".into(),
                with(
                    0,
                    remote::encode(1, &(&vec![1u8, 2], &Some("t"))).expect("encodes"),
                ),
            ),
            (
                "actor-get-call".into(),
                with(1, remote::encode(2, &(&"key",)).expect("encodes")),
            ),
            (
                "serde-note".into(),
                with(2, codec::encode(&note).expect("encodes")),
            ),
        ],
    );
    let record = Record {
        name: "r".into(),
        values: vec![-1, 2],
        blob: Some(vec![3]),
    };
    s.insert(
        "function_args",
        vec![
            (
                "string".into(),
                with(0, codec::encode(&("joe",)).expect("encodes")),
            ),
            (
                "number-bool-option".into(),
                with(1, codec::encode(&(5u64, true, Some("x"))).expect("encodes")),
            ),
            (
                "bytes-strings".into(),
                with(2, codec::encode(&(vec![1u8], vec!["a"])).expect("encodes")),
            ),
            (
                "record".into(),
                with(3, codec::encode(&(record, 4u32)).expect("encodes")),
            ),
        ],
    );
    let info = pm::NodeInfo::nodus("hoge", 4711, pm::NodeType::NORMAL);
    let req = |r: pm::Request| {
        let mut out = Vec::new();
        pm::encode_request(&r, &mut out).expect("encodes");
        out
    };
    s.insert(
        "port_mapper_request",
        vec![
            ("alive2".into(), req(pm::Request::Alive2(info.clone()))),
            (
                "port-please2".into(),
                req(pm::Request::PortPlease2 {
                    name: "hoge".into(),
                }),
            ),
            ("names".into(), req(pm::Request::Names)),
        ],
    );
    let mut alive = Vec::new();
    pm::encode_alive2_reply(
        &pm::Alive2Reply {
            result: 0,
            creation: 3,
            old_form: false,
        },
        &mut alive,
    );
    let mut found = Vec::new();
    pm::encode_port_please_reply(&pm::PortPleaseReply::Found(info), &mut found).expect("encodes");
    let mut names = Vec::new();
    pm::encode_names_reply(
        &pm::NamesReply {
            epmd_port: 4369,
            names: vec![("hoge".into(), 4711)],
        },
        &mut names,
    );
    s.insert(
        "port_mapper_reply",
        vec![
            ("alive2".into(), with(0, alive)),
            ("port2-found".into(), with(1, found)),
            ("port2-not-found".into(), with(1, vec![pm::PORT2_RESP, 1])),
            ("names".into(), with(2, names)),
        ],
    );
    s
}

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target)
}

/// The committed seeds are what this file generates (`NODUS_WRITE_CORPUS=1` rewrites them).
#[test]
fn seeds_are_current() {
    let seeds = seeds();
    assert_eq!(seeds.keys().copied().collect::<Vec<_>>(), {
        let mut t = TARGETS.to_vec();
        t.sort_unstable();
        t
    });
    let write = std::env::var_os("NODUS_WRITE_CORPUS").is_some();
    for (target, files) in &seeds {
        let dir = corpus_dir(target);
        for (file, bytes) in files {
            let path = dir.join(file);
            if write {
                fs::create_dir_all(&dir).expect("create the corpus folder");
                fs::write(&path, bytes).expect("write a seed");
            } else {
                let committed = fs::read(&path).unwrap_or_else(|e| {
                    panic!(
                        "{}: {e}; run NODUS_WRITE_CORPUS=1 cargo test",
                        path.display()
                    )
                });
                assert_eq!(
                    &committed,
                    bytes,
                    "{} is stale; run NODUS_WRITE_CORPUS=1 cargo test",
                    path.display()
                );
            }
        }
    }
}

/// xorshift64*: a fixed, dependency-free stream of pseudo-random numbers.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A few random edits of `seed`: bit flips, new bytes, cuts, insertions, varints claiming
/// 60 MiB or `u64::MAX`.
fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(b.len());
        match rng.below(6) {
            0 if !b.is_empty() => b[at] ^= 1 << rng.below(8),
            1 if !b.is_empty() => b[at] = rng.next() as u8,
            2 => b.truncate(at),
            3 => b.insert(at.min(b.len()), rng.next() as u8),
            4 if !b.is_empty() => {
                b.splice(
                    at..=at,
                    [252].into_iter().chain((60u32 << 20).to_le_bytes()),
                );
            }
            5 if !b.is_empty() => {
                b.splice(at..=at, [253].into_iter().chain(u64::MAX.to_le_bytes()));
            }
            _ => {}
        }
    }
    b
}

/// Each target on every file of its corpus folder, then on 2,000 mutations of its seeds and
/// 500 random inputs: no panic, no allocation over the limit (which would abort the test).
#[test]
fn targets_run_on_the_corpus_and_bounded_random_inputs() {
    let seeds = seeds();
    for target in TARGETS {
        let mut inputs: Vec<Vec<u8>> = Vec::new();
        if let Ok(dir) = fs::read_dir(corpus_dir(target)) {
            for entry in dir.flatten() {
                inputs.push(fs::read(entry.path()).expect("read a corpus file"));
            }
        }
        assert!(!inputs.is_empty(), "no corpus for {target}");
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ target.len() as u64);
        let seed_bytes: Vec<&Vec<u8>> = seeds[target].iter().map(|(_, b)| b).collect();
        for _ in 0..2000 {
            let seed = seed_bytes[rng.below(seed_bytes.len())];
            inputs.push(mutate(&mut rng, seed));
        }
        for _ in 0..500 {
            let len = rng.below(300);
            inputs.push((0..len).map(|_| rng.next() as u8).collect());
        }
        for input in &inputs {
            nodus_fuzz::run(target, input);
        }
        eprintln!("{target}: {} inputs", inputs.len());
    }
}

/// The allocation limit is installed: an allocation over it fails (in a target, that aborts).
#[test]
fn allocations_over_the_limit_fail() {
    let mut v: Vec<u8> = Vec::new();
    assert!(v.try_reserve(MAX_ALLOC + 1).is_err());
    assert!(v.try_reserve(1 << 20).is_ok());
}
