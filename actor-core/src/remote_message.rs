//! Messages that cross nodes: [`RemoteMessage`] and a node's table of them.
//!
//! # Contract
//!
//! [`System::cast`](crate::System::cast) and [`System::call`](crate::System::call) take any
//! ractor message for a local destination and never serialize it. For a destination on
//! another node, the message type must implement [`RemoteMessage`] and be known to **both**
//! nodes: the sender to encode it, the receiver to decode it for the target actor.
//!
//! # Stable names
//!
//! On the wire a message type is its [`RemoteMessage::NAME`], never its Rust path: two nodes
//! whose programs keep the type in different modules, or were built by different compilers,
//! still understand each other as long as both say the same name for the same encoding. A name
//! is part of the wire protocol between your nodes: renaming it is a breaking change, moving
//! the type is not.
//!
//! # How a node knows a type
//!
//! - Types from `#[nodus::actor(remote)]` (non-generic actors) and from
//!   [`serde_message!`](crate::serde_message) are registered **at link time**: every
//!   [`System`](crate::System) of a program that links them knows them from its start, with no
//!   call to make.
//! - Generic types, and hand-written impls of [`RemoteMessage`], are registered on each node
//!   with [`System::register_remote_message`](crate::System::register_remote_message) (a
//!   generic type has no one instance to register at link time). `spawn` of a generic
//!   `#[nodus::actor(remote)]` actor does it on the node that runs the actor.
//!
//! A type unknown to the sender is
//! [`SendErrorKind::NotRemotable`](crate::SendErrorKind::NotRemotable); a name unknown to the
//! receiver is a refusal ([`SendErrorKind::Refused`](crate::SendErrorKind::Refused), logged,
//! and returned to a caller) that names the type and says what to do. Two types of one name in
//! one node are an error too: the second is refused and an error is logged naming both.
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
//!     const NAME: &'static str = "Counter";
//!
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
    sync::{OnceLock, PoisonError, RwLock},
};

use ractor::{ActorCell, Message, RpcReplyPort};
use serde::{de::DeserializeOwned, Serialize};

use crate::{codec, codec::CodecError};

