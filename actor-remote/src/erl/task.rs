//! `Task.Supervisor` calls from a BEAM node into this node's task supervisors:
//! `Task.Supervisor.async({Chat.TaskSupervisor, :"rust@localhost"}, Chat, :receive_message, ["hi"])`
//! runs the registered Rust function `Chat.receive_message` under the nodus
//! [`TaskSupervisor`](actor_core::TaskSupervisor) registered as `Chat.TaskSupervisor`.
//!
//! Elixir's `Task.Supervisor` is a `DynamicSupervisor`: the caller `gen_server:call`s it with
//! `{start_task, Args, Restart, Shutdown}`, the child is `Task.Supervised`, and the hand-off
//! after the start depends on the Elixir version (all of these are accepted):
//!
//! | Elixir | `Args` | then the owner sends | the task replies to |
//! | --- | --- | --- | --- |
//! | 1.13 and later (`async`) | `[Owner, monitor]` | `{OwnerPid, Ref, ReplyTo, Callers, {M, F, A}}` | `ReplyTo` (a pid, or an alias reference: `ALIAS_SEND`) |
//! | 1.9 to 1.12 (`async`) | `[Owner, Callers, monitor, {M, F, A}]` | `{OwnerPid, Ref}` | `OwnerPid` |
//! | 1.6 to 1.8 (`async`) | `[OwnerPid, monitor, Info, {M, F, A}]` | `{OwnerPid, Ref}` | `OwnerPid` |
//! | any (`start_child`) | `[Owner, Callers, {M, F, A}]` | nothing | nobody |
//!
//! (`Owner` is `{Node, NameOrPid, Pid}`.) This node answers the call with `{ok, Pid}`, a pid
//! of its own that stands for the task: links and monitors the owner sets on it are kept,
//! the task starts when the owner's hand-off arrives (or exits `timeout` after 5 s without it,
//! as `Task.Supervised` does), and when it ends every link gets an exit signal and every
//! monitor a `DOWN` with the task's reason:
//!
//! | the function | the reply | the exit reason (links, monitors) |
//! | --- | --- | --- |
//! | answers `v` | `{Ref, v}` (`v` through JSON, see [`super::term`]) | `normal` |
//! | is not registered | none | `{undef, [{M, F, A, []}]}` |
//! | refuses the arguments | none | `{badarg, [{M, F, A, []}]}` |
//! | panics, or the task fails | none | `{nodus_task_failed, Why}` (`Why` a binary) |
//!
//! So `Task.await/2` returns `v`, or exits with that reason (a non-trapping owner is killed
//! by the link first, as with an Elixir task); when the connection goes, the BEAM side sees
//! `noconnection`, and the task here is stopped. A linked owner that exits stops the task
//! (its `Task` handle is dropped). A module name `Elixir.Chat` is looked up as `Chat`, a
//! supervisor `Elixir.Chat.TaskSupervisor` as `Chat.TaskSupervisor`; a name that is no
//! task supervisor here is `noproc` for the caller.

use std::sync::Arc;
use std::time::Duration;

use actor_core::TaskSupervisor;
use eetf::Term;
use erl_dist::message::Message;
use erl_dist::term::PidOrAtom;
use tokio::sync::mpsc;

use super::erpc::Failure;
use super::procs::{Proc, Signal};
use super::term::atom;
use super::Shared;

/// How long a started task waits for its owner's hand-off (`Task.Supervised`'s
/// `@ref_timeout`).
const HAND_OFF: Duration = Duration::from_secs(5);

/// A name as this node's registry holds it: an Elixir alias `Elixir.Chat.TaskSupervisor`
/// is `Chat.TaskSupervisor`.
pub(crate) fn local_name(name: &str) -> &str {
    name.strip_prefix("Elixir.").unwrap_or(name)
}

/// The task supervisor of this node a BEAM process names `name`, if there is one.
pub(crate) fn supervisor(shared: &Shared, name: &str) -> Option<String> {
    let local = local_name(name);
    TaskSupervisor::whereis(&shared.system, local).map(|_| local.to_string())
}

/// A `gen_server:call` to a task supervisor of this node.
pub(crate) struct StartCall {
    /// The supervisor's name here.
    pub(crate) supervisor: String,
    /// The name as the caller said it.
    pub(crate) name: String,
    pub(crate) caller: eetf::Pid,
    pub(crate) tag: Term,
    /// The caller's monitor of the name.
    pub(crate) monitor: Option<eetf::Reference>,
}

