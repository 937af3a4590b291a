//! Running the handshake over a socket.

use std::future::Future;

use actor_core::NodeName;
use tokio::{io::AsyncWriteExt, time::Instant};

use super::Stream;

use crate::{
    proto::{Established, Existing, Handshake, HandshakeConfig, HandshakeError, HandshakeEvent},
    wire::{encode_frame, message::Challenge, FrameDecoder, HANDSHAKE_MAX_FRAME_LEN},
};

/// Which way the connection was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Direction {
    /// This node dialled `peer`.
    Outgoing {
        /// The node dialled; the handshake fails if another node answers.
        peer: NodeName,
    },
    /// This node accepted the connection.
    Incoming,
}

/// A socket whose handshake succeeded, ready for [`Session::start`](super::Session::start).
///
/// It keeps the bytes the peer may already have sent after the handshake.
#[derive(Debug)]
pub struct Connected {
    pub(super) established: Established,
    pub(super) stream: Stream,
    pub(super) decoder: FrameDecoder,
}

impl Connected {
    /// Who the peer is and what the session speaks.
    pub fn established(&self) -> &Established {
        &self.established
    }
}

fn io_error(e: impl std::fmt::Display) -> HandshakeError {
    HandshakeError::Io {
        source: std::io::Error::other(e.to_string()),
    }
}

fn fresh_challenge() -> Challenge {
    let mut c = [0; 32];
    rand::Rng::fill_bytes(&mut rand::rng(), &mut c);
    c
}

/// Runs the handshake over `stream` (a TCP socket, on which it sets `TCP_NODELAY`, or any
/// other [`Stream`]), each step bounded by
/// [`HandshakeConfig::setup_time`].
///
/// On an incoming connection, `register` is asked what this node already has with the peer
/// (see [the simultaneous-connect rule](crate::proto::handshake#simultaneous-connects)). If
/// it answered [`Existing::PendingOutgoing`] and this returns `Ok`, the peer's name sorted
/// greater and the caller must abort its own outgoing attempt to that peer.
///
/// Failed attempts are logged at `debug` only (with the peer's name once known): the caller
/// decides which refusals deserve a warning. A node warns about a refused peer, as the BEAM's
/// acceptor does, but not about a simultaneous connect that lost, nor about a bare connect
/// (a port scan, a health check), and at most once per address per minute with a count
/// (`node/driver.rs`).
///
/// # Errors
/// The [`HandshakeError`] that ended the handshake.
///
/// # Cancel safety
/// Dropping the future closes the socket; the handshake is lost.
pub async fn handshake_over<F, Fut>(
    stream: impl Into<Stream>,
    direction: Direction,
    cfg: &HandshakeConfig,
    mut register: F,
) -> Result<Connected, HandshakeError>
where
    F: FnMut(NodeName) -> Fut,
    Fut: Future<Output = Existing>,
{
    let mut stream = stream.into();
    stream
        .set_nodelay()
        .map_err(|source| HandshakeError::Io { source })?;
    let challenge = fresh_challenge();
    let incoming = direction == Direction::Incoming;
    let mut hs = match direction {
        Direction::Outgoing { peer } => Handshake::initiate(cfg, peer, challenge, Instant::now()),
        Direction::Incoming => Handshake::accept(cfg, challenge, Instant::now()),
    };
    let mut decoder = FrameDecoder::new(HANDSHAKE_MAX_FRAME_LEN);
    let mut out = Vec::new();
    loop {
        out.clear();
        while let Some(msg) = hs.poll_transmit() {
            encode_frame(&msg, &mut out, HANDSHAKE_MAX_FRAME_LEN).map_err(io_error)?;
        }
        if !out.is_empty() {
            if let Err(e) = stream.write_all(&out).await {
                hs.handle_io_error(e);
            }
        }
        if let Some(HandshakeEvent::NeedsRegistration { peer }) = hs.poll_event() {
            let deadline = hs.poll_timeout().unwrap_or_else(Instant::now);
            match tokio::time::timeout_at(deadline, register(peer)).await {
                Ok(existing) => {
                    hs.handle_registration(Instant::now(), existing);
                }
                Err(_) => hs.handle_timeout(Instant::now()),
            }
            continue;
        }
        if let Some(outcome) = hs.poll_outcome() {
            return match outcome {
                Ok(established) => {
                    tracing::debug!(peer = %established.peer, "handshake complete");
                    Ok(Connected {
                        established,
                        stream,
                        decoder,
                    })
                }
                Err(e) => {
                    if incoming {
                        // The caller decides what is worth a warning (the node's driver warns
                        // about refusals that name a peer, rate-limited per address).
                        match hs.peer() {
                            Some(peer) => {
                                tracing::debug!(%peer, "incoming connection rejected: {e}");
                            }
                            None => tracing::debug!("incoming connection dropped: {e}"),
                        }
                    } else {
                        tracing::debug!("outgoing handshake failed: {e}");
                    }
                    Err(e)
                }
            };
        }
        match decoder.decode() {
            Ok(Some(body)) => {
                hs.handle_frame_body(Instant::now(), body);
                continue;
            }
            Ok(None) => {}
            Err(e) => {
                hs.handle_frame_error(e);
                continue;
            }
        }
        let Some(deadline) = hs.poll_timeout() else {
            // Only a finished handshake has no deadline, and its outcome was returned above.
            return Err(io_error("the handshake ended without an outcome"));
        };
        tokio::select! {
            // Bytes that arrived by the deadline count; and no random pick (a seeded
            // simulation replays exactly).
            biased;
            // Read into the decoder through a buffer on the stack (no buffer of its own).
            read = super::session::read_into(&mut stream, &mut decoder) => match read {
                Ok(0) => hs.handle_close(),
                Ok(_) => {}
                Err(e) => hs.handle_io_error(e),
            },
            () = tokio::time::sleep_until(deadline) => hs.handle_timeout(Instant::now()),
        }
    }
}
