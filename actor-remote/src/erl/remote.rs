//! Calls from this node to BEAM processes: `gen_server:call` to a registered name, and tasks
//! under an Elixir `Task.Supervisor`, each made by one of this node's BEAM-visible pids
//! (the `procs` module).
//!
//! Both are reached with the calls a nodus node takes, once the BEAM node is connected
//! ([`Erlang::connect`](super::Erlang::connect), or it connected here):
//!
//! - [`TaskSupervisor::async_on`](actor_core::TaskSupervisor::async_on) with
//!   `("Chat.TaskSupervisor", "elixir@host")` runs `Chat.receive_message` there: the
//!   arguments go as terms through JSON (a tuple `("hi",)` is the argument list `["hi"]`,
//!   `()` no arguments, any other value one argument; strings are binaries), the result
//!   comes back through JSON into the awaited type.
//! - [`System::call`](actor_core::System::call) with a [`GenCall`] message calls a named
//!   GenServer there (`{'$gen_call', {Pid, Ref}, Request}`, answered `{Ref, Reply}`), and
//!   [`System::cast`](actor_core::System::cast) with a [`GenCast`] casts to it
//!   (`{'$gen_cast', Request}`). [`Erlang::call`](super::Erlang::call) does the same with
//!   [`IntoTerm`]/[`FromTerm`] types directly.
//!
//! Names: an Elixir alias (a name that starts with an upper-case letter, `Chat.TaskSupervisor`)
//! is the atom `Elixir.Chat.TaskSupervisor`, as Elixir writes it; any other name is the atom
//! as written (`counter`, `lists`).
//!
//! | on the BEAM node | `async_on` then `.await` | a call |
//! | --- | --- | --- |
//! | the value `v` | `Ok(v)` (through JSON) | `Ok(v)` |
//! | no such process | [`TaskError::NoProc`] | `noproc`: [`ErlCallError::NoProc`] |
//! | the function is undefined | [`TaskError::Undefined`] | - |
//! | an exception | [`TaskError::Panicked`] (the exception's message) | [`ErlCallError::Exit`] |
//! | another exit | [`TaskError::Exited`] (the reason as Erlang prints it) | [`ErlCallError::Exit`] |
//! | the connection goes | [`TaskError::NoConnection`] | [`ErlCallError::NodeDown`] |
//! | not connected | [`TaskError::NoConnection`] at once | [`ErlCallError::NoConnection`] at once |
//!
//! Every wait is bounded: the start by the caller's start timeout, the result by the
//! [`Task`](actor_core::Task)'s await, a call by its timeout (after which the monitor is
//! removed and a late reply dropped).

use std::sync::Arc;
use std::time::Duration;

use actor_core::transport::{Cancel, RemoteTask, RemoteTaskRequest};
use actor_core::{NodeName, TaskError, Value};
use eetf::Term;
use erl_dist::message::Message;
use erl_dist::term::PidOrAtom;
use ractor::RpcReplyPort;
use tokio::sync::{mpsc, oneshot};

use super::procs::{Proc, Signal};
use super::term::{atom, json_to_term, term_to_json, FromTerm, IntoTerm, TermError};
use super::Shared;

/// A call to a BEAM process that gave no reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErlCallError {
    /// The node is not a connected BEAM node; nothing was sent.
    #[error("{node} is not a connected BEAM node; connect to it first (Erlang::connect) or check its name")]
    NoConnection {
        /// The node asked.
        node: String,
    },
    /// No process is registered under that name there (`noproc`).
    #[error("no process {name} on {node} (noproc); start it there first")]
    NoProc {
        /// The name, as the BEAM node spells it.
        name: String,
        /// The node asked.
        node: String,
    },
    /// The process exited before it replied (the caller of `gen_server:call` would exit).
    #[error("{name} on {node} exited with {reason} before replying; see the BEAM node's log")]
    Exit {
        /// The name.
        name: String,
        /// The node asked.
        node: String,
        /// The exit reason, as Erlang prints it.
        reason: String,
    },
    /// The connection went before the reply: the call may have been handled there.
    #[error("the connection with {node} went before the reply (noconnection): the call may have been handled there; retry only if handling it twice is harmless")]
    NodeDown {
        /// The node asked.
        node: String,
    },
    /// No reply within the timeout; a late reply is dropped.
    #[error(
        "no reply from {name} on {node} within {timeout:?}; raise the timeout if it is just slow"
    )]
    Timeout {
        /// The name.
        name: String,
        /// The node asked.
        node: String,
        /// The timeout that passed.
        timeout: Duration,
    },
    /// The reply does not map to the type asked for.
    #[error("the reply does not map: {0}; ask for the type the process answers")]
    BadReply(#[from] TermError),
}

