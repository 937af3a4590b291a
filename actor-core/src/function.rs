//! Functions callable by `module` and `function` name: the Rust form of Erlang's `M, F, A`.
//!
//! # Contract
//!
//! Only registered functions run by name; no closure ever crosses a node boundary. A
//! function takes one argument value (use a tuple for several) that implements
//! `serde::Deserialize`, and returns a value that implements `serde::Serialize`. The
//! registry belongs to one [`System`](crate::System).
//!
//! A call names a function and passes arguments. On the node that runs it:
//! - an unknown `module`/`function` is [`TaskError::Undefined`];
//! - arguments that do not decode as the registered argument type are [`TaskError::BadArgs`].
//!
//! A local call passes the argument value without serializing it when its type is exactly
//! the registered one; otherwise the value is encoded and decoded, exactly as it would be on
//! its way to another node. So `("hi",)` (a `&str`) works for a function registered with
//! `(String,)`, locally and remotely alike, and a type that would not decode remotely does
//! not decode locally either.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use actor_core::{System, SystemConfig, TaskSupervisor, TaskSupervisorConfig};
//! let system = System::start(SystemConfig::default()).await?;
//! system.functions().register("Greeter", "hello", |(name,): (String,)| async move {
//!     format!("hello, {name}")
//! });
//! TaskSupervisor::start(&system, TaskSupervisorConfig::new("Tasks")).await?;
//! let task = TaskSupervisor::async_on(&system, "Tasks", "Greeter", "hello", ("joe",)).await?;
//! let reply: String = task.await?;
//! assert_eq!(reply, "hello, joe");
//! # system.shutdown().await; Ok(()) }
//! ```
//!
//! # JSON (feature `json`)
//!
//! With the `json` feature every registered function can also be called with JSON arguments
//! (`FunctionRegistry::call_json`): when a function is
//! registered, its entry also learns to decode its own argument type from JSON and to encode
//! its result as JSON, so nothing is transcoded generically (bincode is not self-describing).
//! The JSON is the function's *arguments as a JSON array*, one element per argument, as
//! Erlang's `M, F, A` takes a list: `["hi"]` for `(String,)`, `[2, 3]` for `(i64, i64)`, `[]`
//! for `()`. The JSON of the argument value itself is accepted too (`5` for a `u64`,
//! `null` for `()`). An unknown function is `JsonCallError::Undefined`, JSON that does not
//! decode as the argument type `JsonCallError::BadArgs`.

use std::{
    any::Any,
    collections::HashMap,
    fmt,
    future::Future,
    marker::PhantomData,
    sync::{Arc, PoisonError, RwLock},
};

use futures::{future::BoxFuture, FutureExt};
use serde::{de::DeserializeOwned, Serialize};

use crate::{codec, codec::CodecError, error::TaskError};

type EncodeFn = fn(&(dyn Any + Send)) -> Result<Vec<u8>, CodecError>;

/// A value produced on this node, kept unserialized until (and unless) it must be.
pub struct Value {
    any: Box<dyn Any + Send>,
    encode: Option<EncodeFn>,
    /// The value as JSON, for a peer that takes terms rather than the codec's bytes (a BEAM
    /// node, through `actor-remote`'s Erlang bridge).
    #[cfg(feature = "json")]
    json: Option<JsonFn>,
}

#[cfg(feature = "json")]
type JsonFn = fn(&(dyn Any + Send)) -> Result<serde_json::Value, String>;

#[cfg(feature = "json")]
fn json_as<T: Serialize + 'static>(value: &(dyn Any + Send)) -> Result<serde_json::Value, String> {
    match value.downcast_ref::<T>() {
        Some(v) => serde_json::to_value(v).map_err(|e| e.to_string()),
        None => Err(format!(
            "internal: value is not a {}",
            std::any::type_name::<T>()
        )),
    }
}

/// A value that came as JSON ([`Value::from_json`]), and a second reading of it
/// ([`Value::from_json_or`]).
#[cfg(feature = "json")]
struct Json(serde_json::Value, Option<serde_json::Value>);

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Value").finish_non_exhaustive()
    }
}

