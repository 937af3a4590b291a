//! One connection with a BEAM node: the handshake (erl_dist's, over tokio through
//! tokio-util's compatibility layer), then a reader and a writer with ticks.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use eetf::Term;
use erl_dist::handshake::{ClientSideHandshake, HandshakeStatus, ServerSideHandshake};
use erl_dist::message::Message;
use erl_dist::node::{Creation, LocalNode, NodeName};
use erl_dist::DistributionFlags;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::compat::TokioAsyncReadCompatExt;

use super::procs::Signal;
use super::term::atom;
use super::{lock, ErlError, Shared};

/// The type tag of a distribution message without an atom cache (`pass through`).
const PASS_THROUGH: u8 = 112;
/// How many messages may wait for the writer before a sender waits.
const QUEUE: usize = 1024;

/// Whether the first bytes of a connection are an Erlang `send_name` rather than a nodus
/// frame: a nodus frame's four-byte length has two zero high bytes, a `send_name`'s two-byte
/// length is never zero. Waits at most `deadline` for two bytes.
pub(crate) async fn is_erlang(stream: &TcpStream, deadline: Duration) -> bool {
    let peek = async {
        let mut buf = [0u8; 2];
        let mut backoff = Duration::from_millis(1);
        loop {
            match stream.peek(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(1) => {
                    // Half of the length so far: wait for the rest, briefly and bounded.
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(50));
                }
                Ok(_) => return u16::from_be_bytes(buf) != 0,
            }
        }
    };
    tokio::time::timeout(deadline, peek).await.unwrap_or(false)
}

fn local_node(shared: &Shared) -> Result<LocalNode, ErlError> {
    let name: NodeName = shared
        .name
        .parse()
        .map_err(|e| ErlError::Handshake(format!("this node's name: {e}")))?;
    let mut local = LocalNode::new(name, Creation::new(shared.creation));
    local.flags = DistributionFlags::mandatory()
        | DistributionFlags::PUBLISHED
        | DistributionFlags::DIST_MONITOR
        | DistributionFlags::DIST_MONITOR_NAME
        | DistributionFlags::SPAWN;
    Ok(local)
}

/// Runs an incoming connection from a BEAM node to its end.
/// `permit` (the node's bound on handshakes under way) is released once the handshake is
/// over.
pub(crate) async fn accept<P>(shared: Arc<Shared>, stream: TcpStream, from: SocketAddr, permit: P) {
    let handshake = handshake(&shared, stream).await;
    drop(permit);
    let peer = match handshake {
        Ok(done) => done,
        Err(e) => {
            tracing::info!(%from, "incoming Erlang connection refused: {e}");
            return;
        }
    };
    let (stream, peer) = peer;
    tracing::info!(peer = %peer, "Erlang node connected");
    let (tx, rx) = mpsc::channel(QUEUE);
    if !shared.peer_up(&peer) {
        tracing::info!(peer = %peer, "Erlang node already connected: the new connection is dropped");
        return;
    }
    shared.attach(&peer, tx.clone());
    let reason = run(&shared, stream, &peer, tx, rx).await;
    shared.peer_down(&peer, &reason);
    tracing::info!(peer = %peer, "Erlang node disconnected: {reason}");
}