/// A registered name as the BEAM spells it: an Elixir alias gets its `Elixir.` prefix.
pub(crate) fn beam_name(name: &str) -> String {
    if name.starts_with(|c: char| c.is_ascii_uppercase()) && !name.starts_with("Elixir.") {
        format!("Elixir.{name}")
    } else {
        name.to_string()
    }
}

fn tuple(elements: Vec<Term>) -> Term {
    Term::Tuple(eetf::Tuple::from(elements))
}

fn is_atom(term: &Term, name: &str) -> bool {
    matches!(term, Term::Atom(a) if a.name == name)
}

/// `gen_server:call({name, peer}, request)` from `proc`, waiting at most `timeout`.
async fn gen_call_from(
    proc: &mut Proc,
    tx: &mpsc::Sender<Message>,
    peer: &str,
    name: &str,
    request: Term,
    timeout: Duration,
) -> Result<Term, ErlCallError> {
    let me = proc.pid.clone();
    let mref = proc.make_ref();
    let to = PidOrAtom::Atom(eetf::Atom::from(name));
    super::conn::send_msg(tx, Message::monitor_p(me.clone(), to.clone(), mref.clone()));
    let from = tuple(vec![
        Term::Pid(me.clone()),
        Term::Reference(Box::new(mref.clone())),
    ]);
    let call = tuple(vec![atom("$gen_call"), from, request]);
    super::conn::send_msg(
        tx,
        Message::reg_send(me.clone(), eetf::Atom::from(name), call),
    );
    let (name_s, node) = (name.to_string(), peer.to_string());
    let until = tokio::time::Instant::now() + timeout;
    loop {
        let signal = match tokio::time::timeout_at(until, proc.rx.recv()).await {
            Err(_) => {
                super::conn::send_msg(tx, Message::demonitor_p(me, to, mref));
                return Err(ErlCallError::Timeout {
                    name: name_s,
                    node,
                    timeout,
                });
            }
            Ok(None) | Ok(Some(Signal::NodeDown)) => return Err(ErlCallError::NodeDown { node }),
            Ok(Some(signal)) => signal,
        };
        match signal {
            Signal::Message(Term::Tuple(t)) => match t.elements.as_slice() {
                [Term::Reference(r), reply] if **r == mref => {
                    super::conn::send_msg(tx, Message::demonitor_p(me, to, mref));
                    return Ok(reply.clone());
                }
                _ => tracing::debug!(peer, "a caller dropped a message that is not its reply"),
            },
            Signal::Down(r, reason) if r == mref => {
                return Err(if is_atom(&reason, "noproc") {
                    ErlCallError::NoProc { name: name_s, node }
                } else if is_atom(&reason, "noconnection") {
                    ErlCallError::NodeDown { node }
                } else {
                    ErlCallError::Exit {
                        name: name_s,
                        node,
                        reason: reason.to_string(),
                    }
                });
            }
            _ => {} // links and monitors on a caller are not kept: it ends with the call
        }
    }
}

/// `gen_server:call({name, peer}, request)` from a new pid of this node.
pub(crate) async fn gen_call(
    shared: &Arc<Shared>,
    peer: &str,
    name: &str,
    request: Term,
    timeout: Duration,
) -> Result<Term, ErlCallError> {
    let tx = shared
        .conn(peer)
        .ok_or_else(|| ErlCallError::NoConnection {
            node: peer.to_string(),
        })?;
    let mut proc = Proc::new(shared, peer);
    gen_call_from(&mut proc, &tx, peer, &beam_name(name), request, timeout).await
}

/// `gen_server:cast({name, peer}, request)`: false if `peer` is not connected.
pub(crate) fn gen_cast(shared: &Arc<Shared>, peer: &str, name: &str, request: Term) -> bool {
    let Some(tx) = shared.conn(peer) else {
        return false;
    };
    let proc = Proc::new(shared, peer);
    let message = tuple(vec![atom("$gen_cast"), request]);
    let name = eetf::Atom::from(beam_name(name).as_str());
    super::conn::send_msg(&tx, Message::reg_send(proc.pid.clone(), name, message));
    true
}