fn encode_as<T: Serialize + 'static>(value: &(dyn Any + Send)) -> Result<Vec<u8>, CodecError> {
    match value.downcast_ref::<T>() {
        Some(v) => codec::encode(v),
        None => Err(CodecError::Encode {
            reason: format!("internal: value is not a {}", std::any::type_name::<T>()),
        }),
    }
}

/// Bytes already encoded, kept as they are.
struct Encoded(Vec<u8>);

fn encoded_bytes(value: &(dyn Any + Send)) -> Result<Vec<u8>, CodecError> {
    match value.downcast_ref::<Encoded>() {
        Some(Encoded(bytes)) => Ok(bytes.clone()),
        None => Err(CodecError::Encode {
            reason: "internal: value is not encoded bytes".into(),
        }),
    }
}

impl Value {
    /// Wraps a serializable value.
    pub fn new<T: Serialize + Send + 'static>(value: T) -> Self {
        Self {
            any: Box::new(value),
            encode: Some(encode_as::<T>),
            #[cfg(feature = "json")]
            json: Some(json_as::<T>),
        }
    }

    /// Wraps bytes made by the [codec](crate::codec) on another node; they are decoded when
    /// the value is taken as a type.
    pub fn encoded(bytes: Vec<u8>) -> Self {
        Self {
            any: Box::new(Encoded(bytes)),
            encode: Some(encoded_bytes),
            #[cfg(feature = "json")]
            json: None,
        }
    }

    /// Wraps a value that can only be used on this node.
    pub fn local<T: Send + 'static>(value: T) -> Self {
        Self {
            any: Box::new(value),
            encode: None,
            #[cfg(feature = "json")]
            json: None,
        }
    }

    /// Wraps a value that came as JSON (from a peer that speaks terms, not the codec); it is
    /// deserialized when taken as a type ([`Value::into_typed`]).
    #[cfg(feature = "json")]
    pub fn from_json(value: serde_json::Value) -> Self {
        Self::json_value(Json(value, None))
    }

    /// As [`Value::from_json`], with a second reading for a type the first does not fit:
    /// Erlang's `ok` is the string `"ok"` for a `String` and `null` (`fallback`) for a `()`.
    #[cfg(feature = "json")]
    pub fn from_json_or(value: serde_json::Value, fallback: serde_json::Value) -> Self {
        Self::json_value(Json(value, Some(fallback)))
    }

    #[cfg(feature = "json")]
    fn json_value(json: Json) -> Self {
        Self {
            any: Box::new(json),
            encode: None,
            json: Some(|any| match any.downcast_ref::<Json>() {
                Some(Json(v, _)) => Ok(v.clone()),
                None => Err("internal: value is not JSON".into()),
            }),
        }
    }

    /// The value as JSON: `None` if it was made without serde (local-only or codec bytes).
    ///
    /// # Errors
    /// The serializer's words when the value does not serialize as JSON.
    #[cfg(feature = "json")]
    pub fn to_json(&self) -> Option<Result<serde_json::Value, String>> {
        self.json.map(|json| json(&*self.any))
    }

    /// Serializes the value with the [codec](crate::codec).
    ///
    /// # Errors
    /// [`CodecError::Encode`] if the value is not serializable or the serializer refuses it.
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        match self.encode {
            Some(encode) => encode(&*self.any),
            None => Err(CodecError::Encode {
                reason: "the value is local-only (not serializable)".into(),
            }),
        }
    }

    /// Takes the value as a `T`: as is when it is one, else through the codec.
    ///
    /// # Errors
    /// The codec's error when the value is not a `T` and does not decode as one.
    pub fn into_typed<T: DeserializeOwned + 'static>(self) -> Result<T, CodecError> {
        match self.any.downcast::<T>() {
            Ok(v) => Ok(*v),
            #[cfg(feature = "json")]
            Err(any) if any.is::<Json>() => match any.downcast::<Json>() {
                Ok(json) => {
                    let Json(value, fallback) = *json;
                    serde_json::from_value(value).or_else(|e| {
                        fallback
                            .and_then(|f| serde_json::from_value(f).ok())
                            .ok_or_else(|| CodecError::Decode {
                                expected: std::any::type_name::<T>(),
                                reason: e.to_string(),
                            })
                    })
                }
                Err(_) => Err(CodecError::Encode {
                    reason: "internal: value is not JSON".into(),
                }),
            },
            Err(any) => {
                let bytes = Value {
                    any,
                    encode: self.encode,
                    #[cfg(feature = "json")]
                    json: self.json,
                }
                .encode()?;
                codec::decode(&bytes)
            }
        }
    }

    /// Takes the value as a `T` only if it is exactly one.
    pub fn downcast<T: 'static>(self) -> Result<T, Self> {
        match self.any.downcast::<T>() {
            Ok(v) => Ok(*v),
            Err(any) => Err(Value {
                any,
                encode: self.encode,
                #[cfg(feature = "json")]
                json: self.json,
            }),
        }
    }
}