/// Dials `peer`, runs the client side of the handshake, and runs the connection in a task.
pub(crate) async fn connect(shared: Arc<Shared>, peer: &str) -> Result<(), ErlError> {
    let name: NodeName = peer
        .parse()
        .map_err(|e| ErlError::Handshake(format!("{peer:?} is not a node name: {e}")))?;
    let local = local_node(&shared)?;
    let setup = shared.setup_time;
    let work = async {
        let host = name.host().to_string();
        let mut last = format!("{host} does not resolve");
        let addrs = tokio::net::lookup_host((host.as_str(), shared.port_mapper_port))
            .await
            .map_err(|e| ErlError::Connection(format!("{host}: {e}")))?;
        for epmd in addrs {
            let client = crate::port_mapper::PortMapperClient::new(epmd).with_timeout(setup);
            let info = match client.port_please(name.name()).await {
                Ok(Some(info)) => info,
                Ok(None) => {
                    last = format!("{peer} is not registered with the port mapper at {epmd}");
                    continue;
                }
                Err(e) => {
                    last = e.to_string();
                    continue;
                }
            };
            let stream = TcpStream::connect((epmd.ip(), info.port))
                .await
                .map_err(|e| ErlError::Connection(format!("{peer}: {e}")))?;
            let _ = stream.set_nodelay(true);
            let mut hs = ClientSideHandshake::new(stream.compat(), local, &shared.cookie);
            let status = hs
                .execute_send_name(erl_dist::LOWEST_DISTRIBUTION_PROTOCOL_VERSION)
                .await
                .map_err(|e| ErlError::Handshake(e.to_string()))?;
            let go_on = !matches!(status, HandshakeStatus::Alive);
            let (conn, node) = hs
                .execute_rest(go_on)
                .await
                .map_err(|e| ErlError::Handshake(e.to_string()))?;
            return Ok((conn.into_inner(), node.name.to_string()));
        }
        Err(ErlError::Handshake(last))
    };
    let (stream, peer) = tokio::time::timeout(setup, work)
        .await
        .map_err(|_| ErlError::Handshake(format!("not done within {setup:?}")))??;
    if !shared.peer_up(&peer) {
        return Ok(()); // connected meanwhile from the other side
    }
    tracing::info!(peer = %peer, "connected to Erlang node");
    let span = tracing::Span::current();
    let (tx, rx) = mpsc::channel(QUEUE);
    shared.attach(&peer, tx.clone()); // before `connect` returns: callers may use it at once
    tokio::spawn(tracing::Instrument::instrument(
        async move {
            let reason = run(&shared, stream, &peer, tx, rx).await;
            shared.peer_down(&peer, &reason);
            tracing::info!(peer = %peer, "Erlang node disconnected: {reason}");
        },
        span,
    ));
    Ok(())
}

async fn handshake(shared: &Shared, stream: TcpStream) -> Result<(TcpStream, String), ErlError> {
    let local = local_node(shared)?;
    let work = async {
        let mut hs = ServerSideHandshake::new(stream.compat(), local, &shared.cookie);
        let name = hs
            .execute_recv_name()
            .await
            .map_err(|e| ErlError::Handshake(e.to_string()))?
            .ok_or_else(|| ErlError::Handshake("the peer asked for a dynamic name".into()))?;
        let status = if lock(&shared.peers).contains(&name.to_string()) {
            HandshakeStatus::Nok
        } else {
            HandshakeStatus::Ok
        };
        let (conn, peer) = hs
            .execute_rest(status)
            .await
            .map_err(|e| ErlError::Handshake(e.to_string()))?;
        Ok::<_, ErlError>((conn.into_inner(), peer.name.to_string()))
    };
    tokio::time::timeout(shared.setup_time, work)
        .await
        .map_err(|_| ErlError::Handshake(format!("not done within {:?}", shared.setup_time)))?
}

