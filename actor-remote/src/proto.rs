//! Sans-IO protocol cores: the handshake, the failure detector, and the accept loops'
//! back-off.
//!
//! Nothing in this module does IO, spawns a task, reads the clock or draws random numbers:
//! the time (`now: Instant`) and the challenges are inputs, and outputs are polled, in the
//! style of quinn-proto (`handle_*` for inputs, `poll_*` for outputs). A thin tokio driver
//! moves bytes between these machines and a socket; tests
//! drive them directly with a virtual clock.

pub mod accept;
pub mod handshake;
pub mod ticks;

pub use handshake::{
    Established, Existing, Handshake, HandshakeConfig, HandshakeError, HandshakeEvent, Role,
    DEFAULT_SETUP_TIME, PROTOCOL_VERSION,
};
pub use ticks::{TickAction, TickBeats, Ticker, DEFAULT_TICK_INTENSITY, DEFAULT_TICK_TIME};