/// Arguments for a function called by name: a local value, or bytes from another node.
#[derive(Debug)]
pub enum Args {
    /// A value from this node.
    Value(Value),
    /// An encoding made by the [codec](crate::codec).
    Bytes(Vec<u8>),
}

impl Args {
    /// Arguments from a local serializable value.
    pub fn value<A: Serialize + Send + 'static>(args: A) -> Self {
        Args::Value(Value::new(args))
    }

    fn decode<A: DeserializeOwned + 'static>(self) -> Result<A, TaskError> {
        let bad = |e: CodecError| TaskError::BadArgs {
            reason: e.to_string(),
        };
        match self {
            Args::Value(v) => v.into_typed::<A>().map_err(bad),
            Args::Bytes(b) => codec::decode::<A>(&b).map_err(bad),
        }
    }
}

trait Function<C>: Send + Sync {
    fn invoke(&self, ctx: C, args: Args) -> Result<BoxFuture<'static, Value>, TaskError>;

    /// The JSON entry point: decodes the function's own argument type from `args` and
    /// encodes its result as JSON.
    #[cfg(feature = "json")]
    fn invoke_json(&self, ctx: C, args: &serde_json::Value) -> Result<JsonFuture, JsonFault>;
}

struct Handler<F, A, R> {
    f: F,
    _types: PhantomData<fn(A) -> R>,
}

impl<C, F, Fut, A, R> Function<C> for Handler<F, A, R>
where
    F: Fn(C, A) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R> + Send + 'static,
    A: DeserializeOwned + Send + 'static,
    R: Serialize + Send + 'static,
{
    fn invoke(&self, ctx: C, args: Args) -> Result<BoxFuture<'static, Value>, TaskError> {
        let args = args.decode::<A>()?;
        Ok((self.f)(ctx, args).map(Value::new).boxed())
    }

    #[cfg(feature = "json")]
    fn invoke_json(&self, ctx: C, args: &serde_json::Value) -> Result<JsonFuture, JsonFault> {
        let args = json::decode_args::<A>(args)?;
        let run = (self.f)(ctx, args);
        Ok(async move { serde_json::to_string(&run.await).map_err(|e| e.to_string()) }.boxed())
    }
}

/// What the JSON entry point of a function returns once it has run: the result as JSON, or
/// why it cannot be written as JSON.
#[cfg(feature = "json")]
type JsonFuture = BoxFuture<'static, Result<String, String>>;

/// Why the JSON arguments were refused, before the caller names the function.
#[cfg(feature = "json")]
struct JsonFault(String);

