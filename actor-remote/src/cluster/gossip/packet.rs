//! Gossip heartbeats as bytes, and the replay check: sans-IO (no socket, no clock, no RNG;
//! the nonce and the times are given).
//!
//! # Format
//!
//! Every packet starts with the magic `NDG1` and a mode byte. The body is
//! `sent_at_ms: u64 | seq: u64 | port: u16 | name_len: u8 | name` (big-endian), where
//! `sent_at_ms` is the sender's wall clock in milliseconds since the UNIX epoch, `seq` counts
//! the sender's heartbeats, `port` is the sender's distribution port (informative: peers
//! connect by name through the port mapper) and `name` its node name.
//!
//! - Mode 0, open: `NDG1 | 0 | body`. Anyone can forge it; use it on trusted networks only.
//! - Mode 1, sealed: `NDG1 | 1 | nonce (24 bytes) | XChaCha20-Poly1305(body) | tag (16)`,
//!   the first five bytes as associated data, the key derived from the secret by
//!   HKDF-SHA256 (salt `nodus gossip v1`, info `heartbeat key`). A packet sealed under
//!   another secret, or changed on the way, fails authentication.
//!
//! # Replay
//!
//! [`ReplayWindow`] accepts a heartbeat only if its `(sent_at_ms, seq)` is greater than the
//! last accepted from that node, and its `sent_at_ms` is within the allowed clock skew of the
//! receiver's clock: a recorded packet cannot be played back later, nor to a receiver that
//! restarted (outside the skew). A node restarted under the same name sends later times, so
//! it is accepted at once.

use std::{collections::HashMap, fmt, time::Duration};

use actor_core::NodeName;
use chacha20poly1305::{
    aead::{Aead, KeyInit, Payload},
    Key, XChaCha20Poly1305, XNonce,
};
use hkdf::Hkdf;
use sha2::Sha256;

/// The first four bytes of every heartbeat.
pub const MAGIC: &[u8; 4] = b"NDG1";
/// The largest heartbeat this code sends or reads (a node name is at most 255 bytes).
pub const MAX_PACKET: usize = 5 + 24 + 8 + 8 + 2 + 1 + 255 + 16;
/// The length of a sealed packet's nonce.
pub const NONCE_LEN: usize = 24;

const MODE_OPEN: u8 = 0;
const MODE_SEALED: u8 = 1;
const HEADER: usize = 5;
const FIXED_BODY: usize = 8 + 8 + 2 + 1;
const TAG_LEN: usize = 16;

/// One heartbeat: who sent it, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    /// The sender's node name.
    pub node: NodeName,
    /// The sender's distribution port.
    pub port: u16,
    /// The sender's wall clock, milliseconds since the UNIX epoch.
    pub sent_at_ms: u64,
    /// The sender's heartbeat counter.
    pub seq: u64,
}

/// Why a datagram is not a heartbeat this node accepts. Each is dropped and logged at debug.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PacketError {
    /// Shorter than the smallest heartbeat.
    #[error("{len} bytes is too short for a heartbeat")]
    TooShort {
        /// Its length.
        len: usize,
    },
    /// Longer than the largest heartbeat.
    #[error("{len} bytes is too long for a heartbeat (at most {MAX_PACKET})")]
    TooLong {
        /// Its length.
        len: usize,
    },
    /// Not a nodus heartbeat (another program on the gossip port or group).
    #[error("not a nodus heartbeat (bad magic); another program uses this gossip port or group")]
    BadMagic,
    /// An unknown mode byte.
    #[error("unknown heartbeat mode {0}")]
    UnknownMode(u8),
    /// An open heartbeat while this node has a secret.
    #[error("an unsealed heartbeat, but this node's gossip has a secret; give the sender the same `secret`")]
    Unsealed,
    /// A sealed heartbeat while this node has no secret.
    #[error(
        "a sealed heartbeat, but this node's gossip has no secret; give it the sender's `secret`"
    )]
    NoSecret,
    /// Sealed under another secret, or changed on the way.
    #[error("authentication failed: sealed under another secret, or corrupted on the way")]
    Unauthentic,
    /// The body's lengths do not add up.
    #[error("malformed heartbeat body")]
    Malformed,
    /// The name in it is not a node name.
    #[error("the heartbeat's node name is invalid: {0}")]
    BadName(String),
}

/// Why [`ReplayWindow::check`] refused an authentic heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Replay {
    /// Not newer than the last heartbeat accepted from that node.
    #[error(
        "replayed or reordered heartbeat from {node} (seq {seq}, not newer than the last accepted)"
    )]
    NotNewer {
        /// The sender.
        node: NodeName,
        /// Its counter.
        seq: u64,
    },
    /// Its time is too far from this node's clock.
    #[error("heartbeat from {node} is {skew_ms} ms away from this node's clock (at most {max_ms} ms); check both clocks (NTP)")]
    Skew {
        /// The sender.
        node: NodeName,
        /// How far, in milliseconds.
        skew_ms: u64,
        /// The bound.
        max_ms: u64,
    },
}