/// A message type that can be sent to an actor on another node.
pub trait RemoteMessage: Message + Sized {
    /// The type's stable name on the wire: what the receiving node decodes by, so both nodes
    /// must say the same name for the same type. It does not depend on the module the type
    /// lives in nor on the compiler. `#[nodus::actor(remote)]` takes the actor's name (or
    /// `name = "..."`), [`serde_message!`](crate::serde_message) the type's (or
    /// `Type = "..."`). One name per type in a program: a second type of the same name is
    /// refused.
    const NAME: &'static str;

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

/// Implements [`RemoteMessage`] for serde types without reply ports (casts only), and
/// registers each at link time, so every node of the program knows it.
///
/// The wire name ([`RemoteMessage::NAME`]) is the type's own name as written (`Say` below
/// is `"Say"`), or the one given after `=`. A path or a generic instance needs an explicit
/// name, since its module path must not reach the wire:
///
/// ```
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Say(String);
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Shout(String);
/// mod chat {
///     #[derive(serde::Serialize, serde::Deserialize)]
///     pub struct Join(pub String);
/// }
/// actor_core::serde_message!(Say, Shout = "chat.Shout", chat::Join = "chat.Join");
///
/// use actor_core::RemoteMessage;
/// assert_eq!(Say::NAME, "Say");
/// assert_eq!(Shout::NAME, "chat.Shout");
/// assert_eq!(chat::Join::NAME, "chat.Join");
/// ```
///
/// A path without a name does not compile, with the fix in the message:
///
/// ```compile_fail
/// mod chat {
///     #[derive(serde::Serialize, serde::Deserialize)]
///     pub struct Join(pub String);
/// }
/// actor_core::serde_message!(chat::Join); // error: write `chat::Join = "Name"`
/// ```
///
/// Generic types are not linked (there is no single instance): implement [`RemoteMessage`]
/// for them and call [`System::register_remote_message`](crate::System::register_remote_message)
/// on each node, or use this macro on a concrete instance with a name
/// (`serde_message!(Pair<u32> = "Pair<u32>")`).
#[macro_export]
macro_rules! serde_message {
    () => {};
    ($ty:ident $(, $($rest:tt)*)?) => {
        $crate::serde_message!(@impl $ty, ::core::stringify!($ty));
        $crate::serde_message!($($($rest)*)?);
    };
    ($ty:ty = $name:literal $(, $($rest:tt)*)?) => {
        $crate::serde_message!(@impl $ty, $name);
        $crate::serde_message!($($($rest)*)?);
    };
    (@impl $ty:ty, $name:expr) => {
        impl $crate::RemoteMessage for $ty {
            const NAME: &'static str = $name;

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
        $crate::__inventory::submit! { $crate::LinkedRemoteMessage::of::<$ty>() }
    };
    ($ty:ty $(, $($rest:tt)*)?) => {
        ::core::compile_error!(::core::concat!(
            "serde_message!: `",
            ::core::stringify!($ty),
            "` needs a wire name, since its path must not reach the wire: write `",
            ::core::stringify!($ty),
            " = \"Name\"`"
        ));
    };
}

/// Why a message from another node was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeliverError {
    /// The target actor takes another message type.
    #[error("the target does not take {name:?} messages; send it its own actor's message type")]
    WrongType {
        /// The message type's stable name.
        name: String,
    },
    /// The message did not decode.
    #[error("the {name:?} message did not decode: {reason}; check that both nodes encode {name:?} the same way (same definition)")]
    BadMessage {
        /// The message type's stable name.
        name: String,
        /// The decoder's words.
        reason: String,
    },
    /// The target actor has stopped.
    #[error("the target has stopped")]
    Stopped,
}

/// Why a node refuses a message whose type's name it does not know, and what to do.
pub(crate) fn not_registered(name: &str) -> String {
    format!(
        "the message type {name:?} is not registered there; link the code that defines it into \
         that node's program (`#[nodus::actor(remote)]` and `serde_message!` types are \
         registered at link time), or, for a generic type or a hand-written `RemoteMessage`, \
         call `System::register_remote_message` for it on that node"
    )
}

/// Takes the message out of `&mut Option<M>` (type-erased, so no box per message).
type Encoder = fn(&mut dyn Any) -> Result<Wire, CodecError>;
type Decoder = fn(&[u8], Option<ReplySink>, &ActorCell) -> Result<(), DeliverError>;

fn encoder<M: RemoteMessage>(slot: &mut dyn Any) -> Result<Wire, CodecError> {
    match slot.downcast_mut::<Option<M>>().and_then(Option::take) {
        Some(msg) => msg.to_wire(),
        None => Err(CodecError::Encode {
            // Local only: this never reaches the wire.
            reason: format!("internal: not a {}", std::any::type_name::<M>()),
        }),
    }
}

fn decoder<M: RemoteMessage>(
    payload: &[u8],
    reply: Option<ReplySink>,
    cell: &ActorCell,
) -> Result<(), DeliverError> {
    if cell.is_message_type_of::<M>() != Some(true) {
        return Err(DeliverError::WrongType {
            name: M::NAME.to_string(),
        });
    }
    let msg = M::from_wire(payload, reply).map_err(|e| DeliverError::BadMessage {
        name: M::NAME.to_string(),
        reason: e.to_string(),
    })?;
    cell.send_message(msg).map_err(|_| DeliverError::Stopped)
}

/// One registered type: how to encode it, its name, how to decode it. Not a public API.
#[doc(hidden)]
#[derive(Clone, Copy)]
pub struct Entry {
    type_id: TypeId,
    /// The Rust type's name, for local error messages only (never on the wire).
    rust_name: &'static str,
    name: &'static str,
    encoder: Encoder,
    decoder: Decoder,
}

impl Entry {
    fn of<M: RemoteMessage>() -> Self {
        Self {
            type_id: TypeId::of::<M>(),
            rust_name: std::any::type_name::<M>(),
            name: M::NAME,
            encoder: encoder::<M>,
            decoder: decoder::<M>,
        }
    }
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("name", &self.name)
            .field("rust_name", &self.rust_name)
            .finish_non_exhaustive()
    }
}