/// A call with JSON arguments failed
/// ([`FunctionRegistry::call_json`](crate::FunctionRegistry::call_json)).
#[cfg(feature = "json")]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JsonCallError {
    /// No function of that name is registered.
    #[error("function {module}.{function} is not registered on this node; check the module and function names (they are case-sensitive) and that the node registers it")]
    Undefined {
        /// The module asked for.
        module: String,
        /// The function asked for.
        function: String,
    },
    /// The arguments are not JSON, or do not decode as the function's argument type.
    #[error("bad JSON arguments for {module}.{function}: {reason}; pass its arguments as a JSON array, one element per argument, e.g. [\"hi\"] or [2, 3] ([] for none)")]
    BadArgs {
        /// The module.
        module: String,
        /// The function.
        function: String,
        /// What the JSON decoder said.
        reason: String,
    },
    /// The function ran, but its result cannot be written as JSON (a map whose keys are not
    /// strings, for example).
    #[error("{module}.{function} ran, but its result cannot be written as JSON: {reason}; call it from Rust instead, or register a variant whose result JSON can represent (maps need string keys)")]
    BadResult {
        /// The module.
        module: String,
        /// The function.
        function: String,
        /// What the JSON encoder said.
        reason: String,
    },
}

#[cfg(feature = "json")]
mod json {
    use serde::de::DeserializeOwned;
    use serde_json::Value;

    use super::JsonFault;

    /// Decodes `A` from JSON arguments: the argument value itself, else (for a JSON array of
    /// arguments) the value of a one-element array, or unit for an empty one.
    pub(super) fn decode_args<A: DeserializeOwned>(args: &Value) -> Result<A, JsonFault> {
        let first = match A::deserialize(args) {
            Ok(a) => return Ok(a),
            Err(e) => e,
        };
        let fallback = match args.as_array().map(Vec::as_slice) {
            Some([one]) => A::deserialize(one).ok(),
            Some([]) => A::deserialize(&Value::Null).ok(),
            _ => None,
        };
        fallback.ok_or_else(|| JsonFault(first.to_string()))
    }
}

type Modules<C> = HashMap<String, HashMap<String, Arc<dyn Function<C>>>>;

/// The table behind the node's `FunctionRegistry`: functions by module and function name,
/// each given a context `C` when called. Generic so that this module knows nothing of the
/// node that owns the table (the context is the kernel's `CallContext`). Cheap to clone.
pub(crate) struct FunctionTable<C> {
    modules: Arc<RwLock<Modules<C>>>,
}

impl<C> Clone for FunctionTable<C> {
    fn clone(&self) -> Self {
        Self {
            modules: Arc::clone(&self.modules),
        }
    }
}

impl<C> Default for FunctionTable<C> {
    fn default() -> Self {
        Self {
            modules: Arc::default(),
        }
    }
}