/// Encodes and decodes heartbeats, sealed with a key derived from a secret if one is given.
#[derive(Clone)]
pub struct Codec {
    cipher: Option<XChaCha20Poly1305>,
}

impl fmt::Debug for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Codec")
            .field("sealed", &self.cipher.is_some())
            .finish()
    }
}

/// The heartbeat key for `secret`: HKDF-SHA256, salt `nodus gossip v1`, info `heartbeat key`.
fn derive_key(secret: &[u8]) -> Key {
    let mut okm = [0u8; 32];
    let hk = Hkdf::<Sha256>::new(Some(b"nodus gossip v1"), secret);
    // 32 bytes is far below HKDF-SHA256's limit of 255 * 32: this cannot fail.
    if hk.expand(b"heartbeat key", &mut okm).is_err() {
        tracing::error!("internal: HKDF refused a 32-byte key");
    }
    Key::from(okm)
}

impl Codec {
    /// A codec that seals with `secret` if given, else sends and accepts open heartbeats.
    pub fn new(secret: Option<&[u8]>) -> Self {
        Self {
            cipher: secret.map(|s| XChaCha20Poly1305::new(&derive_key(s))),
        }
    }

    /// Whether heartbeats are sealed.
    pub fn is_sealed(&self) -> bool {
        self.cipher.is_some()
    }

    /// The bytes of `hb`; `nonce` must be fresh random bytes for every sealed packet (it is
    /// unused for open ones).
    pub fn encode(&self, hb: &Heartbeat, nonce: [u8; NONCE_LEN]) -> Vec<u8> {
        let name = hb.node.to_string();
        let name = &name.as_bytes()[..name.len().min(255)];
        let mut body = Vec::with_capacity(FIXED_BODY + name.len());
        body.extend_from_slice(&hb.sent_at_ms.to_be_bytes());
        body.extend_from_slice(&hb.seq.to_be_bytes());
        body.extend_from_slice(&hb.port.to_be_bytes());
        body.push(name.len() as u8);
        body.extend_from_slice(name);
        let mut out = Vec::with_capacity(MAX_PACKET);
        out.extend_from_slice(MAGIC);
        match &self.cipher {
            None => {
                out.push(MODE_OPEN);
                out.extend_from_slice(&body);
            }
            Some(cipher) => {
                out.push(MODE_SEALED);
                let aad = out.clone();
                out.extend_from_slice(&nonce);
                let payload = Payload {
                    msg: &body,
                    aad: &aad,
                };
                match cipher.encrypt(&XNonce::from(nonce), payload) {
                    Ok(sealed) => out.extend_from_slice(&sealed),
                    // Only a message longer than 2^38 bytes fails; a heartbeat is < 400.
                    Err(_) => tracing::error!("internal: a heartbeat could not be sealed"),
                }
            }
        }
        out
    }

    /// The heartbeat in `bytes`, or why it is refused. Never panics, whatever the bytes.
    ///
    /// # Errors
    /// [`PacketError`] saying why the datagram is not an acceptable heartbeat.
    pub fn decode(&self, bytes: &[u8]) -> Result<Heartbeat, PacketError> {
        if bytes.len() > MAX_PACKET {
            return Err(PacketError::TooLong { len: bytes.len() });
        }
        if bytes.len() < HEADER {
            return Err(PacketError::TooShort { len: bytes.len() });
        }
        if &bytes[..4] != MAGIC {
            return Err(PacketError::BadMagic);
        }
        let opened;
        let body = match (bytes[4], &self.cipher) {
            (MODE_OPEN, None) => &bytes[HEADER..],
            (MODE_OPEN, Some(_)) => return Err(PacketError::Unsealed),
            (MODE_SEALED, None) => return Err(PacketError::NoSecret),
            (MODE_SEALED, Some(cipher)) => {
                if bytes.len() < HEADER + NONCE_LEN + TAG_LEN + FIXED_BODY {
                    return Err(PacketError::TooShort { len: bytes.len() });
                }
                let mut nonce = [0u8; NONCE_LEN];
                nonce.copy_from_slice(&bytes[HEADER..HEADER + NONCE_LEN]);
                let payload = Payload {
                    msg: &bytes[HEADER + NONCE_LEN..],
                    aad: &bytes[..HEADER],
                };
                opened = cipher
                    .decrypt(&XNonce::from(nonce), payload)
                    .map_err(|_| PacketError::Unauthentic)?;
                &opened[..]
            }
            (mode, _) => return Err(PacketError::UnknownMode(mode)),
        };
        parse_body(body)
    }
}

