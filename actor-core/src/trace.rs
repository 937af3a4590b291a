//! Traces that cross nodes: a W3C trace context (what OpenTelemetry propagates as the
//! `traceparent` header) that follows one request through casts, calls and tasks, on this
//! node and on others.
//!
//! A [`TraceContext`] is a 16-byte trace id, the 8-byte id of the span that sent the work
//! (the *parent* of whatever the receiver does) and the W3C flags. Code runs *in* a context
//! with [`TraceContext::instrument`]: the context is then [`TraceContext::current`] for that
//! future, and everything it logs is inside a `trace{trace_id=…}` span, so one request's
//! log lines carry the same `trace_id` on every node they reach. A request starts with
//! [`TraceContext::new_root`] (or [`TraceContext::from_traceparent`] when it came in with a
//! `traceparent` header); [`TraceContext::to_traceparent`] hands it on to another system.
//!
//! What carries the current context further:
//!
//! - **casts and calls to another node** (`System::cast`, `System::call` and the generated
//!   clients): the node sends it with the message (`ActorMsg::Send` in actor-remote); the
//!   receiving node delivers the message in a [`child`](TraceContext::child) of it;
//! - **handlers of `#[nodus::actor]` actors**: a message sent by a generated client or
//!   delivered from another node while a context is current carries it into the actor's
//!   mailbox (a hidden variant of the message enum), and the handler runs in it, so its own
//!   casts, calls and tasks carry it on (A → B → C);
//! - **tasks** (`TaskSupervisor::async_*`, `start_child`, `Node::spawn_on`, on this node or
//!   another): the task runs in a child of the context current where it was started.
//!
//! Not covered: hand-written ractor actors (their messages are not wrapped: a handler there
//! has no current context unless it sets one), and `tokio::spawn` by user code (the context
//! is task-local: use [`TraceContext::instrument`] on the spawned future).

use std::{fmt, future::Future};

tokio::task_local! {
    /// The trace context of the code running on this task.
    static CURRENT: TraceContext;
}

/// The W3C flag "sampled".
pub const SAMPLED: u8 = 0x01;

/// A W3C trace context: which trace, which span sent the work, and the trace flags.
///
/// Compatible with OpenTelemetry's `TraceContextPropagator`: [`TraceContext::to_traceparent`]
/// and [`TraceContext::from_traceparent`] read and write the `traceparent` header (version
/// `00`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceContext {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    flags: u8,
}

/// Why a `traceparent` string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceParentError {
    /// Not four `-`-separated fields of 2, 32, 16 and 2 characters.
    #[error(
        "a traceparent is `00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`, got {got:?}: \
         pass the header as the caller sent it"
    )]
    Malformed {
        /// The string given.
        got: String,
    },
    /// A field is not lowercase hex.
    #[error("the {field} of traceparent {got:?} is not lowercase hex: pass the header as the caller sent it")]
    NotHex {
        /// Which field.
        field: &'static str,
        /// The string given.
        got: String,
    },
    /// Version `ff`, or another version this build does not read.
    #[error("traceparent {got:?} has version {version:?}, which is not supported (only \"00\"): start a new root trace instead")]
    Version {
        /// The version field.
        version: String,
        /// The string given.
        got: String,
    },
    /// An all-zero trace id or span id, which W3C declares invalid.
    #[error("the {field} of traceparent {got:?} is all zeros, which is invalid: start a new root trace instead")]
    Zero {
        /// Which field.
        field: &'static str,
        /// The string given.
        got: String,
    },
}

impl TraceContext {
    /// A context made of its parts. An all-zero id is invalid in W3C's terms; it is
    /// accepted here (the wire carries what the peer sent) but never produced by
    /// [`TraceContext::new_root`] or [`TraceContext::child`].
    pub fn from_parts(trace_id: [u8; 16], span_id: [u8; 8], flags: u8) -> Self {
        Self {
            trace_id,
            span_id,
            flags,
        }
    }