fn tuple(elements: Vec<Term>) -> Term {
    Term::Tuple(eetf::Tuple::from(elements))
}

/// How the task learns what to run and where its result goes.
enum HandOff {
    /// Elixir 1.13+: `{OwnerPid, Ref, ReplyTo, Callers, MFA}`.
    Mfa,
    /// Elixir 1.6-1.12: the MFA came with the start; `{OwnerPid, Ref}` follows.
    Ref(Mfa),
    /// `start_child`: run at once, reply to nobody.
    None(Mfa),
}

/// `{M, F, A}`.
#[derive(Clone)]
struct Mfa {
    module: String,
    function: String,
    args: Vec<Term>,
}

fn mfa(term: &Term) -> Option<Mfa> {
    let Term::Tuple(t) = term else { return None };
    match t.elements.as_slice() {
        [Term::Atom(m), Term::Atom(f), args] => Some(Mfa {
            module: m.name.clone(),
            function: f.name.clone(),
            args: list(args)?,
        }),
        _ => None,
    }
}

fn list(term: &Term) -> Option<Vec<Term>> {
    match term {
        Term::List(l) => Some(l.elements.clone()),
        // A list of small integers travels as a byte list.
        Term::ByteList(b) => Some(
            b.bytes
                .iter()
                .map(|&x| Term::from(eetf::FixInteger::from(i32::from(x))))
                .collect(),
        ),
        _ => None,
    }
}

/// The owner's pid: `{Node, NameOrPid, Pid}` or a bare pid.
fn owner_pid(term: &Term) -> Option<eetf::Pid> {
    match term {
        Term::Pid(p) => Some(p.clone()),
        Term::Tuple(t) => match t.elements.as_slice() {
            [_, _, Term::Pid(p)] => Some(p.clone()),
            _ => None,
        },
        _ => None,
    }
}

fn is_atom(term: &Term, name: &str) -> bool {
    matches!(term, Term::Atom(a) if a.name == name)
}

/// `{start_task, Args, Restart, Shutdown}`: the owner and the hand-off.
fn parse_start(request: &Term) -> Option<(eetf::Pid, HandOff)> {
    let Term::Tuple(t) = request else { return None };
    let [tag, args, ..] = t.elements.as_slice() else {
        return None;
    };
    if !is_atom(tag, "start_task") {
        return None;
    }
    let args = list(args)?;
    match args.as_slice() {
        [owner, monitor] if is_atom(monitor, "monitor") => Some((owner_pid(owner)?, HandOff::Mfa)),
        [owner, _callers, monitor, m] if is_atom(monitor, "monitor") => {
            Some((owner_pid(owner)?, HandOff::Ref(mfa(m)?)))
        }
        [owner, monitor, _info, m] if is_atom(monitor, "monitor") => {
            Some((owner_pid(owner)?, HandOff::Ref(mfa(m)?)))
        }
        [owner, _callers, m] => Some((owner_pid(owner)?, HandOff::None(mfa(m)?))),
        _ => None,
    }
}

/// Answers a start call to a task supervisor of this node, and runs the task.
pub(crate) fn on_start(
    shared: &Arc<Shared>,
    peer: &str,
    tx: &mpsc::Sender<Message>,
    call: StartCall,
    request: Term,
) {
    let Some((owner, hand_off)) = parse_start(&request) else {
        tracing::warn!(
            peer,
            name = call.name,
            "a call to a task supervisor that is not a Task.Supervisor start: {request}"
        );
        // The caller exits, as a gen_server that does not understand the call would make it.
        if let Some(reference) = call.monitor {
            let reason = tuple(vec![atom("nodus_bad_request"), request]);
            let to = PidOrAtom::Atom(eetf::Atom::from(call.name.as_str()));
            super::conn::send_msg(
                tx,
                Message::monitor_p_exit(to, call.caller, reference, reason),
            );
        }
        return;
    };
    let proc = Proc::new(shared, peer);
    let ok = tuple(vec![atom("ok"), Term::Pid(proc.pid.clone())]);
    super::conn::send_msg(tx, Message::send(call.caller, tuple(vec![call.tag, ok])));
    let task = Running {
        shared: Arc::clone(shared),
        tx: tx.clone(),
        proc,
        links: Vec::new(),
        monitors: Vec::new(),
    };
    tokio::spawn(task.run(call.supervisor, owner, hand_off));
}

/// A task run for a BEAM owner, as `Task.Supervised` runs.
struct Running {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Message>,
    proc: Proc,
    links: Vec<eetf::Pid>,
    monitors: Vec<(eetf::Pid, eetf::Reference)>,
}