/// How an Elixir task's exit reason reads as a [`TaskError`].
fn task_error(node: &NodeName, module: &str, function: &str, reason: &Term) -> TaskError {
    if is_atom(reason, "noconnection") {
        return TaskError::NoConnection { node: node.clone() };
    }
    if let Term::Tuple(t) = reason {
        if let [what, Term::List(_)] = t.elements.as_slice() {
            if is_atom(what, "undef") {
                return TaskError::Undefined {
                    module: module.to_string(),
                    function: function.to_string(),
                };
            }
            // `{Exception, Stacktrace}`: an Elixir exception (a struct with a message).
            if let Term::Map(m) = what {
                let field =
                    |key: &str| m.map.iter().find_map(|(k, v)| is_atom(k, key).then_some(v));
                if let (Some(Term::Atom(name)), Some(Term::Binary(text))) =
                    (field("__struct__"), field("message"))
                {
                    let name = name.name.strip_prefix("Elixir.").unwrap_or(&name.name);
                    return TaskError::Panicked {
                        message: format!("{name}: {}", String::from_utf8_lossy(&text.bytes)),
                    };
                }
            }
            return TaskError::Panicked {
                message: what.to_string(),
            };
        }
    }
    TaskError::Exited {
        // An atom as nodus names its own reasons (`killed`, `shutdown`), anything else as
        // eetf prints it.
        reason: match reason {
            Term::Atom(a) => a.name.clone(),
            other => other.to_string(),
        },
    }
}

/// Starts `request` (a task by name, its arguments as JSON) under the `Task.Supervisor`
/// `request.supervisor` of the BEAM node `node`, as Elixir 1.13+'s `Task.Supervisor.async`
/// does: a start call, then a monitor of the task and the hand-off
/// `{Owner, Ref, ReplyTo, Callers, {M, F, A}}`; the result is `{Ref, Value}`, or the
/// monitor's `DOWN`.
pub(crate) async fn start_task(
    shared: &Arc<Shared>,
    node: NodeName,
    request: RemoteTaskRequest,
) -> Result<RemoteTask, TaskError> {
    let peer = node.to_string();
    let no_connection = || TaskError::NoConnection { node: node.clone() };
    let tx = shared.conn(&peer).ok_or_else(no_connection)?;
    let Some(name) = request.supervisor.name().map(beam_name) else {
        return Err(TaskError::NoProc {
            name: request.supervisor.to_string(),
            node,
        });
    };
    let args = match request.json_args {
        Some(serde_json::Value::Array(args)) => args.into_iter().map(json_to_term).collect(),
        // `()`: no arguments.
        Some(serde_json::Value::Null) => Vec::new(),
        Some(one) => vec![json_to_term(one)],
        None => {
            return Err(TaskError::BadArgs {
                reason: "a task on a BEAM node takes its arguments as a serde value (async_on, async_nolink_on), not as encoded bytes".into(),
            })
        }
    };
    let mut proc = Proc::new(shared, &peer);
    let me = Term::Pid(proc.pid.clone());
    let owner = tuple(vec![atom(&shared.name), me.clone(), me.clone()]);
    let start = tuple(vec![
        atom("start_task"),
        Term::List(eetf::List::from(vec![owner, atom("monitor")])),
        atom("temporary"),
        atom("nil"),
    ]);
    let reply = gen_call_from(&mut proc, &tx, &peer, &name, start, request.timeout).await;
    let task_pid = match reply {
        Ok(Term::Tuple(t)) => match t.elements.as_slice() {
            [ok, Term::Pid(pid)] if is_atom(ok, "ok") => pid.clone(),
            [error, why] if is_atom(error, "error") && is_atom(why, "max_children") => {
                // Elixir does not say its max_children: 0 stands for "not known".
                return Err(TaskError::MaxChildren {
                    name: name.clone(),
                    max: 0,
                });
            }
            _ => {
                return Err(TaskError::Exited {
                    reason: format!("the supervisor answered {}", Term::Tuple(t)),
                })
            }
        },
        Ok(other) => {
            return Err(TaskError::Exited {
                reason: format!("the supervisor answered {other}"),
            })
        }
        Err(ErlCallError::NoProc { .. }) => {
            return Err(TaskError::NoProc {
                name: name.clone(),
                node,
            })
        }
        Err(ErlCallError::NoConnection { .. }) => return Err(no_connection()),
        Err(ErlCallError::Timeout { .. } | ErlCallError::NodeDown { .. }) => {
            return Err(TaskError::Unconfirmed {
                node,
                why: "no start answer came".into(),
            })
        }
        Err(e) => {
            return Err(TaskError::Exited {
                reason: e.to_string(),
            })
        }
    };
    let mref = proc.make_ref();
    super::conn::send_msg(
        &tx,
        Message::monitor_p(
            proc.pid.clone(),
            PidOrAtom::Pid(task_pid.clone()),
            mref.clone(),
        ),
    );
    let module = beam_name(&request.module);
    let mfa = tuple(vec![
        atom(&module),
        atom(&request.function),
        Term::List(eetf::List::from(args)),
    ]);
    let hand_off = tuple(vec![
        me.clone(),
        Term::Reference(Box::new(mref.clone())),
        me.clone(),
        Term::List(eetf::List::from(vec![me])),
        mfa,
    ]);
    super::conn::send_msg(&tx, Message::send(task_pid.clone(), hand_off));
    let me_pid = proc.pid.clone();
    let (result_tx, result_rx) = oneshot::channel();
    let (module, function) = (request.module.clone(), request.function.clone());
    let wait = tokio::spawn(async move {
        let outcome = loop {
            match proc.rx.recv().await {
                None | Some(Signal::NodeDown) => break Err(TaskError::NoConnection { node }),
                Some(Signal::Message(Term::Tuple(t))) => match t.elements.as_slice() {
                    [Term::Reference(r), value_term] if **r == mref => {
                        let value_term: &Term = value_term;
                        // `ok` is also a `()`, as an Elixir function that only has effects
                        // answers `:ok`.
                        let ok = is_atom(value_term, "ok");
                        let value = move |json| match ok {
                            true => Value::from_json_or(json, serde_json::Value::Null),
                            false => Value::from_json(json),
                        };
                        break term_to_json(value_term).map(value).map_err(|e| {
                            TaskError::BadReturn {
                                reason: e.to_string(),
                            }
                        });
                    }
                    _ => {}
                },
                Some(Signal::Down(r, reason)) if r == mref => {
                    break Err(task_error(&node, &module, &function, &reason));
                }
                Some(_) => {} // the task's monitor of its owner, and its removal
            }
        };
        let _ = result_tx.send(outcome);
    });
    let abort = wait.abort_handle();
    let id = (u64::from(task_pid.id) << 16) | u64::from(task_pid.serial);
    Ok(RemoteTask {
        id,
        result: Some(result_rx),
        cancel: Cancel::new(move || {
            abort.abort();
            // The owner gives up (its handle was dropped): the task is killed, as
            // `Task.shutdown(task, :brutal_kill)` kills it.
            super::conn::send_msg(
                &tx,
                Message::exit2(me_pid.clone(), task_pid.clone(), atom("kill")),
            );
        }),
    })
}

