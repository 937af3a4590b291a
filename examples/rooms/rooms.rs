//! Chat rooms across nodes: a room is a process group (`:pg`, scope [`SCOPE`]) whose
//! members live on any node, and its history is a cluster singleton
//! ([`ClusterSupervisor::singleton`]) reached by the global name `history:<room>` from any
//! node, wherever it runs.
//!
//! - [`join`] starts a [`Member`] on the caller's node, joins it to the room's group and
//!   makes sure the room's history runs (starting it on its owner if nobody runs it).
//! - [`say`] records a line in the history and casts it to every member of the group.
//! - When the history's node goes, the cluster supervisor starts it on a survivor; the new
//!   history rebuilds its lines from the members that are left (each keeps what it heard).

use std::{collections::VecDeque, time::Duration};

use nodus::{
    remote::{
        names::{ClusterSupervisor, ClusterSupervisorConfig, ClusterSupervisorError},
        Node,
    },
    Destination,
};
use serde::{Deserialize, Serialize};

/// The process-group scope of rooms.
pub const SCOPE: &str = "rooms";
/// The cluster supervisor of the histories (the same on every node).
pub const SUPERVISOR: &str = "rooms";
/// The start function of a history.
pub const HISTORY: &str = "history";
/// How many lines a history keeps.
pub const HISTORY_LEN: usize = 100;
/// The bound on every call below.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(500);

/// The global name of `room`'s history.
pub fn history_name(room: &str) -> String {
    format!("history:{room}")
}

/// A room's history: the last [`HISTORY_LEN`] lines.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct History {
    lines: VecDeque<String>,
}

#[nodus::actor(remote, vis = pub)]
impl History {
    /// Records a line (a cast).
    pub fn record(&mut self, line: String) {
        self.lines.push_back(line);
        while self.lines.len() > HISTORY_LEN {
            self.lines.pop_front();
        }
    }

    /// The lines, oldest first.
    pub fn lines(&self) -> Vec<String> {
        self.lines.iter().cloned().collect()
    }
}

/// A user in a room: what it heard.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Member {
    heard: Vec<String>,
}

#[nodus::actor(remote, vis = pub)]
impl Member {
    /// A line said in the room (a cast).
    pub fn hear(&mut self, line: String) {
        self.heard.push(line);
    }

    /// Everything it heard, in order.
    pub fn heard(&self) -> Vec<String> {
        self.heard.clone()
    }
}

/// The history of `room`, by its global name, with calls bounded by [`CALL_TIMEOUT`].
pub fn history(node: &Node, room: &str) -> HistoryClient {
    History::client(node, Destination::global(history_name(room))).with_timeout(CALL_TIMEOUT)
}

/// Starts a history for the room in `name` (`history:<room>`) on `node`, with the lines
/// of the member that heard the most (a survivor's memory after a takeover).
async fn start_history(
    node: Node,
    name: String,
) -> Result<nodus::ractor::ActorCell, nodus::remote::names::StartError> {
    let room = name.strip_prefix("history:").unwrap_or(&name);
    let mut lines: Vec<String> = Vec::new();
    for pid in node.pg_scope(SCOPE).members(room) {
        let client = Member::client(&node, pid).with_timeout(CALL_TIMEOUT);
        if let Ok(heard) = client.heard().await {
            if heard.len() > lines.len() {
                lines = heard;
            }
        }
    }
    let skip = lines.len().saturating_sub(HISTORY_LEN);
    let state = History {
        lines: lines.into_iter().skip(skip).collect(),
    };
    let client = History::spawn(&node, None, state).await?;
    Ok(node
        .resolve(client.destination())
        .map_err(|e| format!("the new history stopped at once: {}", e))?)
}

/// The rooms' cluster supervisor for `node`: start it on every node.
///
/// # Errors
/// As [`ClusterSupervisor::start`].
pub async fn start(node: &Node) -> Result<ClusterSupervisor, ClusterSupervisorError> {
    let config = ClusterSupervisorConfig::new(SUPERVISOR).spec(HISTORY, start_history);
    ClusterSupervisor::start(node, config).await
}

/// A new member of `room` on `node`: joined to the group, and the room's history running.
///
/// # Errors
/// The member's spawn or join failing, or the history not running within `timeout`.
pub async fn join(
    node: &Node,
    rooms: &ClusterSupervisor,
    room: &str,
    timeout: Duration,
) -> Result<MemberClient, Box<dyn std::error::Error + Send + Sync>> {
    let member = Member::spawn(node, None, Member::default()).await?;
    let Destination::Pid(pid) = member.destination().clone() else {
        return Err("a spawned member has a pid".into());
    };
    node.pg_scope(SCOPE).join(room, &pid)?;
    rooms
        .singleton(&history_name(room), HISTORY, timeout)
        .await?;
    Ok(member.with_timeout(CALL_TIMEOUT))
}

/// `who` says `text` in `room`: recorded in the history, heard by every member. How many
/// members it went to.
///
/// # Errors
/// The history cannot be reached (its node just went: retry once it is back).
pub async fn say(
    node: &Node,
    room: &str,
    who: &str,
    text: &str,
) -> Result<usize, nodus::SendError<HistoryMsg>> {
    let line = format!("{who}: {text}");
    history(node, room).record(line.clone()).await?;
    let mut sent = 0;
    for pid in node.pg_scope(SCOPE).members(room) {
        if Member::client(node, pid).hear(line.clone()).await.is_ok() {
            sent += 1;
        }
    }
    Ok(sent)
}

/// A room (`room0`, `room1`, …) whose history starts on `host` when the cluster is `nodes`
/// (the owner of its name by [`placement::owner`](nodus::remote::names::placement::owner)):
/// a room for each node, to watch each one's loss. `None` if none of the first thousand is.
pub fn room_hosted_by(nodes: &[nodus::NodeName], host: &nodus::NodeName) -> Option<String> {
    (0..1000).map(|k| format!("room{k}")).find(|room| {
        nodus::remote::names::placement::owner(&history_name(room), nodes) == Some(host)
    })
}
