//! The key-value service: the store actor, the `Kv` remote module, the supervision tree of
//! each node, and replicated writes. Shared by `examples/kv_service/main.rs` and the tests
//! (`tests/it/kv.rs`).

use std::collections::BTreeMap;

use nodus::{core::CallContext, prelude::*, remote::Node};

/// The store: one node's replica of the data.
#[derive(Clone, Default)]
pub struct Store {
    data: BTreeMap<String, String>,
}

#[nodus::actor(vis = pub)]
impl Store {
    /// Stores `value` under `key`; returns the value it replaces. A call, since it returns
    /// a value: the writer knows the write landed.
    pub fn put(&mut self, key: String, value: String) -> Option<String> {
        self.data.insert(key, value)
    }

    /// The value under `key`.
    pub fn get(&self, key: String) -> Option<String> {
        self.data.get(&key).cloned()
    }

    /// Everything stored.
    pub fn dump(&self) -> BTreeMap<String, String> {
        self.data.clone()
    }

    /// Crashes the store (a bug, say): its supervisor restarts it, empty.
    pub fn crash(&mut self) {
        panic!("the store was asked to crash");
    }
}

/// The operations any node may run on any node, by name.
pub struct Kv;

#[nodus::remote_module("Kv")]
impl Kv {
    /// Stores `value` under `key` in this node's store.
    pub async fn put(ctx: CallContext, key: String, value: String) -> bool {
        match ctx.system() {
            Some(system) => Store::client(&system, "kv").put(key, value).await.is_ok(),
            None => false,
        }
    }

    /// The value under `key` in this node's store.
    pub async fn get(ctx: CallContext, key: String) -> Option<String> {
        let system = ctx.system()?;
        Store::client(&system, "kv").get(key).await.ok().flatten()
    }

    /// Everything in this node's store.
    pub async fn dump(ctx: CallContext) -> BTreeMap<String, String> {
        match ctx.system() {
            Some(system) => Store::client(&system, "kv")
                .dump()
                .await
                .unwrap_or_default(),
            None => BTreeMap::new(),
        }
    }

    /// Repairs this node's store from the replica on `source`: runs `Kv.dump` there (a
    /// remote task) and writes every entry here. Returns how many entries it wrote, or
    /// `None` if `source` could not be read.
    pub async fn repair(ctx: CallContext, source: String) -> Option<usize> {
        let system = ctx.system()?;
        let replica = Kv::on(&system, (TASKS, source.as_str()))
            .dump()
            .await
            .ok()?;
        let store = Store::client(&system, "kv");
        let mut written = 0;
        for (key, value) in replica {
            store.put(key, value).await.ok()?;
            written += 1;
        }
        Some(written)
    }
}

pub const TASKS: &str = "Kv.TaskSupervisor";

/// Starts the service's supervision tree on `node`.
pub async fn start_service(node: &Node) -> Result<(), Box<dyn std::error::Error>> {
    Kv::register(node);
    let tree = SupervisorSpec::new(Strategy::OneForOne)
        .child(Store::child_spec("kv", Store::default()).name("kv"))
        .child(TaskSupervisor::child_spec(TaskSupervisorConfig::new(TASKS)));
    Supervisor::start(node, Some("Kv.Supervisor"), tree).await?;
    Ok(())
}

/// Writes `key` on every node `from` is connected to, and on `from`: returns how many
/// replicas took it.
pub async fn replicated_put(from: &Node, key: &str, value: &str) -> usize {
    let mut replicas = vec![from.name().clone()];
    replicas.extend(from.list());
    let mut acks = 0;
    for replica in &replicas {
        let op = Kv::on(from, (TASKS, replica.as_str()));
        if let Ok(true) = op.put(key.to_string(), value.to_string()).await {
            acks += 1;
        }
    }
    acks
}