fn parse_body(body: &[u8]) -> Result<Heartbeat, PacketError> {
    if body.len() < FIXED_BODY {
        return Err(PacketError::TooShort { len: body.len() });
    }
    let u64_at = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&body[at..at + 8]);
        u64::from_be_bytes(b)
    };
    let sent_at_ms = u64_at(0);
    let seq = u64_at(8);
    let port = u16::from_be_bytes([body[16], body[17]]);
    let name_len = usize::from(body[18]);
    if body.len() != FIXED_BODY + name_len {
        return Err(PacketError::Malformed);
    }
    let name = std::str::from_utf8(&body[FIXED_BODY..])
        .map_err(|e| PacketError::BadName(e.to_string()))?;
    let node = NodeName::parse(name).map_err(|e| PacketError::BadName(e.to_string()))?;
    Ok(Heartbeat {
        node,
        port,
        sent_at_ms,
        seq,
    })
}

/// The replay check: per sender, the newest `(sent_at_ms, seq)` accepted; bounded in size.
#[derive(Debug)]
pub struct ReplayWindow {
    last: HashMap<NodeName, (u64, u64)>,
    max_skew_ms: u64,
    capacity: usize,
}

impl ReplayWindow {
    /// A window that accepts heartbeats within `max_skew` of the receiver's clock, and
    /// remembers at most `capacity` senders (beyond, the one heard from least recently is
    /// forgotten).
    pub fn new(max_skew: Duration, capacity: usize) -> Self {
        Self {
            last: HashMap::new(),
            max_skew_ms: u64::try_from(max_skew.as_millis()).unwrap_or(u64::MAX),
            capacity: capacity.max(1),
        }
    }

    /// Accepts `hb` if it is newer than the last from its sender and within the skew of
    /// `now_ms` (the receiver's wall clock), and remembers it.
    ///
    /// # Errors
    /// [`Replay`] saying why it is refused.
    pub fn check(&mut self, hb: &Heartbeat, now_ms: u64) -> Result<(), Replay> {
        let skew_ms = hb.sent_at_ms.abs_diff(now_ms);
        if skew_ms > self.max_skew_ms {
            return Err(Replay::Skew {
                node: hb.node.clone(),
                skew_ms,
                max_ms: self.max_skew_ms,
            });
        }
        let stamp = (hb.sent_at_ms, hb.seq);
        if let Some(last) = self.last.get(&hb.node) {
            if stamp <= *last {
                return Err(Replay::NotNewer {
                    node: hb.node.clone(),
                    seq: hb.seq,
                });
            }
        } else if self.last.len() >= self.capacity {
            // Forget the sender heard from longest ago (its next heartbeat is still checked
            // against the skew).
            if let Some(oldest) = self
                .last
                .iter()
                .min_by_key(|(_, stamp)| **stamp)
                .map(|(n, _)| n.clone())
            {
                self.last.remove(&oldest);
            }
        }
        self.last.insert(hb.node.clone(), stamp);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hb(name: &str, sent_at_ms: u64, seq: u64) -> Heartbeat {
        Heartbeat {
            node: NodeName::parse(name).unwrap(),
            port: 4370,
            sent_at_ms,
            seq,
        }
    }

    #[test]
    fn open_and_sealed_heartbeats_round_trip() {
        for codec in [Codec::new(None), Codec::new(Some(b"s3cret"))] {
            let sent = hb("a@localhost", 1_700_000_000_000, 7);
            let bytes = codec.encode(&sent, [9; NONCE_LEN]);
            assert!(bytes.len() <= MAX_PACKET);
            assert_eq!(codec.decode(&bytes), Ok(sent));
        }
    }

    #[test]
    fn a_sealed_heartbeat_hides_the_name_and_differs_per_nonce() {
        let codec = Codec::new(Some(b"s3cret"));
        let sent = hb("visible@localhost", 1, 1);
        let one = codec.encode(&sent, [1; NONCE_LEN]);
        let two = codec.encode(&sent, [2; NONCE_LEN]);
        assert_ne!(one, two);
        assert!(!one.windows(7).any(|w| w == b"visible"));
    }

    #[test]
    fn another_secret_or_a_flipped_bit_is_unauthentic() {
        let sent = hb("a@localhost", 1, 1);
        let bytes = Codec::new(Some(b"one")).encode(&sent, [3; NONCE_LEN]);
        assert_eq!(
            Codec::new(Some(b"two")).decode(&bytes),
            Err(PacketError::Unauthentic)
        );
        let ours = Codec::new(Some(b"one"));
        for i in HEADER..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[i] ^= 0x01;
            assert_eq!(
                ours.decode(&flipped),
                Err(PacketError::Unauthentic),
                "byte {i}"
            );
        }
        // The header is authenticated too: changing the mode is refused, never misread.
        let mut mode = bytes.clone();
        mode[4] = MODE_OPEN;
        assert_eq!(ours.decode(&mode), Err(PacketError::Unsealed));
    }