fn entry_of<M: RemoteMessage>() -> Option<Entry> {
    Some(Entry::of::<M>())
}

/// A remote message type registered at link time, by `#[nodus::actor(remote)]` and
/// [`serde_message!`](crate::serde_message) through [`inventory`]. Not a public API: generated
/// code uses it.
#[doc(hidden)]
pub struct LinkedRemoteMessage(fn() -> Option<Entry>);

impl LinkedRemoteMessage {
    /// The link-time registration of `M`.
    pub const fn of<M: RemoteMessage>() -> Self {
        Self(entry_of::<M>)
    }

    /// The link-time registration of what `probe` finds (see [`Probe`]).
    pub const fn probed(probe: fn() -> Option<Entry>) -> Self {
        Self(probe)
    }
}

impl fmt::Debug for LinkedRemoteMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("LinkedRemoteMessage")
            .field(&(self.0)().map(|entry| entry.name))
            .finish()
    }
}

/// `(&Probe::<M>::new()).entry()` is `M`'s entry if `M: RemoteMessage`, else `None`, without a
/// compile error of its own (autoref specialization). `#[nodus::actor(remote)]` links its
/// message type this way: when a handler type is not serde, the `RemoteMessage` impl reports
/// it at that type, once, and the link adds no second error. Not a public API.
#[doc(hidden)]
pub struct Probe<M>(std::marker::PhantomData<fn() -> M>);

impl<M> Probe<M> {
    /// A probe of `M`.
    pub const fn new() -> Self {
        Self(std::marker::PhantomData)
    }
}

impl<M> Default for Probe<M> {
    fn default() -> Self {
        Self::new()
    }
}

impl<M> fmt::Debug for Probe<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Probe")
    }
}

/// See [`Probe`]: chosen when `M: RemoteMessage`.
#[doc(hidden)]
pub trait ProbeRemote {
    /// `M`'s entry.
    fn entry(&self) -> Option<Entry>;
}

impl<M: RemoteMessage> ProbeRemote for Probe<M> {
    fn entry(&self) -> Option<Entry> {
        entry_of::<M>()
    }
}

/// See [`Probe`]: the fallback when `M` is not a `RemoteMessage`.
#[doc(hidden)]
pub trait ProbeOther {
    /// No entry.
    fn entry(&self) -> Option<Entry> {
        None
    }
}

impl<M> ProbeOther for &Probe<M> {}

inventory::collect!(LinkedRemoteMessage);

/// A second type under a name that another type holds in the same node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "two remote message types are named {name:?}: {kept} (kept) and {refused} (refused, it \
     cannot go to nor come from another node); give one of them another name: \
     `#[nodus::actor(remote, name = \"...\")]`, `serde_message!(Type = \"...\")` or its \
     `RemoteMessage::NAME`"
)]
pub(crate) struct NameTaken {
    name: &'static str,
    kept: &'static str,
    refused: &'static str,
}

type ByType = HashMap<TypeId, (&'static str, Encoder)>;
type ByName = HashMap<&'static str, Entry>;

/// Adds `entry`, unless another type holds its name (then nothing changes).
fn add(by_name: &mut ByName, by_type: &mut ByType, entry: Entry) -> Result<(), NameTaken> {
    if let Some(held) = by_name.get(entry.name) {
        if held.type_id == entry.type_id {
            return Ok(());
        }
        return Err(NameTaken {
            name: entry.name,
            kept: held.rust_name,
            refused: entry.rust_name,
        });
    }
    by_name.insert(entry.name, entry);
    by_type.insert(entry.type_id, (entry.name, entry.encoder));
    Ok(())
}

/// The types of one program, by type (to encode) and by name (to decode).
#[derive(Clone, Default)]
struct Table {
    by_type: ByType,
    by_name: ByName,
}

impl Table {
    /// Adds `entry`, unless another type holds its name (then the table is unchanged).
    fn add(&mut self, entry: Entry) -> Result<(), NameTaken> {
        add(&mut self.by_name, &mut self.by_type, entry)
    }
}

/// The types registered at link time, gathered once per program (a name clash is logged once).
fn linked() -> &'static Table {
    static LINKED: OnceLock<Table> = OnceLock::new();
    LINKED.get_or_init(|| {
        let mut entries: Vec<Entry> = inventory::iter::<LinkedRemoteMessage>
            .into_iter()
            .filter_map(|linked| (linked.0)())
            .collect();
        // Link order is not stable: of two clashing types, keep the same one every run.
        entries.sort_by(|a, b| (a.name, a.rust_name).cmp(&(b.name, b.rust_name)));
        let mut table = Table::default();
        for entry in entries {
            if let Err(e) = table.add(entry) {
                tracing::error!("{e}");
            }
        }
        table
    })
}