impl<C: 'static> FunctionTable<C> {
    /// Registers `f` as `module.function`; returns whether one was replaced.
    pub(crate) fn register<F, Fut, A, R>(&self, module: &str, function: &str, f: F) -> bool
    where
        F: Fn(C, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        A: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
    {
        let handler: Arc<dyn Function<C>> = Arc::new(Handler {
            f,
            _types: PhantomData,
        });
        let mut modules = self.modules.write().unwrap_or_else(PoisonError::into_inner);
        modules
            .entry(module.to_string())
            .or_default()
            .insert(function.to_string(), handler)
            .is_some()
    }

    /// Removes `module.function`; returns whether it was registered.
    pub(crate) fn unregister(&self, module: &str, function: &str) -> bool {
        let mut modules = self.modules.write().unwrap_or_else(PoisonError::into_inner);
        modules
            .get_mut(module)
            .is_some_and(|m| m.remove(function).is_some())
    }

    /// Whether `module.function` is registered.
    pub(crate) fn contains(&self, module: &str, function: &str) -> bool {
        self.lookup(module, function).is_some()
    }

    /// Every registered `(module, function)`, sorted.
    pub(crate) fn list(&self) -> Vec<(String, String)> {
        let modules = self.modules.read().unwrap_or_else(PoisonError::into_inner);
        let mut out: Vec<_> = modules
            .iter()
            .flat_map(|(m, fs)| fs.keys().map(move |f| (m.clone(), f.clone())))
            .collect();
        out.sort();
        out
    }

    fn lookup(&self, module: &str, function: &str) -> Option<Arc<dyn Function<C>>> {
        let modules = self.modules.read().unwrap_or_else(PoisonError::into_inner);
        modules.get(module)?.get(function).cloned()
    }

    /// Prepares a call: looks the function up and decodes the arguments, returning the
    /// future that runs it with `ctx`.
    ///
    /// # Errors
    /// [`TaskError::Undefined`] or [`TaskError::BadArgs`].
    pub(crate) fn prepare(
        &self,
        ctx: C,
        module: &str,
        function: &str,
        args: Args,
    ) -> Result<BoxFuture<'static, Value>, TaskError> {
        let f = self
            .lookup(module, function)
            .ok_or_else(|| TaskError::Undefined {
                module: module.to_string(),
                function: function.to_string(),
            })?;
        f.invoke(ctx, args)
    }

    /// Prepares a call with JSON arguments: looks the function up and decodes `args` (JSON
    /// text) as its argument type, returning the future that runs it with `ctx` and encodes
    /// its result as JSON.
    ///
    /// # Errors
    /// [`JsonCallError::Undefined`] or [`JsonCallError::BadArgs`]; the future,
    /// [`JsonCallError::BadResult`].
    #[cfg(feature = "json")]
    pub(crate) fn prepare_json(
        &self,
        ctx: C,
        module: &str,
        function: &str,
        args: &str,
    ) -> Result<BoxFuture<'static, Result<String, JsonCallError>>, JsonCallError> {
        let f = self
            .lookup(module, function)
            .ok_or_else(|| JsonCallError::Undefined {
                module: module.to_string(),
                function: function.to_string(),
            })?;
        let bad_args = |reason: String| JsonCallError::BadArgs {
            module: module.to_string(),
            function: function.to_string(),
            reason,
        };
        let args: serde_json::Value =
            serde_json::from_str(args).map_err(|e| bad_args(format!("this is not JSON ({e})")))?;
        let run = f
            .invoke_json(ctx, &args)
            .map_err(|JsonFault(reason)| bad_args(reason))?;
        let (module, function) = (module.to_string(), function.to_string());
        Ok(async move {
            run.await.map_err(|reason| JsonCallError::BadResult {
                module,
                function,
                reason,
            })
        }
        .boxed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn undefined_badargs_and_conversions() {
        let reg = FunctionTable::<()>::default();
        reg.register(
            "M",
            "len",
            |(), (s,): (String,)| async move { s.len() as u64 },
        );
        let err = reg.prepare((), "M", "nope", Args::value(())).err();
        assert!(matches!(err, Some(TaskError::Undefined { .. })), "{err:?}");
        let err = reg.prepare((), "M", "len", Args::value(42u64)).err();
        assert!(matches!(err, Some(TaskError::BadArgs { .. })), "{err:?}");
        // &str travels as String, locally as it would remotely.
        let fut = reg.prepare((), "M", "len", Args::value(("abc",))).unwrap();
        assert_eq!(fut.await.into_typed::<u64>().unwrap(), 3);
        let bytes = codec::encode(&("abcd".to_string(),)).unwrap();
        let fut = reg.prepare((), "M", "len", Args::Bytes(bytes)).unwrap();
        assert_eq!(
            fut.await.into_typed::<u32>().unwrap(),
            4,
            "u64 -> u32 through the codec"
        );
    }

    /// A serde value says its JSON (for a peer that takes terms); a JSON value is taken as a
    /// type through serde_json, with its second reading when the first does not fit.
    #[cfg(feature = "json")]
    #[test]
    fn values_cross_as_json() {
        let args = Value::new(("hi".to_string(), 2u32));
        assert_eq!(
            args.to_json().map(Result::ok),
            Some(Some(serde_json::json!(["hi", 2])))
        );
        assert!(Value::encoded(vec![1]).to_json().is_none());
        assert!(Value::local(3u8).to_json().is_none());
        let s: String = Value::from_json(serde_json::json!("got hi"))
            .into_typed()
            .unwrap();
        assert_eq!(s, "got hi");
        let bad = Value::from_json(serde_json::json!("ok")).into_typed::<u32>();
        assert!(matches!(bad, Err(CodecError::Decode { .. })), "{bad:?}");
        let ok = || Value::from_json_or(serde_json::json!("ok"), serde_json::Value::Null);
        ok().into_typed::<()>().unwrap();
        assert_eq!(ok().into_typed::<String>().unwrap(), "ok");
        assert!(ok().into_typed::<u32>().is_err());
    }

    /// Each function decodes its own argument type from JSON: a tuple from an array of
    /// arguments, a single value from itself or a one-element array, unit from `[]`; results
    /// come back as JSON; unknown functions, text that is not JSON and JSON of the wrong
    /// shape are told apart, each naming the function.
    #[cfg(feature = "json")]
    #[tokio::test]
    async fn json_arguments_decode_as_the_registered_types() {
        let reg = FunctionTable::<()>::default();
        reg.register("M", "add", |(), (a, b): (i64, i64)| async move { a + b });
        reg.register(
            "M",
            "hi",
            |(), (s,): (String,)| async move { format!("hi {s}") },
        );
        reg.register("M", "double", |(), n: u64| async move { n * 2 });
        reg.register("M", "unit", |(), (): ()| async move { vec![1u8, 2] });
        reg.register("M", "map", |(), (): ()| async move {
            HashMap::from([((1u8, 2u8), 3u8)])
        });
        let call = |f: &str, args: &str| reg.prepare_json((), "M", f, args);

        assert_eq!(call("add", "[2, 3]").unwrap().await.unwrap(), "5");
        assert_eq!(
            call("hi", r#"["joe"]"#).unwrap().await.unwrap(),
            r#""hi joe""#
        );
        assert_eq!(call("double", "21").unwrap().await.unwrap(), "42");
        assert_eq!(call("double", "[21]").unwrap().await.unwrap(), "42");
        assert_eq!(call("unit", "[]").unwrap().await.unwrap(), "[1,2]");
        assert_eq!(call("unit", "null").unwrap().await.unwrap(), "[1,2]");

        let err = call("nope", "[]").err();
        assert!(
            matches!(err, Some(JsonCallError::Undefined { .. })),
            "{err:?}"
        );
        let err = call("add", "[2, ").err().map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("M.add") && e.contains("not JSON")),
            "{err:?}"
        );
        for wrong in [r#"["2", 3]"#, "[2]", "{}", "7"] {
            let err = call("add", wrong).err();
            assert!(
                matches!(&err, Some(JsonCallError::BadArgs { function, .. }) if function == "add"),
                "{wrong}: {err:?}"
            );
        }
        let err = call("map", "[]").unwrap().await;
        assert!(
            matches!(err, Err(JsonCallError::BadResult { .. })),
            "{err:?}"
        );
    }

    use crate::codec::props::{mutate, mutations, run_reaching};
    use proptest::prelude::*;

    type Text = (String, u64);
    type Blob = (Vec<u8>, Option<String>, bool);
    type List = (u32, Vec<String>);

    /// Arguments of one of three registered functions, valid for it.
    #[derive(Debug, Clone, PartialEq)]
    enum Call {
        Text(Text),
        Blob(Blob),
        List(List),
    }

    fn arb_call() -> impl Strategy<Value = Call> {
        prop_oneof![
            (".{0,20}", any::<u64>()).prop_map(Call::Text),
            (
                proptest::collection::vec(any::<u8>(), 0..64),
                proptest::option::of(".{0,8}"),
                any::<bool>()
            )
                .prop_map(Call::Blob),
            (any::<u32>(), proptest::collection::vec(".{0,6}", 0..6)).prop_map(Call::List),
        ]
    }

    /// Each function gives its arguments back, so a decode is checked end to end.
    fn table() -> FunctionTable<()> {
        let t = FunctionTable::<()>::default();
        t.register("M", "text", |(), a: Text| async move { a });
        t.register("M", "blob", |(), a: Blob| async move { a });
        t.register("M", "list", |(), a: List| async move { a });
        t
    }

    fn encoded(call: &Call) -> (&'static str, Vec<u8>) {
        match call {
            Call::Text(a) => ("text", codec::encode(a).unwrap()),
            Call::Blob(a) => ("blob", codec::encode(a).unwrap()),
            Call::List(a) => ("list", codec::encode(a).unwrap()),
        }
    }

    /// Encodes and decodes `call` again.
    fn redecode(call: &Call) -> Result<Call, CodecError> {
        let bytes = encoded(call).1;
        match call {
            Call::Text(_) => codec::decode(&bytes).map(Call::Text),
            Call::Blob(_) => codec::decode(&bytes).map(Call::Blob),
            Call::List(_) => codec::decode(&bytes).map(Call::List),
        }
    }

    /// Arguments from another node (`Args::Bytes`, what `TaskMsg::Spawn` carries): valid
    /// encodings of the registered function's argument type, mutated. Every case reaches the
    /// argument decoder (the function is found); the decoder answers the function's future or
    /// `BadArgs`, never panics, and unmutated arguments arrive as they were sent. A length
    /// claimed in the bytes (60 MiB, `u32::MAX`, `u64::MAX`) is refused without allocating it.
    #[test]
    fn remote_arguments_reach_the_argument_decoder() {
        let reg = table();
        let decoded = std::sync::atomic::AtomicUsize::new(0);
        run_reaching(
            "function arguments (Args::Bytes)",
            "the argument decoder",
            512,
            100,
            (arb_call(), mutations(3)),
            |(call, muts)| {
                let (f, valid) = encoded(&call);
                let bytes = mutate(valid.clone(), 0, &muts);
                let got = reg.prepare((), "M", f, Args::Bytes(bytes.clone()));
                let reached = match got {
                    Ok(fut) => {
                        decoded.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let out = futures::executor::block_on(fut);
                        let back = match call {
                            Call::Text(_) => Call::Text(out.into_typed::<Text>().unwrap()),
                            Call::Blob(_) => Call::Blob(out.into_typed::<Blob>().unwrap()),
                            Call::List(_) => Call::List(out.into_typed::<List>().unwrap()),
                        };
                        if bytes == valid {
                            prop_assert_eq!(back, call);
                        } else {
                            // What decoded from mutated bytes round-trips.
                            prop_assert_eq!(redecode(&back), Ok(back.clone()));
                        }
                        true
                    }
                    Err(TaskError::BadArgs { .. }) => {
                        prop_assert!(bytes != valid, "valid arguments were refused");
                        true
                    }
                    Err(e) => return Err(TestCaseError::fail(format!("unexpected {e:?}"))),
                };
                Ok(reached)
            },
        );
        eprintln!(
            "function arguments (Args::Bytes): {} of 512 cases decoded, the rest BadArgs",
            decoded.into_inner()
        );
    }

    proptest! {
        /// A value encoded on another node (`Value::encoded`, how a remote task's result
        /// arrives) taken as its type is the identity; mutated bytes are an error or a value
        /// that round-trips.
        #[test]
        fn encoded_values_round_trip(call in arb_call(), muts in mutations(2)) {
            let (_, valid) = encoded(&call);
            let bytes = mutate(valid.clone(), 0, &muts);
            let back = match &call {
                Call::Text(_) => Value::encoded(bytes.clone()).into_typed::<Text>().map(Call::Text),
                Call::Blob(_) => Value::encoded(bytes.clone()).into_typed::<Blob>().map(Call::Blob),
                Call::List(_) => Value::encoded(bytes.clone()).into_typed::<List>().map(Call::List),
            };
            if bytes == valid {
                prop_assert_eq!(back, Ok(call));
            } else if let Ok(v) = back {
                prop_assert_eq!(redecode(&v), Ok(v));
            }
        }
    }
}
