//! Messages that cross nodes: [`RemoteMessage`] and a node's table of them.
//!
//! # Contract
//!
//! [`System::cast`](crate::System::cast) and [`System::call`](crate::System::call) take any
//! ractor message for a local destination and never serialize it. For a destination on
//! another node, the message type must implement [`RemoteMessage`] and be registered with
//! [`System::register_remote_message`](crate::System::register_remote_message) on **both**
//! nodes: the sender to encode it, the receiver to decode it for the target actor. An
//! unregistered type is [`SendErrorKind::NotRemotable`](crate::SendErrorKind::NotRemotable)
//! on the sender, and a refusal (logged, and returned to a caller) on the receiver.
//!
//! A call's reply port cannot travel: [`RemoteMessage::to_wire`] takes it out of the message
//! (see [`bridge_reply`]), the receiver puts a new port in (see [`reply_port`]), and the reply
//! comes back as bytes. Plain serde messages without reply ports implement the trait with
//! [`serde_message!`](crate::serde_message).
//!
//! ```
//! use actor_core::ractor::RpcReplyPort;
//! use actor_core::{bridge_reply, codec, reply_port, RemoteMessage, ReplySink, Wire};
//!
//! enum CounterMsg {
//!     Add(u64),
//!     Get(RpcReplyPort<u64>),
//! }
//!
//! impl RemoteMessage for CounterMsg {
//!     fn to_wire(self) -> Result<Wire, codec::CodecError> {
//!         Ok(match self {
//!             CounterMsg::Add(n) => Wire::cast(codec::encode(&(0u8, n))?),
//!             CounterMsg::Get(port) => Wire::call(codec::encode(&(1u8, 0u64))?, bridge_reply(port)),
//!         })
//!     }
//!     fn from_wire(payload: &[u8], reply: Option<ReplySink>) -> Result<Self, codec::CodecError> {
//!         match (codec::decode::<(u8, u64)>(payload)?, reply) {
//!             ((0, n), _) => Ok(CounterMsg::Add(n)),
//!             ((1, _), Some(sink)) => Ok(CounterMsg::Get(reply_port(sink))),
//!             _ => Err(codec::CodecError::Decode { expected: "CounterMsg", reason: "unknown variant".into() }),
//!         }
//!     }
//! }
//! ```

use std::{
    any::{Any, TypeId},
    collections::HashMap,
    fmt,
    sync::{PoisonError, RwLock},
};

use ractor::{ActorCell, Message, RpcReplyPort};
use serde::{de::DeserializeOwned, Serialize};

use crate::{codec, codec::CodecError};

/// A message type that can be sent to an actor on another node.
pub trait RemoteMessage: Message + Sized {
    /// Encodes the message; a call's reply port is taken out as a [`ReplyBridge`].
    ///
    /// # Errors
    /// The codec's error.
    fn to_wire(self) -> Result<Wire, CodecError>;

    /// Decodes a message; for a call, `reply` is where the answer goes (make a port of it
    /// with [`reply_port`]).
    ///
    /// # Errors
    /// The codec's error, also for a call message without a `reply` or the reverse.
    fn from_wire(payload: &[u8], reply: Option<ReplySink>) -> Result<Self, CodecError>;
}

/// A message on its way to another node.
#[derive(Debug)]
pub struct Wire {
    /// The encoded message.
    pub payload: Vec<u8>,
    /// For a call: how the reply reaches the caller's port.
    pub reply: Option<ReplyBridge>,
}

impl Wire {
    /// A cast.
    pub fn cast(payload: Vec<u8>) -> Self {
        Self {
            payload,
            reply: None,
        }
    }

    /// A call whose reply goes to `reply`.
    pub fn call(payload: Vec<u8>, reply: ReplyBridge) -> Self {
        Self {
            payload,
            reply: Some(reply),
        }
    }
}

/// The caller's reply port, type-erased: given the reply's bytes, decodes and answers.
pub struct ReplyBridge(Box<AnswerFn>);

type AnswerFn = dyn FnOnce(&[u8]) -> Result<(), CodecError> + Send;

impl ReplyBridge {
    /// Answers the caller with the encoded reply `bytes`.
    ///
    /// # Errors
    /// The codec's error when the bytes are not the reply type.
    pub fn answer(self, bytes: &[u8]) -> Result<(), CodecError> {
        (self.0)(bytes)
    }
}

impl fmt::Debug for ReplyBridge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReplyBridge")
    }
}

/// Takes a call's reply port out of a message on its way to another node.
pub fn bridge_reply<R: DeserializeOwned + Send + 'static>(port: RpcReplyPort<R>) -> ReplyBridge {
    ReplyBridge(Box::new(move |bytes| {
        let reply = codec::decode::<R>(bytes)?;
        let _ = port.send(reply);
        Ok(())
    }))
}