/// Why the task ended without running to its end.
enum Stop {
    /// The exit reason for its links and monitors.
    Exit(Term),
    /// The connection went: nobody is left to tell.
    Gone,
}

impl Running {
    /// Applies a link or monitor signal; `Some` when the signal ends the task.
    fn on_signal(&mut self, signal: Signal) -> Option<Stop> {
        match signal {
            Signal::Link(from) => self.links.push(from),
            Signal::Unlink(from) => self.links.retain(|p| *p != from),
            Signal::Monitor(from, reference) => self.monitors.push((from, reference)),
            Signal::Demonitor(reference) => self.monitors.retain(|(_, r)| *r != reference),
            Signal::Exit(from, reason) => {
                // An exit signal from a linked process: `normal` is ignored, any other stops
                // the task with that reason (it does not trap exits).
                if is_atom(&reason, "normal") {
                    return None;
                }
                self.links.retain(|p| *p != from);
                return Some(Stop::Exit(reason));
            }
            Signal::NodeDown => return Some(Stop::Gone),
            Signal::Message(_) | Signal::Down(..) => {}
        }
        None
    }

    async fn run(mut self, supervisor: String, owner: eetf::Pid, hand_off: HandOff) {
        let (mfa, reply) = match hand_off {
            HandOff::None(mfa) => (mfa, None),
            HandOff::Ref(mfa) => match self.wait_hand_off(&owner).await {
                Ok(Term::Tuple(t)) => match t.elements.as_slice() {
                    [_, reference] => (mfa, Some((owner.clone(), reference.clone(), None))),
                    _ => return self.exit(atom("badarg")),
                },
                Ok(_) => return self.exit(atom("badarg")),
                Err(stop) => return self.stop(stop),
            },
            HandOff::Mfa => match self.wait_hand_off(&owner).await {
                Ok(Term::Tuple(t)) => match t.elements.as_slice() {
                    [_, reference, reply_to, _callers, m] => match mfa(m) {
                        Some(mfa) => (
                            mfa,
                            Some((owner.clone(), reference.clone(), Some(reply_to.clone()))),
                        ),
                        None => return self.exit(tuple(vec![atom("undef"), m.clone()])),
                    },
                    _ => return self.exit(atom("badarg")),
                },
                Ok(_) => return self.exit(atom("badarg")),
                Err(stop) => return self.stop(stop),
            },
        };
        let shared = Arc::clone(&self.shared);
        let work = super::erpc::run(&shared, &supervisor, &mfa.module, &mfa.function, &mfa.args);
        tokio::pin!(work);
        let outcome = loop {
            tokio::select! {
                outcome = &mut work => break outcome,
                signal = self.proc.rx.recv() => {
                    let Some(signal) = signal else { break Err(Failure::Failed("internal: the task's mailbox closed".into())) };
                    if let Some(stop) = self.on_signal(signal) {
                        // Dropping `work` drops its linked Task handle: the task is stopped.
                        return self.stop(stop);
                    }
                }
            }
        };
        let stack = || {
            Term::List(eetf::List::from(vec![tuple(vec![
                atom(&mfa.module),
                atom(&mfa.function),
                Term::List(eetf::List::from(mfa.args.clone())),
                Term::List(eetf::List::nil()),
            ])]))
        };
        match outcome {
            Ok(value) => {
                if let Some((owner, reference, reply_to)) = reply {
                    let message = tuple(vec![reference, value]);
                    let out = match reply_to {
                        Some(Term::Reference(alias)) => {
                            Message::alias_send(self.proc.pid.clone(), *alias, message)
                        }
                        Some(Term::Pid(pid)) => Message::send(pid, message),
                        _ => Message::send(owner, message),
                    };
                    super::conn::send_msg(&self.tx, out);
                }
                self.exit(atom("normal"));
            }
            Err(Failure::Undefined) => self.exit(tuple(vec![atom("undef"), stack()])),
            Err(Failure::BadArgs(why)) => {
                tracing::info!(
                    module = mfa.module,
                    function = mfa.function,
                    "a task from a BEAM node with bad arguments: {why}"
                );
                self.exit(tuple(vec![atom("badarg"), stack()]));
            }
            Err(Failure::Failed(why)) => {
                tracing::warn!(
                    module = mfa.module,
                    function = mfa.function,
                    "a task from a BEAM node failed: {why}"
                );
                self.exit(tuple(vec![
                    atom("nodus_task_failed"),
                    Term::Binary(why.as_bytes().into()),
                ]));
            }
        }
    }