/// A `gen_server:call` request for a process on a BEAM node, as a message that
/// [`System::call`](actor_core::System::call) sends: `request` is the term, the reply
/// comes back as a [`Reply`].
///
/// ```no_run
/// # async fn run(node: actor_remote::Node) -> Result<(), Box<dyn std::error::Error>> {
/// use actor_remote::erl::{Atom, GenCall};
/// use std::time::Duration;
///
/// // GenServer.call({Chat.Server, :"elixir@localhost"}, {:add, 2})
/// let reply = node
///     .call(("Chat.Server", "elixir@localhost"), |port| GenCall::new((Atom("add".into()), 2i64), port), Duration::from_secs(5))
///     .await?;
/// let total: i64 = reply.decode()?;
/// # Ok(()) }
/// ```
pub struct GenCall {
    request: Vec<u8>,
    reply: RpcReplyPort<Reply>,
}

impl std::fmt::Debug for GenCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenCall").finish_non_exhaustive()
    }
}

fn encode_term(term: &Term) -> Vec<u8> {
    let mut bytes = Vec::new();
    // Writing a term into a Vec fails only for terms eetf cannot write (none built here).
    if let Err(e) = term.encode(&mut bytes) {
        tracing::warn!("a term could not be encoded: {e}");
    }
    bytes
}

fn decode_term(bytes: &[u8]) -> Result<Term, TermError> {
    super::check::check_terms(bytes).map_err(|e| TermError {
        expected: "a term in the external term format",
        got: e.to_string(),
    })?;
    Term::decode(bytes).map_err(|e| TermError {
        expected: "a term in the external term format",
        got: e.to_string(),
    })
}

impl GenCall {
    /// The call `request` (any [`IntoTerm`]), answered on `reply`.
    pub fn new(request: impl IntoTerm, reply: RpcReplyPort<Reply>) -> Self {
        GenCall {
            request: encode_term(&request.into_term()),
            reply,
        }
    }

