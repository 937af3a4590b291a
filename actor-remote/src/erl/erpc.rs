//! Remote work from a BEAM node: `erpc:call/4,5` (and `Node.spawn/4`) run registered
//! functions of this node.
//!
//! `erpc:call(Node, M, F, A)` sends a `SPAWN_REQUEST` for `erpc:execute_call(Ref, M, F, A)`
//! with a monitor; the spawned process exits with `{Ref, return, Value}` (or `{Ref, error,
//! Reason, Stack}`, `{Ref, exit, Reason}`), which reaches the caller as the monitor's `DOWN`.
//! This node answers the request with a `SPAWN_REPLY` naming a pid of its own for the
//! "process", runs `M.F` from its [`FunctionRegistry`](actor_core::FunctionRegistry) through
//! the node's `nodus.rpc_json` (the arguments and the result cross as JSON, see
//! [`super::term::term_to_json`]), and ends that pid with the exit reason erpc expects:
//!
//! | on this node | `erpc:call` on the BEAM node |
//! | --- | --- |
//! | the function answers `v` | returns `v` as a term |
//! | no such function | raises `error:{exception, undef, [{M, F, A, []}]}` |
//! | the arguments do not decode | raises `error:{exception, badarg, [{M, F, A, []}]}` |
//! | the function panics or the node cannot run it | exits `{exception, {nodus_task_failed, Why}}` (`Why` a binary, e.g. `<<"the task panicked: ...">>`) |
//!
//! An Elixir module name `Elixir.Chat` is looked up as `Chat`. Any other spawn request
//! (`Node.spawn(node, M, F, A)`) runs `M.F(A)` the same way and drops its result.

use std::sync::Arc;
use std::time::Duration;

use eetf::Term;
use erl_dist::message::{Message, SpawnRequest};
use erl_dist::term::PidOrAtom;
use tokio::sync::mpsc;

use super::term::{atom, json_to_term, term_to_json};
use super::Shared;

/// How long one function run for a BEAM node may take before the caller gets an exit (the
/// caller's own erpc timeout usually comes first).
const RUN_LIMIT: Duration = Duration::from_secs(3600);

fn tuple(elements: Vec<Term>) -> Term {
    Term::Tuple(eetf::Tuple::from(elements))
}

fn has_option(opts: &eetf::List, name: &str) -> bool {
    opts.elements.iter().any(|o| match o {
        Term::Atom(a) => a.name == name,
        Term::Tuple(t) => matches!(t.elements.first(), Some(Term::Atom(a)) if a.name == name),
        _ => false,
    })
}