/// A node's remote message types: those linked into the program, and those registered on it.
/// Two locks, so that encoding (senders) and decoding (session readers) share no lock word.
pub(crate) struct RemoteTypes {
    by_type: RwLock<ByType>,
    by_name: RwLock<ByName>,
}

impl Default for RemoteTypes {
    fn default() -> Self {
        let linked = linked();
        Self {
            by_type: RwLock::new(linked.by_type.clone()),
            by_name: RwLock::new(linked.by_name.clone()),
        }
    }
}

impl RemoteTypes {
    /// Registers `M` on this node; a name clash is logged at error level and `M` refused.
    pub(crate) fn register<M: RemoteMessage>(&self) {
        // Both locks, always in this order (by name, then by type).
        let mut by_name = self.by_name.write().unwrap_or_else(PoisonError::into_inner);
        let mut by_type = self.by_type.write().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = add(&mut by_name, &mut by_type, Entry::of::<M>()) {
            tracing::error!("{e}");
        }
    }

    /// Encodes `msg` if its type is registered, with the type's name; `Err(msg)` hands it back
    /// when it is not.
    pub(crate) fn encode<M: Message>(
        &self,
        msg: M,
    ) -> Result<(&'static str, Result<Wire, CodecError>), M> {
        let found = self
            .by_type
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&TypeId::of::<M>())
            .copied();
        match found {
            Some((name, encode)) => Ok((name, encode(&mut Some(msg)))),
            None => Err(msg),
        }
    }

    /// The decoder of the type named `name` on the wire.
    pub(crate) fn decoder(&self, name: &str) -> Option<Decoder> {
        self.by_name
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .map(|entry| entry.decoder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Linked(u32);
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Named(String);
    crate::serde_message!(Linked, Named = "tests.Named");

    /// Two hand-written types of one name (not linked: registered by hand).
    struct First;
    struct Second;

    macro_rules! clash {
        ($ty:ident) => {
            impl RemoteMessage for $ty {
                const NAME: &'static str = "Clash";
                fn to_wire(self) -> Result<Wire, CodecError> {
                    Ok(Wire::cast(Vec::new()))
                }
                fn from_wire(_: &[u8], _: Option<ReplySink>) -> Result<Self, CodecError> {
                    Ok(Self)
                }
            }
        };
    }
    clash!(First);
    clash!(Second);

    fn name_of<M: Message>(types: &RemoteTypes, msg: M) -> Option<&'static str> {
        types.encode(msg).ok().map(|(name, _)| name)
    }

    #[test]
    fn serde_message_names_the_type_by_its_ident_or_the_name_given() {
        assert_eq!(Linked::NAME, "Linked");
        assert_eq!(Named::NAME, "tests.Named");
    }

    #[test]
    fn linked_types_are_known_to_every_node_without_a_call() {
        for types in [RemoteTypes::default(), RemoteTypes::default()] {
            assert_eq!(name_of(&types, Linked(1)), Some("Linked"));
            assert_eq!(name_of(&types, Named("x".into())), Some("tests.Named"));
            assert!(types.decoder("Linked").is_some());
            assert!(types.decoder("tests.Named").is_some());
            // The Rust path is no key on the wire.
            assert!(types.decoder(std::any::type_name::<Linked>()).is_none());
        }
        // A hand-written impl is not linked: it needs `register`.
        let types = RemoteTypes::default();
        assert!(name_of(&types, First).is_none());
        types.register::<First>();
        assert_eq!(name_of(&types, First), Some("Clash"));
    }

    #[test]
    fn a_second_type_of_one_name_is_refused_naming_both() {
        let types = RemoteTypes::default();
        types.register::<First>();
        types.register::<First>(); // the same type again: no clash
        types.register::<Second>();
        assert_eq!(name_of(&types, First), Some("Clash"));
        assert!(name_of(&types, Second).is_none(), "the second is refused");

        let mut table = Table::default();
        assert_eq!(table.add(Entry::of::<First>()), Ok(()));
        let err = table.add(Entry::of::<Second>()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("\"Clash\""), "{text}");
        assert!(text.contains(std::any::type_name::<First>()), "{text}");
        assert!(text.contains(std::any::type_name::<Second>()), "{text}");
        assert!(text.contains("name = "), "the remedy: {text}");
    }

    #[test]
    fn the_unknown_type_reason_names_it_once_with_the_remedy() {
        let text = not_registered("Counter");
        assert_eq!(text.matches("\"Counter\"").count(), 1, "{text}");
        assert!(text.contains("System::register_remote_message"), "{text}");
        assert!(text.contains("link"), "{text}");
    }

    use crate::codec::props::{mutate, mutations, run_reaching};
    use proptest::prelude::*;
    use ractor::{Actor, ActorProcessingErr, ActorRef};

    /// A message type with fields of every shape a payload holds: text, bytes, options,
    /// lists.
    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Rich {
        text: String,
        bytes: Vec<u8>,
        reply_to: Option<u64>,
        tags: Vec<String>,
    }
    crate::serde_message!(Rich = "tests.Rich");

    /// An actor that takes [`Rich`] messages and drops them.
    struct Sink;

    impl Actor for Sink {
        type Msg = Rich;
        type State = ();
        type Arguments = ();

        async fn pre_start(&self, _: ActorRef<Rich>, (): ()) -> Result<(), ActorProcessingErr> {
            Ok(())
        }
    }

    fn arb_rich() -> impl Strategy<Value = Rich> {
        (
            ".{0,16}",
            proptest::collection::vec(any::<u8>(), 0..64),
            proptest::option::of(any::<u64>()),
            proptest::collection::vec(".{0,6}", 0..4),
        )
            .prop_map(|(text, bytes, reply_to, tags)| Rich {
                text,
                bytes,
                reply_to,
                tags,
            })
    }

    /// Payloads of `ActorMsg::Send` as the receiving node decodes them: by the type's wire
    /// name, through the decoder the node's table holds, into a live actor of that type.
    /// Valid encodings, mutated: every case reaches the payload decoder (not `WrongType`), the
    /// answer is delivery or `BadMessage`, never a panic, and an unmutated payload is
    /// delivered. Lengths claimed in the payload (60 MiB, `u32::MAX`, `u64::MAX`) are refused
    /// without being allocated.
    #[test]
    fn remote_payloads_reach_the_payload_decoder() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (actor, handle) = rt.block_on(Actor::spawn(None, Sink, ())).unwrap();
        let cell = actor.get_cell();
        let types = RemoteTypes::default();
        let decode = types.decoder(Rich::NAME).expect("linked at link time");
        let delivered = std::sync::atomic::AtomicUsize::new(0);
        run_reaching(
            "remote payload (serde_message!)",
            "the payload decoder",
            512,
            100,
            (arb_rich(), mutations(3)),
            |(msg, muts)| {
                let valid = msg.clone().to_wire()?.payload;
                prop_assert_eq!(Rich::from_wire(&valid, None), Ok(msg));
                let payload = mutate(valid.clone(), 0, &muts);
                let reached = match decode(&payload, None, &cell) {
                    Ok(()) => {
                        delivered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        true
                    }
                    Err(DeliverError::BadMessage { name, .. }) => {
                        prop_assert_eq!(name, Rich::NAME);
                        prop_assert!(payload != valid, "a valid payload was refused");
                        true
                    }
                    Err(e) => return Err(TestCaseError::fail(format!("unexpected {e:?}"))),
                };
                Ok(reached)
            },
        );
        eprintln!(
            "remote payload (serde_message!): {} of 512 cases delivered, the rest BadMessage",
            delivered.into_inner()
        );
        actor.stop(None);
        rt.block_on(handle).unwrap();
    }
}