    /// Waits for the owner's hand-off message, at most [`HAND_OFF`].
    async fn wait_hand_off(&mut self, owner: &eetf::Pid) -> Result<Term, Stop> {
        let until = tokio::time::Instant::now() + HAND_OFF;
        loop {
            let signal = match tokio::time::timeout_at(until, self.proc.rx.recv()).await {
                Err(_) => return Err(Stop::Exit(atom("timeout"))),
                Ok(None) => return Err(Stop::Gone),
                Ok(Some(signal)) => signal,
            };
            match signal {
                Signal::Message(Term::Tuple(t)) if matches!(t.elements.first(), Some(Term::Pid(p)) if p == owner) =>
                {
                    return Ok(Term::Tuple(t));
                }
                Signal::Message(other) => {
                    tracing::debug!("a task waiting for its owner dropped a message: {other}");
                }
                other => {
                    if let Some(stop) = self.on_signal(other) {
                        return Err(stop);
                    }
                }
            }
        }
    }

    fn stop(self, stop: Stop) {
        match stop {
            Stop::Exit(reason) => self.exit(reason),
            Stop::Gone => {}
        }
    }

    /// Ends the task with `reason`: an exit signal to each link, a `DOWN` to each monitor.
    fn exit(self, reason: Term) {
        let me = &self.proc.pid;
        for pid in &self.links {
            super::conn::send_msg(
                &self.tx,
                Message::exit(me.clone(), pid.clone(), reason.clone()),
            );
        }
        for (pid, reference) in &self.monitors {
            super::conn::send_msg(
                &self.tx,
                Message::monitor_p_exit(
                    PidOrAtom::Pid(me.clone()),
                    pid.clone(),
                    reference.clone(),
                    reason.clone(),
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid(id: u32) -> Term {
        Term::Pid(eetf::Pid::new("ex@host", id, 0, 1))
    }

    fn list(items: Vec<Term>) -> Term {
        Term::List(eetf::List::from(items))
    }

    fn start(args: Vec<Term>) -> Term {
        tuple(vec![
            atom("start_task"),
            list(args),
            atom("temporary"),
            atom("nil"),
        ])
    }

    fn chat() -> Term {
        tuple(vec![
            atom("Elixir.Chat"),
            atom("receive_message"),
            list(vec![Term::Binary(eetf::Binary::from(&b"hi"[..]))]),
        ])
    }

    /// Every Elixir version's start shape gives the owner and the right hand-off.
    #[test]
    fn each_elixir_start_shape_is_understood() {
        let owner = tuple(vec![atom("ex@host"), pid(7), pid(7)]);
        let callers = list(vec![pid(7)]);
        let want = |t: &Term| owner_pid(t);

        let (o, h) = parse_start(&start(vec![owner.clone(), atom("monitor")])).unwrap();
        assert_eq!(Some(o), want(&pid(7)));
        assert!(matches!(h, HandOff::Mfa), "1.13+");

        let shape = vec![owner.clone(), callers.clone(), atom("monitor"), chat()];
        let (o, h) = parse_start(&start(shape)).unwrap();
        assert_eq!(Some(o), want(&pid(7)));
        assert!(
            matches!(h, HandOff::Ref(ref m) if m.function == "receive_message"),
            "1.9-1.12"
        );

        let info = tuple(vec![atom("ex@host"), pid(7)]);
        let (o, h) = parse_start(&start(vec![pid(7), atom("monitor"), info, chat()])).unwrap();
        assert_eq!(Some(o), want(&pid(7)));
        assert!(
            matches!(h, HandOff::Ref(ref m) if m.module == "Elixir.Chat"),
            "1.6-1.8"
        );

        let (_, h) = parse_start(&start(vec![owner, callers, chat()])).unwrap();
        assert!(
            matches!(h, HandOff::None(ref m) if m.args.len() == 1),
            "start_child"
        );

        // Anything else is not a start: the caller is told, nothing runs.
        assert!(parse_start(&atom("which_children")).is_none());
        assert!(parse_start(&start(vec![atom("nobody"), atom("monitor")])).is_none());
        assert!(parse_start(&tuple(vec![atom("start_child"), list(vec![])])).is_none());
    }

    #[test]
    fn elixir_names_are_looked_up_without_their_prefix() {
        assert_eq!(
            local_name("Elixir.Chat.TaskSupervisor"),
            "Chat.TaskSupervisor"
        );
        assert_eq!(local_name("counter"), "counter");
    }
}