/// Handles a `SPAWN_REQUEST`: replies at once and runs the function in a task.
pub(crate) fn on_spawn_request(
    shared: &Arc<Shared>,
    tx: &mpsc::Sender<Message>,
    req: SpawnRequest,
) {
    let me = super::procs::fresh_pid(shared);
    let monitor = has_option(&req.opt_list, "monitor");
    let link = has_option(&req.opt_list, "link");
    let flags = i32::from(link) | (i32::from(monitor) << 1);
    super::conn::send_msg(
        tx,
        Message::spawn_reply(
            req.req_id.clone(),
            req.from_pid.clone(),
            eetf::FixInteger::from(flags),
            PidOrAtom::Pid(me.clone()),
        ),
    );
    let (module, function) = (req.mfa.module.name.clone(), req.mfa.function.name.clone());
    let args = req.arg_list.elements;
    // erpc:execute_call(Ref, M, F, A): the real call is inside.
    let erpc = match (module.as_str(), function.as_str(), args.as_slice()) {
        ("erpc", "execute_call", [tag, Term::Atom(m), Term::Atom(f), Term::List(a)]) => Some((
            tag.clone(),
            m.name.clone(),
            f.name.clone(),
            a.elements.clone(),
        )),
        // A list of small integers travels as a byte list ("string").
        ("erpc", "execute_call", [tag, Term::Atom(m), Term::Atom(f), Term::ByteList(a)]) => {
            let a = a
                .bytes
                .iter()
                .map(|&b| Term::from(eetf::FixInteger::from(i32::from(b))))
                .collect();
            Some((tag.clone(), m.name.clone(), f.name.clone(), a))
        }
        _ => None,
    };
    let (tag, module, function, args) = match erpc {
        Some((tag, m, f, a)) => (Some(tag), m, f, a),
        None => (None, module, function, args),
    };
    let (shared, tx) = (Arc::clone(shared), tx.clone());
    tokio::spawn(async move {
        let supervisor = crate::node::admin::RPC_SUPERVISOR;
        let outcome = run(&shared, supervisor, &module, &function, &args).await;
        let stack = || {
            Term::List(eetf::List::from(vec![tuple(vec![
                atom(&module),
                atom(&function),
                Term::List(eetf::List::from(args.clone())),
                Term::List(eetf::List::nil()),
            ])]))
        };
        let reason = match (&tag, outcome) {
            (Some(tag), Ok(value)) => tuple(vec![tag.clone(), atom("return"), value]),
            (Some(tag), Err(Failure::Undefined)) => {
                tuple(vec![tag.clone(), atom("error"), atom("undef"), stack()])
            }
            (Some(tag), Err(Failure::BadArgs(why))) => {
                tracing::info!(
                    module,
                    function,
                    "erpc from a BEAM node with bad arguments: {why}"
                );
                tuple(vec![tag.clone(), atom("error"), atom("badarg"), stack()])
            }
            (Some(tag), Err(Failure::Failed(why))) => tuple(vec![
                tag.clone(),
                atom("exit"),
                tuple(vec![
                    atom("nodus_task_failed"),
                    Term::Binary(why.as_bytes().into()),
                ]),
            ]),
            (None, Ok(_)) => atom("normal"),
            (None, Err(e)) => {
                tracing::warn!(module, function, "a spawn from a BEAM node failed: {e:?}");
                tuple(vec![
                    atom("nodus_task_failed"),
                    Term::Binary(format!("{e:?}").as_bytes().into()),
                ])
            }
        };
        if monitor {
            super::conn::send_msg(
                &tx,
                Message::monitor_p_exit(
                    PidOrAtom::Pid(me.clone()),
                    req.from_pid.clone(),
                    req.req_id,
                    reason.clone(),
                ),
            );
        }
        if link {
            super::conn::send_msg(&tx, Message::exit(me, req.from_pid, reason));
        }
    });
}

/// Why a function run for a BEAM node gave no value.
#[derive(Debug)]
pub(super) enum Failure {
    Undefined,
    BadArgs(String),
    Failed(String),
}

/// Runs `module.function(args)` under the task supervisor `supervisor` of this node, the
/// arguments and the result through JSON (`nodus.rpc_json`). Dropping the future stops the
/// task (it is linked to it).
pub(super) async fn run(
    shared: &Shared,
    supervisor: &str,
    module: &str,
    function: &str,
    args: &[Term],
) -> Result<Term, Failure> {
    let module = module.strip_prefix("Elixir.").unwrap_or(module);
    let json: Vec<serde_json::Value> = args
        .iter()
        .map(term_to_json)
        .collect::<Result<_, _>>()
        .map_err(|e| Failure::BadArgs(e.to_string()))?;
    let json = serde_json::Value::Array(json).to_string();
    let task = actor_core::TaskSupervisor::async_on(
        &shared.system,
        supervisor,
        crate::node::admin::MODULE,
        crate::node::admin::RPC_JSON,
        (module.to_string(), function.to_string(), json),
    )
    .await
    .map_err(|e| Failure::Failed(e.to_string()))?;
    // Not `task.await`, which gives up after the default 5 s: a BEAM caller waits as long
    // as its own timeout says (erpc's, Task.await's), bounded here by RUN_LIMIT.
    let answer: Result<String, String> = task
        .await_timeout(RUN_LIMIT)
        .await
        .map_err(|e| Failure::Failed(e.to_string()))?;
    match answer {
        Ok(json) => {
            let value: serde_json::Value =
                serde_json::from_str(&json).map_err(|e| Failure::Failed(e.to_string()))?;
            Ok(json_to_term(value))
        }
        // The texts of actor-core's JsonCallError, as nodus.rpc_json passes them on.
        Err(e) if e.starts_with("function ") && e.contains("is not registered") => {
            Err(Failure::Undefined)
        }
        Err(e) if e.starts_with("bad JSON arguments") => Err(Failure::BadArgs(e)),
        Err(e) => Err(Failure::Failed(e)),
    }
}