/// The reader and writer of one connection; returns why it ended.
async fn run(
    shared: &Arc<Shared>,
    stream: TcpStream,
    peer: &str,
    tx: mpsc::Sender<Message>,
    mut rx: mpsc::Receiver<Message>,
) -> ErlError {
    let (mut read, mut write) = stream.into_split();
    let tick = shared.tick_time / 4;
    let writer = async move {
        loop {
            let frame = match tokio::time::timeout(tick, rx.recv()).await {
                Ok(Some(Message::Tick)) => 0u32.to_be_bytes().to_vec(),
                Ok(Some(msg)) => {
                    let mut body = vec![PASS_THROUGH];
                    if let Err(e) = msg.write_into(&mut body) {
                        tracing::warn!("an Erlang message could not be encoded: {e}");
                        continue;
                    }
                    let Ok(len) = u32::try_from(body.len()) else {
                        tracing::warn!("an Erlang message too long to send was dropped");
                        continue;
                    };
                    let mut frame = len.to_be_bytes().to_vec();
                    frame.extend_from_slice(&body);
                    frame
                }
                Ok(None) => return ErlError::Connection("the node stopped".into()),
                Err(_) => 0u32.to_be_bytes().to_vec(), // idle: a tick
            };
            if let Err(e) = write.write_all(&frame).await {
                return ErlError::Connection(format!("write: {e}"));
            }
        }
    };
    let mut monitors = Monitors::default();
    let reader = async {
        loop {
            // A peer ticks every quarter of its tick time: silence for a whole one is death.
            let len = match tokio::time::timeout(shared.tick_time, read.read_u32()).await {
                Err(_) => return ErlError::Connection("tick timeout".into()),
                Ok(Err(e)) => return ErlError::Connection(format!("read: {e}")),
                Ok(Ok(len)) => len as usize,
            };
            if len == 0 {
                // A tick. Answered with one, so that a peer whose net_ticktime is shorter
                // than this node's tick time still hears from it in time (a BEAM node does
                // not answer ticks, so two of these never ping-pong).
                if tx.try_send(Message::Tick).is_err() {
                    tracing::debug!(peer, "the writer is busy; its next frame serves as a tick");
                }
                continue;
            }
            if len > shared.max_frame_len {
                return ErlError::Connection(format!(
                    "a frame of {len} bytes is over the limit of {}",
                    shared.max_frame_len
                ));
            }
            let mut body = vec![0u8; len];
            let read_body = tokio::time::timeout(shared.tick_time, read.read_exact(&mut body));
            match read_body.await {
                Err(_) => return ErlError::Connection("tick timeout inside a frame".into()),
                Ok(Err(e)) => return ErlError::Connection(format!("read: {e}")),
                Ok(Ok(_)) => {}
            }
            let Some((&PASS_THROUGH, rest)) = body.split_first() else {
                return ErlError::Connection(
                    "a message with a distribution header (atom cache), which was not offered"
                        .into(),
                );
            };
            if let Err(e) = super::check::check_terms(rest) {
                tracing::warn!(peer, "an Erlang message was dropped before decoding: {e}");
                continue;
            }
            match Message::read_from(&mut &rest[..]) {
                Ok(msg) => on_message(shared, peer, &tx, &mut monitors, msg),
                Err(e) => tracing::warn!(peer, "an Erlang message could not be decoded: {e}"),
            }
        }
    };
    tokio::select! {
        reason = writer => reason,
        reason = reader => reason,
        () = shared.closed() => ErlError::Connection("the node stopped".into()),
    }
}

/// Monitors BEAM processes hold on names here (`MONITOR_P`), by (caller pid, name).
#[derive(Default)]
struct Monitors(HashMap<(eetf::Pid, String), eetf::Reference>);

pub(crate) fn send_msg(tx: &mpsc::Sender<Message>, msg: Message) {
    if tx.try_send(msg).is_err() {
        tracing::warn!(
            "the connection's queue is full or closed: a message to a BEAM node was dropped"
        );
    }
}

/// `{'$gen_call', {From, Tag}, Request}`.
fn gen_call(message: &Term) -> Option<(eetf::Pid, Term, Term)> {
    let Term::Tuple(t) = message else { return None };
    match t.elements.as_slice() {
        [Term::Atom(a), Term::Tuple(from), request] if a.name == "$gen_call" => {
            match from.elements.as_slice() {
                [Term::Pid(pid), tag] => Some((pid.clone(), tag.clone(), request.clone())),
                _ => None,
            }
        }
        _ => None,
    }
}

fn reply(tx: &mpsc::Sender<Message>, to: eetf::Pid, tag: Term, value: Term) {
    let msg = Term::Tuple(eetf::Tuple::from(vec![tag, value]));
    send_msg(tx, Message::send(to, msg));
}