/// Where a remote call's reply goes, on the node that handles the call: the transport sends
/// the bytes back to the caller (or `None` if the actor dropped the port without replying).
pub struct ReplySink(Box<dyn FnOnce(Option<Vec<u8>>) + Send>);

impl ReplySink {
    /// A sink that hands the encoded reply (or `None`: no reply) to `f`.
    pub fn new(f: impl FnOnce(Option<Vec<u8>>) + Send + 'static) -> Self {
        Self(Box::new(f))
    }
}

impl fmt::Debug for ReplySink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReplySink")
    }
}

/// A reply port for a call that came from another node: what the actor sends on it is
/// encoded and goes back to the caller. Needs a tokio runtime.
pub fn reply_port<R: Serialize + Send + 'static>(sink: ReplySink) -> RpcReplyPort<R> {
    let (tx, rx) = ractor::concurrency::oneshot::<R>();
    tokio::spawn(async move {
        let bytes = match rx.await {
            Ok(reply) => codec::encode(&reply).ok(),
            Err(_) => None,
        };
        (sink.0)(bytes);
    });
    tx.into()
}

/// Implements [`RemoteMessage`] for a serde type without reply ports (casts only).
///
/// ```
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Say(String);
/// actor_core::serde_message!(Say);
/// ```
#[macro_export]
macro_rules! serde_message {
    ($($ty:ty),+ $(,)?) => {$(
        impl $crate::RemoteMessage for $ty {
            fn to_wire(self) -> ::std::result::Result<$crate::Wire, $crate::codec::CodecError> {
                ::std::result::Result::Ok($crate::Wire::cast($crate::codec::encode(&self)?))
            }
            fn from_wire(
                payload: &[u8],
                _reply: ::std::option::Option<$crate::ReplySink>,
            ) -> ::std::result::Result<Self, $crate::codec::CodecError> {
                $crate::codec::decode(payload)
            }
        }
    )+};
}

/// Why a message from another node was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeliverError {
    /// The target actor takes another message type.
    #[error("the target does not take {type_name}")]
    WrongType {
        /// The message type.
        type_name: String,
    },
    /// The message did not decode.
    #[error("the {type_name} did not decode: {reason}")]
    BadMessage {
        /// The message type.
        type_name: String,
        /// The decoder's words.
        reason: String,
    },
    /// The target actor has stopped.
    #[error("the target has stopped")]
    Stopped,
}

/// Takes the message out of `&mut Option<M>` (type-erased, so no box per message).
type Encoder = fn(&mut dyn Any) -> Result<Wire, CodecError>;
type Decoder = fn(&[u8], Option<ReplySink>, &ActorCell) -> Result<(), DeliverError>;

fn encoder<M: RemoteMessage>(slot: &mut dyn Any) -> Result<Wire, CodecError> {
    match slot.downcast_mut::<Option<M>>().and_then(Option::take) {
        Some(msg) => msg.to_wire(),
        None => Err(CodecError::Encode {
            reason: format!("internal: not a {}", std::any::type_name::<M>()),
        }),
    }
}

fn decoder<M: RemoteMessage>(
    payload: &[u8],
    reply: Option<ReplySink>,
    cell: &ActorCell,
) -> Result<(), DeliverError> {
    let type_name = std::any::type_name::<M>();
    if cell.is_message_type_of::<M>() != Some(true) {
        return Err(DeliverError::WrongType {
            type_name: type_name.to_string(),
        });
    }
    let msg = M::from_wire(payload, reply).map_err(|e| DeliverError::BadMessage {
        type_name: type_name.to_string(),
        reason: e.to_string(),
    })?;
    cell.send_message(msg).map_err(|_| DeliverError::Stopped)
}

/// A node's registered remote message types.
#[derive(Default)]
pub(crate) struct RemoteTypes {
    encoders: RwLock<HashMap<TypeId, Encoder>>,
    decoders: RwLock<HashMap<&'static str, Decoder>>,
}

impl RemoteTypes {
    pub(crate) fn register<M: RemoteMessage>(&self) {
        self.encoders
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(TypeId::of::<M>(), encoder::<M>);
        self.decoders
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(std::any::type_name::<M>(), decoder::<M>);
    }

    /// Encodes `msg` if its type is registered; `Err(msg)` hands it back when it is not.
    pub(crate) fn encode<M: Message>(&self, msg: M) -> Result<Result<Wire, CodecError>, M> {
        let encode = self
            .encoders
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&TypeId::of::<M>())
            .copied();
        match encode {
            Some(encode) => Ok(encode(&mut Some(msg))),
            None => Err(msg),
        }
    }

    pub(crate) fn decoder(&self, type_name: &str) -> Option<Decoder> {
        self.decoders
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(type_name)
            .copied()
    }
}