    /// A new trace: a random trace id and span id, sampled.
    pub fn new_root() -> Self {
        Self {
            trace_id: random_nonzero(),
            span_id: random_nonzero(),
            flags: SAMPLED,
        }
    }

    /// The same trace, with a new random span id: what the receiver of work runs in, so its
    /// span's parent is the sender's.
    #[must_use]
    pub fn child(&self) -> Self {
        Self {
            span_id: random_nonzero(),
            ..*self
        }
    }

    /// The trace id.
    pub fn trace_id(&self) -> [u8; 16] {
        self.trace_id
    }

    /// The span id.
    pub fn span_id(&self) -> [u8; 8] {
        self.span_id
    }

    /// The W3C trace flags ([`SAMPLED`]).
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// The trace id as 32 lowercase hex digits, as logs show it (the `trace_id` field).
    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }

    /// The `traceparent` header: `00-<trace id>-<span id>-<flags>`.
    pub fn to_traceparent(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            hex(&self.trace_id),
            hex(&self.span_id),
            self.flags
        )
    }

    /// Reads a `traceparent` header (version `00`).
    ///
    /// # Errors
    /// [`TraceParentError`]: not the four fields, not lowercase hex, another version, or
    /// an all-zero id.
    pub fn from_traceparent(s: &str) -> Result<Self, TraceParentError> {
        let malformed = || TraceParentError::Malformed { got: s.to_string() };
        let parts: Vec<&str> = s.split('-').collect();
        let [version, trace, span, flags] = parts[..] else {
            return Err(malformed());
        };
        if version.len() != 2 || trace.len() != 32 || span.len() != 16 || flags.len() != 2 {
            return Err(malformed());
        }
        let not_hex = |field| TraceParentError::NotHex {
            field,
            got: s.to_string(),
        };
        let version_byte: [u8; 1] = unhex(version).ok_or_else(|| not_hex("version"))?;
        if version_byte[0] != 0 {
            return Err(TraceParentError::Version {
                version: version.to_string(),
                got: s.to_string(),
            });
        }
        let trace_id: [u8; 16] = unhex(trace).ok_or_else(|| not_hex("trace id"))?;
        let span_id: [u8; 8] = unhex(span).ok_or_else(|| not_hex("span id"))?;
        let [flags]: [u8; 1] = unhex(flags).ok_or_else(|| not_hex("flags"))?;
        let zero = |field| TraceParentError::Zero {
            field,
            got: s.to_string(),
        };
        if trace_id == [0; 16] {
            return Err(zero("trace id"));
        }
        if span_id == [0; 8] {
            return Err(zero("span id"));
        }
        Ok(Self {
            trace_id,
            span_id,
            flags,
        })
    }

    /// The context the code on this task runs in, if any.
    pub fn current() -> Option<Self> {
        CURRENT.try_with(|t| *t).ok()
    }

    /// Runs `f` in this context: [`TraceContext::current`] inside it, and inside an
    /// error-level span `trace{trace_id=…}` (error level so that it is on wherever the
    /// node's own span is), so every event it logs carries the trace id.
    pub async fn instrument<F: Future>(self, f: F) -> F::Output {
        use tracing::Instrument as _;
        let span = self.span();
        CURRENT.scope(self, f.instrument(span)).await
    }

    /// As [`TraceContext::instrument`], with its `trace{trace_id=…}` span under `parent`
    /// (a node's span, so node logs capture what `f` logs).
    pub async fn instrument_in<F: Future>(self, parent: &tracing::Span, f: F) -> F::Output {
        use tracing::Instrument as _;
        let span = tracing::error_span!(parent: parent, "trace", trace_id = %hex(&self.trace_id));
        CURRENT.scope(self, f.instrument(span)).await
    }

    /// Runs the synchronous `f` in this context (as [`TraceContext::instrument`]).
    pub fn in_scope<R>(self, f: impl FnOnce() -> R) -> R {
        let span = self.span();
        CURRENT.sync_scope(self, || span.in_scope(f))
    }

    /// The `trace{trace_id=…}` span of this context.
    pub fn span(&self) -> tracing::Span {
        tracing::error_span!("trace", trace_id = %hex(&self.trace_id))
    }
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceContext({})", self.to_traceparent())
    }
}

impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_traceparent())
    }
}

/// Runs `f` in `trace` when there is one, else as it is.
pub async fn maybe_instrument<F: Future>(trace: Option<TraceContext>, f: F) -> F::Output {
    match trace {
        Some(trace) => trace.instrument(f).await,
        None => f.await,
    }
}

fn random_nonzero<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // getrandom fails only without an OS source of randomness; fall back to a value from
    // the clock and a counter, unique enough to tell requests apart in logs.
    if getrandom::fill(&mut bytes).is_err() || bytes == [0u8; N] {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(1);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let seed = nanos ^ COUNTER.fetch_add(1, Ordering::Relaxed).rotate_left(32) | 1;
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (seed.rotate_left((i as u32 * 8) % 64) & 0xff) as u8;
        }
        bytes[0] |= 1;
    }
    bytes
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let raw = s.as_bytes();
    if raw.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in raw.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_round_trips() {
        // The example of the W3C recommendation.
        let s = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let t = TraceContext::from_traceparent(s).unwrap();
        assert_eq!(t.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.span_id()[7], 0xb7);
        assert_eq!(t.flags(), SAMPLED);
        assert_eq!(t.to_traceparent(), s);
        let root = TraceContext::new_root();
        assert_eq!(
            TraceContext::from_traceparent(&root.to_traceparent()).unwrap(),
            root
        );
        let child = root.child();
        assert_eq!(child.trace_id(), root.trace_id());
        assert_ne!(child.span_id(), root.span_id());
        assert_ne!(TraceContext::new_root().trace_id(), root.trace_id());
    }

    #[test]
    fn malformed_traceparents_are_refused_with_what_is_wrong() {
        let ok = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        type Check = fn(&TraceParentError) -> bool;
        let cases: &[(&str, Check)] = &[
            ("", |e| matches!(e, TraceParentError::Malformed { .. })),
            (&ok[..ok.len() - 1], |e| {
                matches!(e, TraceParentError::Malformed { .. })
            }),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
                |e| matches!(e, TraceParentError::Malformed { .. }),
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-00",
                |e| matches!(e, TraceParentError::Malformed { .. }),
            ),
            (
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                |e| {
                    matches!(
                        e,
                        TraceParentError::NotHex {
                            field: "trace id",
                            ..
                        }
                    )
                },
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01",
                |e| {
                    matches!(
                        e,
                        TraceParentError::NotHex {
                            field: "span id",
                            ..
                        }
                    )
                },
            ),
            (
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                |e| matches!(e, TraceParentError::Version { .. }),
            ),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                |e| {
                    matches!(
                        e,
                        TraceParentError::Zero {
                            field: "trace id",
                            ..
                        }
                    )
                },
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                |e| {
                    matches!(
                        e,
                        TraceParentError::Zero {
                            field: "span id",
                            ..
                        }
                    )
                },
            ),
        ];
        for (s, expected) in cases {
            let err = TraceContext::from_traceparent(s).unwrap_err();
            assert!(expected(&err), "{s:?}: {err:?}");
            assert!(err.to_string().contains(s), "{err} names the input");
        }
    }

    #[tokio::test]
    async fn the_current_context_is_the_one_instrumented() {
        assert_eq!(TraceContext::current(), None);
        let t = TraceContext::new_root();
        let seen = t.instrument(async { TraceContext::current() }).await;
        assert_eq!(seen, Some(t));
        assert_eq!(t.in_scope(TraceContext::current), Some(t));
        assert_eq!(
            maybe_instrument(None, async { TraceContext::current() }).await,
            None
        );
    }
}