fn on_message(
    shared: &Arc<Shared>,
    peer: &str,
    tx: &mpsc::Sender<Message>,
    monitors: &mut Monitors,
    msg: Message,
) {
    match msg {
        Message::Tick => {}
        Message::RegSend(m) => on_reg_send(
            shared,
            peer,
            tx,
            monitors,
            m.from_pid,
            &m.to_name.name,
            m.message,
        ),
        Message::RegSendTt(m) => on_reg_send(
            shared,
            peer,
            tx,
            monitors,
            m.from_pid,
            &m.to_name.name,
            m.message,
        ),
        Message::MonitorP(m) => {
            let name = match &m.to_proc {
                erl_dist::term::PidOrAtom::Atom(a) => Some(a.name.clone()),
                erl_dist::term::PidOrAtom::Pid(_) => None,
            };
            let to_pid = match &m.to_proc {
                erl_dist::term::PidOrAtom::Pid(p) => Some(p.clone()),
                erl_dist::term::PidOrAtom::Atom(_) => None,
            };
            match name {
                Some(name) if shared.is_exposed(&name) => {
                    monitors.0.insert((m.from_pid, name), m.reference);
                }
                None if to_pid.as_ref().is_some_and(|p| {
                    to_proc(
                        shared,
                        p,
                        Signal::Monitor(m.from_pid.clone(), m.reference.clone()),
                    )
                }) => {}
                _ => {
                    // Nothing here by that name: the monitor fires at once, as the BEAM's.
                    send_msg(
                        tx,
                        Message::monitor_p_exit(m.to_proc, m.from_pid, m.reference, atom("noproc")),
                    );
                }
            }
        }
        Message::DemonitorP(m) => match m.to_proc {
            erl_dist::term::PidOrAtom::Atom(a) => {
                monitors.0.remove(&(m.from_pid, a.name));
            }
            erl_dist::term::PidOrAtom::Pid(p) => {
                to_proc(shared, &p, Signal::Demonitor(m.reference));
            }
        },
        Message::Send(m) => deliver(shared, peer, &m.to_pid, m.message),
        Message::SendTt(m) => deliver(shared, peer, &m.to_pid, m.message),
        Message::SendSender(m) => deliver(shared, peer, &m.to_pid, m.message),
        Message::SendSenderTt(m) => deliver(shared, peer, &m.to_pid, m.message),
        Message::Link(m) => {
            if !to_proc(shared, &m.to_pid, Signal::Link(m.from_pid.clone())) {
                // Linking to a pid that is gone: an exit noproc at once, as the BEAM's.
                send_msg(tx, Message::exit(m.to_pid, m.from_pid, atom("noproc")));
            }
        }
        Message::Unlink(m) => {
            to_proc(shared, &m.to_pid, Signal::Unlink(m.from_pid));
        }
        Message::UnlinkId(m) => {
            to_proc(shared, &m.to_pid, Signal::Unlink(m.from_pid.clone()));
            send_msg(tx, Message::unlink_id_ack(m.id, m.to_pid, m.from_pid));
        }
        Message::Exit(m) => {
            to_proc(shared, &m.to_pid, Signal::Exit(m.from_pid, m.reason));
        }
        Message::ExitTt(m) => {
            to_proc(shared, &m.to_pid, Signal::Exit(m.from_pid, m.reason));
        }
        Message::PayloadExit(m) => {
            to_proc(shared, &m.to_pid, Signal::Exit(m.from_pid, m.reason));
        }
        Message::MonitorPExit(m) => {
            to_proc(shared, &m.to_pid, Signal::Down(m.reference, m.reason));
        }
        Message::PayloadMonitorPExit(m) => {
            to_proc(shared, &m.to_pid, Signal::Down(m.reference, m.reason));
        }
        Message::SpawnRequest(req) => super::erpc::on_spawn_request(shared, tx, req),
        Message::SpawnRequestTt(req) => super::erpc::on_spawn_request(
            shared,
            tx,
            erl_dist::message::SpawnRequest {
                req_id: req.req_id,
                from_pid: req.from_pid,
                group_leader: req.group_leader,
                mfa: req.mfa,
                opt_list: req.opt_list,
                arg_list: req.arg_list,
            },
        ),
        other => tracing::debug!(peer, "an Erlang message nodus does not handle: {other:?}"),
    }
}