    /// The request term.
    ///
    /// # Errors
    /// [`TermError`] if the bytes are not a term (a nodus peer sent them).
    pub fn request(&self) -> Result<Term, TermError> {
        decode_term(&self.request)
    }

    /// Answers the call (for a nodus actor that takes `GenCall`s).
    pub fn answer(self, reply: impl IntoTerm) {
        let _ = self.reply.send(Reply(encode_term(&reply.into_term())));
    }
}

/// The reply to a [`GenCall`]: a term.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Reply(Vec<u8>);

impl Reply {
    /// The reply term.
    ///
    /// # Errors
    /// [`TermError`] if the bytes are not a term.
    pub fn term(&self) -> Result<Term, TermError> {
        decode_term(&self.0)
    }

    /// The reply as an `R`.
    ///
    /// # Errors
    /// [`TermError`] if it is not one.
    pub fn decode<R: FromTerm>(&self) -> Result<R, TermError> {
        R::from_term(self.term()?)
    }
}

impl actor_core::RemoteMessage for GenCall {
    const NAME: &'static str = "nodus.erlang.GenCall";

    fn to_wire(self) -> Result<actor_core::Wire, actor_core::codec::CodecError> {
        let payload = actor_core::codec::encode(&self.request)?;
        Ok(actor_core::Wire::call(
            payload,
            actor_core::bridge_reply(self.reply),
        ))
    }

    fn from_wire(
        payload: &[u8],
        reply: Option<actor_core::ReplySink>,
    ) -> Result<Self, actor_core::codec::CodecError> {
        let request: Vec<u8> = actor_core::codec::decode(payload)?;
        let reply = reply.ok_or_else(|| actor_core::codec::CodecError::Decode {
            expected: "GenCall",
            reason: "a call without a reply port".into(),
        })?;
        Ok(GenCall {
            request,
            reply: actor_core::reply_port(reply),
        })
    }
}

actor_core::__inventory::submit! { actor_core::LinkedRemoteMessage::of::<GenCall>() }

/// A `gen_server:cast` request for a process on a BEAM node, as a message that
/// [`System::cast`](actor_core::System::cast) sends (`{'$gen_cast', Request}`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct GenCast(Vec<u8>);

impl GenCast {
    /// The cast `request`.
    pub fn new(request: impl IntoTerm) -> Self {
        GenCast(encode_term(&request.into_term()))
    }

    /// The request term.
    ///
    /// # Errors
    /// [`TermError`] if the bytes are not a term.
    pub fn request(&self) -> Result<Term, TermError> {
        decode_term(&self.0)
    }
}

actor_core::serde_message!(GenCast = "nodus.erlang.GenCast");

/// The name and the request term of a [`GenCall`] or [`GenCast`] payload from
/// [`System::call`](actor_core::System::call) / `cast`: the codec's bytes of the term's bytes.
pub(crate) fn request_of(payload: &[u8]) -> Result<Term, TermError> {
    let bytes: Vec<u8> = actor_core::codec::decode(payload).map_err(|e| TermError {
        expected: "a GenCall or GenCast",
        got: e.to_string(),
    })?;
    decode_term(&bytes)
}

/// The codec's bytes of a [`Reply`] with `term`, as the caller's reply bridge decodes them.
pub(crate) fn reply_bytes(term: &Term) -> Result<Vec<u8>, actor_core::codec::CodecError> {
    actor_core::codec::encode(&Reply(encode_term(term)))
}

/// [`System::call`](actor_core::System::call) to a BEAM node: a [`GenCall`] becomes a
/// `gen_server:call` of the destination's name.
pub(crate) async fn call_for_system(
    shared: &Arc<Shared>,
    node: NodeName,
    message: actor_core::transport::RemoteSend,
    timeout: Duration,
) -> Result<Vec<u8>, actor_core::CallError> {
    use actor_core::{CallError, SendErrorKind};
    let dest = message.target;
    let refused = |reason: String| {
        CallError::Send(SendErrorKind::Refused {
            node: node.clone(),
            reason,
        })
    };
    if message.name != <GenCall as actor_core::RemoteMessage>::NAME {
        return Err(refused(format!(
            "{node} is a BEAM node: call it with a GenCall message, not {:?}",
            message.name
        )));
    }
    let Some(name) = dest.name().map(str::to_string) else {
        return Err(refused(format!(
            "{node} is a BEAM node: call a registered name there, not {dest}"
        )));
    };
    let request = request_of(&message.payload).map_err(|e| refused(e.to_string()))?;
    match gen_call(shared, node.as_str(), &name, request, timeout).await {
        Ok(reply) => reply_bytes(&reply).map_err(|e| refused(e.to_string())),
        Err(ErlCallError::NoConnection { .. }) => {
            Err(CallError::Send(SendErrorKind::NoConnection { node }))
        }
        Err(ErlCallError::NoProc { .. }) => {
            Err(CallError::Send(SendErrorKind::NoProc { dest, node }))
        }
        Err(ErlCallError::Timeout { .. }) => Err(CallError::Timeout { dest, timeout }),
        Err(ErlCallError::NodeDown { .. }) => Err(CallError::Unconfirmed { dest, node }),
        Err(e) => {
            tracing::info!(peer = %node, "a call to a BEAM process got no reply: {e}");
            Err(CallError::NoReply { dest })
        }
    }
}

