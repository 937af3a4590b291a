//! The presence service: a `Room` actor on a hub node, and a `Member` actor on every other
//! node that joins it, all written with the handler context (no watcher task outside the
//! actors).
//!
//! - The room learns who joins from the call itself (`ctx.caller()`), monitors each member
//!   (`ctx.monitor`), and drops a member when its `Down` arrives, with the real reason: the
//!   member stopped (`Normal`, `Stopped(..)`), crashed (`Failed(..)`), or its node went down
//!   (`NoConnection`).
//! - A member monitors the hub's node (`ctx.monitor_node`); when the hub goes down it marks
//!   the room as gone and retries joining on a timer (`ctx.send_after`), so it is back in the
//!   room as soon as a room runs again under the same name.
//! - Whoever calls the room while its node is down gets a typed error within the call's
//!   timeout (`CallError`), never a hang.

use std::{collections::BTreeMap, time::Duration};

use nodus::{CallError, Context, Destination, ExitReason, Info, NodeName, Pid, System};
use serde::{Deserialize, Serialize};

/// The room's registered name on the hub.
pub const ROOM: &str = "room";
/// Each member's registered name on its node.
pub const MEMBER: &str = "member";
/// How long a member waits for the room: the bound on every call to it.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(500);
/// How often a member that is out of the room tries to join again.
pub const RETRY: Duration = Duration::from_millis(100);

/// The room: who is in it, by pid.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Room {
    members: BTreeMap<Pid, String>,
    left: Vec<(String, ExitReason)>,
}

#[nodus::actor(remote, vis = pub)]
impl Room {
    /// `name` joins, as the calling actor: the room monitors it. Returns who is in the room.
    pub fn join(&mut self, ctx: &mut Context, name: String) -> Vec<String> {
        if let Some(pid) = ctx.caller().and_then(|c| c.pid()).cloned() {
            if !self.members.contains_key(&pid) {
                ctx.monitor(pid.clone());
                nodus::puts!("{name} joined from {}", pid.node());
            }
            self.members.insert(pid, name);
        }
        self.names()
    }

    /// Who is in the room, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.members.values().cloned().collect();
        names.sort();
        names
    }

    /// Who left, and why, in order.
    pub fn left(&self) -> Vec<(String, ExitReason)> {
        self.left.clone()
    }

    /// A member is down: it leaves the room.
    #[info]
    fn info(&mut self, info: Info) {
        if let Info::Down {
            dest: Destination::Pid(pid),
            reason,
            ..
        } = info
        {
            if let Some(name) = self.members.remove(&pid) {
                nodus::puts!("{name} left ({reason})");
                self.left.push((name, reason));
            }
        }
    }
}

/// A member: its name, where the room lives, and whether it is in the room now.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Member {
    name: String,
    hub: NodeName,
    /// The room's members when it last joined; `None` while out of the room.
    room: Option<Vec<String>>,
    /// Why the room went away last, as the node layer said.
    lost: Option<String>,
}

/// What a member knows, for `Member::status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The room's members when it joined, or `None` while out of the room.
    pub room: Option<Vec<String>>,
    /// Why it lost the room last, if it did.
    pub lost: Option<String>,
}

#[nodus::actor(remote, vis = pub)]
impl Member {
    /// A member called `name` of the room on `hub`.
    pub fn new(name: &str, hub: NodeName) -> Self {
        Self {
            name: name.to_string(),
            hub,
            room: None,
            lost: None,
        }
    }

    #[init]
    fn init(&mut self, ctx: &mut Context) {
        ctx.continue_with(MemberMsg::Rejoin());
    }

    /// Joins the room, or tries again after [`RETRY`].
    pub async fn rejoin(&mut self, ctx: &mut Context) {
        let Some(system) = ctx.system() else { return };
        match room(&system, &self.hub).join(self.name.clone()).await {
            Ok(names) => {
                self.room = Some(names);
                ctx.monitor_node(self.hub.clone());
            }
            Err(_) => {
                ctx.send_after(RETRY, MemberMsg::Rejoin());
            }
        }
    }

    /// What this member knows.
    pub fn status(&self) -> Status {
        Status {
            room: self.room.clone(),
            lost: self.lost.clone(),
        }
    }

    /// Asks the room who is in it, bounded by [`CALL_TIMEOUT`]: a typed error when the room
    /// cannot answer.
    pub async fn ask_room(&self, ctx: &mut Context) -> Result<Vec<String>, String> {
        let system = ctx.system().ok_or("this node is shutting down")?;
        room(&system, &self.hub)
            .names()
            .await
            .map_err(|e: CallError| e.to_string())
    }

    /// Leaves: the member stops with a reason the room sees.
    #[call]
    pub fn leave(&mut self, ctx: &mut Context) {
        ctx.stop(ExitReason::Stopped(format!("{} left", self.name)));
    }

    /// The hub went down: out of the room until a room answers again.
    #[info]
    fn info(&mut self, ctx: &mut Context, info: Info) {
        if let Info::NodeDown { node, reason, .. } = info {
            if node == self.hub {
                nodus::puts!("{}: the room's node {node} is down ({reason})", self.name);
                self.room = None;
                self.lost = Some(reason);
                ctx.send_after(RETRY, MemberMsg::Rejoin());
            }
        }
    }
}

/// The room on `hub`, with calls bounded by [`CALL_TIMEOUT`].
pub fn room(system: &System, hub: &NodeName) -> RoomClient {
    Room::client(system, (ROOM, hub.as_str())).with_timeout(CALL_TIMEOUT)
}

/// The members' names, for nodes 1, 2, ...
pub const NAMES: &[&str] = &["alice", "bob", "carol", "dave"];

/// Starts node `i`'s part: the room on node 0 (the hub, whose name it records in `hub`), a
/// member on every other node. For `LocalCluster::on_start`, so a restarted node gets its
/// actor back.
///
/// # Errors
/// The actor's `SpawnError`.
pub async fn start_node(
    system: &System,
    i: usize,
    hub: &std::sync::OnceLock<NodeName>,
) -> Result<(), nodus::SpawnError> {
    if i == 0 {
        let _ = hub.set(system.node().clone());
        Room::spawn(system, Some(ROOM), Room::default()).await?;
    } else if let Some(hub) = hub.get() {
        let name = NAMES.get(i - 1).copied().unwrap_or("guest");
        Member::spawn(system, Some(MEMBER), Member::new(name, hub.clone())).await?;
    }
    Ok(())
}

/// A [`LocalCluster`](nodus::testing::LocalCluster) of three nodes, each starting its part
/// ([`start_node`]) when it starts and again when it restarts; the hub records its name in
/// `hub`.
pub fn cluster(
    hub: &std::sync::Arc<std::sync::OnceLock<NodeName>>,
) -> nodus::testing::ClusterBuilder {
    let hub = std::sync::Arc::clone(hub);
    nodus::testing::LocalCluster::builder()
        .nodes(3)
        .prefix("presence")
        .on_start(move |node, i| {
            let hub = std::sync::Arc::clone(&hub);
            async move {
                if let Err(e) = start_node(&node, i, &hub).await {
                    eprintln!("node {i} did not start its part: {e}");
                }
            }
        })
}