/// Hands `signal` to this node's BEAM-visible pid `pid`: false if it is not one (any more).
fn to_proc(shared: &Shared, pid: &eetf::Pid, signal: Signal) -> bool {
    pid.node.name == shared.name
        && pid.creation == shared.creation
        && shared.procs.signal(pid, signal)
}

/// A message to one of this node's pids: dropped if that pid is gone, as the BEAM drops a
/// message to a dead process.
fn deliver(shared: &Shared, peer: &str, pid: &eetf::Pid, message: Term) {
    if !to_proc(shared, pid, Signal::Message(message)) {
        tracing::debug!(
            peer,
            "a message from Erlang to a pid that is gone was dropped"
        );
    }
}

fn on_reg_send(
    shared: &Arc<Shared>,
    peer: &str,
    tx: &mpsc::Sender<Message>,
    monitors: &mut Monitors,
    from: eetf::Pid,
    name: &str,
    message: Term,
) {
    if let Some((caller, tag, request)) = gen_call(&message) {
        if name == super::NET_KERNEL {
            // net_adm:ping/1 is `gen:call(net_kernel, {is_auth, Node})`: connected means yes.
            monitors.0.remove(&(caller.clone(), name.to_string()));
            reply(tx, caller, tag, atom("yes"));
            return;
        }
        if shared.call_fn(name).is_none() {
            if let Some(supervisor) = super::task::supervisor(shared, name) {
                let monitor = monitors.0.remove(&(caller.clone(), name.to_string()));
                let call = super::task::StartCall {
                    supervisor,
                    name: name.to_string(),
                    caller,
                    tag,
                    monitor,
                };
                super::task::on_start(shared, peer, tx, call, request);
                return;
            }
        }
        let Some(handle) = shared.call_fn(name) else {
            tracing::info!(
                peer,
                name,
                "a gen_server call to a name not exposed to Erlang"
            );
            return; // the caller's monitor already said noproc
        };
        let monitor = monitors.0.remove(&(caller.clone(), name.to_string()));
        let (tx, system, name, peer) = (
            tx.clone(),
            shared.system.clone(),
            name.to_string(),
            peer.to_string(),
        );
        tokio::spawn(async move {
            match handle(system, request.clone()).await {
                Ok(value) => reply(&tx, caller, tag, value),
                Err(e) => {
                    tracing::warn!(peer, name, "a gen_server call from Erlang failed: {e}");
                    if let Some(reference) = monitor {
                        let reason = Term::Tuple(eetf::Tuple::from(vec![
                            atom("nodus_bad_request"),
                            request,
                        ]));
                        let to = erl_dist::term::PidOrAtom::Atom(eetf::Atom::from(name.as_str()));
                        send_msg(&tx, Message::monitor_p_exit(to, caller, reference, reason));
                    }
                }
            }
        });
        return;
    }
    let message = match message {
        Term::Tuple(t)
            if t.elements.len() == 2
                && matches!(&t.elements[0], Term::Atom(a) if a.name == "$gen_cast") =>
        {
            t.elements
                .into_iter()
                .nth(1)
                .unwrap_or_else(|| atom("undefined"))
        }
        other => other,
    };
    let _ = from;
    match shared.cast_fn(name) {
        Some(cast) => {
            if let Err(e) = cast(&shared.system, message) {
                tracing::warn!(peer, name, "a message from Erlang was dropped: {e}");
            }
        }
        None => tracing::info!(
            peer,
            name,
            "a message from Erlang to a name not exposed to Erlang was dropped"
        ),
    }
}