/// [`System::cast`](actor_core::System::cast) to a BEAM node: a [`GenCast`] becomes a
/// `gen_server:cast` of the destination's name.
pub(crate) fn cast_for_system(
    shared: &Arc<Shared>,
    node: NodeName,
    message: actor_core::transport::RemoteSend,
) -> Result<(), actor_core::SendErrorKind> {
    let refused = |reason: String| actor_core::SendErrorKind::Refused {
        node: node.clone(),
        reason,
    };
    if message.name != <GenCast as actor_core::RemoteMessage>::NAME {
        return Err(refused(format!(
            "{node} is a BEAM node: cast to it with a GenCast message, not {:?}",
            message.name
        )));
    }
    let Some(name) = message.target.name().map(str::to_string) else {
        return Err(refused(format!(
            "{node} is a BEAM node: cast to a registered name there, not {}",
            message.target
        )));
    };
    let request = request_of(&message.payload).map_err(|e| refused(e.to_string()))?;
    if gen_cast(shared, node.as_str(), &name, request) {
        Ok(())
    } else {
        Err(actor_core::SendErrorKind::NoConnection { node })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::erl::Atom;

    #[test]
    fn elixir_aliases_get_their_prefix() {
        assert_eq!(
            beam_name("Chat.TaskSupervisor"),
            "Elixir.Chat.TaskSupervisor"
        );
        assert_eq!(beam_name("Elixir.Chat"), "Elixir.Chat");
        assert_eq!(beam_name("counter"), "counter");
        assert_eq!(beam_name("lists"), "lists");
    }

    /// An Elixir task's exit reason reads as the TaskError a nodus task would give.
    #[test]
    fn elixir_exit_reasons_read_as_task_errors() {
        let node = NodeName::parse("ex@host").unwrap();
        let stack = Term::List(eetf::List::from(vec![]));
        let undef = tuple(vec![atom("undef"), stack.clone()]);
        assert!(matches!(
            task_error(&node, "Chat", "nope", &undef),
            TaskError::Undefined { .. }
        ));
        let mut map = std::collections::HashMap::new();
        map.insert(atom("__struct__"), atom("Elixir.RuntimeError"));
        map.insert(
            atom("message"),
            Term::Binary(eetf::Binary::from(&b"boom"[..])),
        );
        map.insert(atom("__exception__"), atom("true"));
        let raised = tuple(vec![Term::Map(eetf::Map::from(map)), stack]);
        assert_eq!(
            task_error(&node, "Chat", "boom", &raised),
            TaskError::Panicked {
                message: "RuntimeError: boom".into()
            }
        );
        assert_eq!(
            task_error(&node, "Chat", "f", &atom("noconnection")),
            TaskError::NoConnection { node: node.clone() }
        );
        assert_eq!(
            task_error(&node, "Chat", "f", &atom("killed")),
            TaskError::Exited {
                reason: "killed".into()
            }
        );
    }

    /// A GenCall's request and a Reply survive their encodings.
    #[test]
    fn gen_call_terms_round_trip() {
        let request = (Atom("add".into()), 2i64).into_term();
        let payload = actor_core::codec::encode(&encode_term(&request)).unwrap();
        assert_eq!(request_of(&payload).unwrap(), request);
        let bytes = reply_bytes(&7i64.into_term()).unwrap();
        let reply: Reply = actor_core::codec::decode(&bytes).unwrap();
        assert_eq!(reply.decode::<i64>().unwrap(), 7);
        assert!(request_of(&[1, 2, 3]).is_err());
    }
}