    #[test]
    fn open_and_sealed_do_not_mix() {
        let sent = hb("a@localhost", 1, 1);
        let open = Codec::new(None).encode(&sent, [0; NONCE_LEN]);
        let sealed = Codec::new(Some(b"k")).encode(&sent, [0; NONCE_LEN]);
        assert_eq!(
            Codec::new(Some(b"k")).decode(&open),
            Err(PacketError::Unsealed)
        );
        assert_eq!(Codec::new(None).decode(&sealed), Err(PacketError::NoSecret));
    }

    #[test]
    fn malformed_packets_are_refused() {
        let codec = Codec::new(None);
        assert_eq!(codec.decode(b"NDG"), Err(PacketError::TooShort { len: 3 }));
        assert_eq!(codec.decode(b"XXXX\0rest"), Err(PacketError::BadMagic));
        assert_eq!(codec.decode(b"NDG1\x07"), Err(PacketError::UnknownMode(7)));
        let mut bytes = codec.encode(&hb("a@localhost", 1, 1), [0; NONCE_LEN]);
        bytes.push(0);
        assert_eq!(codec.decode(&bytes), Err(PacketError::Malformed));
        let long = vec![0u8; MAX_PACKET + 1];
        assert_eq!(
            codec.decode(&long),
            Err(PacketError::TooLong {
                len: MAX_PACKET + 1
            })
        );
        let mut bad_name = b"NDG1\0".to_vec();
        bad_name.extend_from_slice(&[0; 18]);
        bad_name.push(5);
        bad_name.extend_from_slice(b"nohst");
        assert!(matches!(
            codec.decode(&bad_name),
            Err(PacketError::BadName(_))
        ));
    }

    #[test]
    fn a_replayed_or_older_heartbeat_is_refused_and_a_newer_accepted() {
        let mut window = ReplayWindow::new(Duration::from_secs(60), 16);
        let now = 1_000_000;
        assert_eq!(window.check(&hb("a@h", now, 1), now), Ok(()));
        assert!(matches!(
            window.check(&hb("a@h", now, 1), now),
            Err(Replay::NotNewer { .. })
        ));
        assert!(matches!(
            window.check(&hb("a@h", now - 1, 9), now),
            Err(Replay::NotNewer { .. })
        ));
        assert_eq!(window.check(&hb("a@h", now, 2), now), Ok(()));
        // A restarted sender counts from 0 again, at a later time: accepted.
        assert_eq!(window.check(&hb("a@h", now + 5, 0), now), Ok(()));
        // Another sender has its own window.
        assert_eq!(window.check(&hb("b@h", now, 1), now), Ok(()));
    }

    #[test]
    fn a_heartbeat_outside_the_skew_is_refused_either_way() {
        let mut window = ReplayWindow::new(Duration::from_secs(60), 16);
        let now = 10_000_000;
        assert!(matches!(
            window.check(&hb("a@h", now - 60_001, 1), now),
            Err(Replay::Skew {
                skew_ms: 60_001,
                ..
            })
        ));
        assert!(matches!(
            window.check(&hb("a@h", now + 60_001, 1), now),
            Err(Replay::Skew { .. })
        ));
        assert_eq!(window.check(&hb("a@h", now - 60_000, 1), now), Ok(()));
    }

    #[test]
    fn the_window_stays_bounded_and_forgets_the_oldest() {
        let mut window = ReplayWindow::new(Duration::from_secs(60), 2);
        let now = 1_000_000;
        window.check(&hb("a@h", now - 2, 1), now).unwrap();
        window.check(&hb("b@h", now - 1, 1), now).unwrap();
        window.check(&hb("c@h", now, 1), now).unwrap();
        assert_eq!(window.last.len(), 2);
        assert!(!window.last.contains_key(&NodeName::parse("a@h").unwrap()));
    }

    proptest! {
        /// Garbage never panics, with or without a secret, and is never accepted as sealed.
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = Codec::new(None).decode(&bytes);
            let sealed = Codec::new(Some(b"k")).decode(&bytes);
            prop_assert!(sealed.is_err());
        }

        /// Valid prefixes and mutations of real packets never panic either.
        #[test]
        fn mutated_packets_never_panic(
            cut in 0usize..400,
            at in 0usize..400,
            byte in any::<u8>(),
            seq in any::<u64>(),
        ) {
            for codec in [Codec::new(None), Codec::new(Some(b"k"))] {
                let mut bytes = codec.encode(&hb("node@host", 1, seq), [5; NONCE_LEN]);
                if at < bytes.len() {
                    bytes[at] = byte;
                }
                bytes.truncate(cut);
                let _ = codec.decode(&bytes);
            }
        }
    }
}
