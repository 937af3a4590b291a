//! How `nodus info` prints what a node says about itself.

use std::{fmt::Write, time::Duration};

use nodus::remote::node::admin::{ChildKind, Info, TreeEntry};

/// `info` as text: a header of `key  value` lines, then the supervision tree (indented by
/// depth) and the task supervisors with their running tasks.
pub(crate) fn info(info: &Info) -> String {
    let mut out = String::new();
    let list = |items: Vec<String>| {
        if items.is_empty() {
            "(none)".to_string()
        } else {
            items.join(", ")
        }
    };
    let names = |nodes: &[nodus::NodeName]| list(nodes.iter().map(ToString::to_string).collect());
    let _ = writeln!(out, "node        {}", info.node);
    let _ = writeln!(
        out,
        "version     nodus {} (protocol {})",
        info.version, info.protocol
    );
    let _ = writeln!(out, "uptime      {}", uptime(info.uptime));
    let _ = writeln!(out, "nodes       {}", names(&info.nodes));
    let _ = writeln!(out, "hidden      {}", names(&info.hidden_nodes));
    let _ = writeln!(out, "registered  {}", list(info.registered.clone()));
    let _ = writeln!(out, "\nsupervision tree");
    for entry in &info.tree {
        let _ = writeln!(out, "{}", tree_line(entry));
    }
    let _ = writeln!(out, "\ntask supervisors");
    if info.task_supervisors.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for sup in &info.task_supervisors {
        let tasks = match &sup.children {
            None => "did not list its tasks in time".to_string(),
            Some(ids) if ids.is_empty() => "0 tasks".to_string(),
            Some(ids) => {
                let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
                let s = if ids.len() == 1 { "" } else { "s" };
                format!("{} task{s}: {}", ids.len(), ids.join(" "))
            }
        };
        let _ = writeln!(out, "  {}  {}  {tasks}", sup.name, sup.pid);
    }
    out
}

fn tree_line(entry: &TreeEntry) -> String {
    let indent = "  ".repeat(usize::try_from(entry.depth).unwrap_or(0) + 1);
    let mut line = format!("{indent}{}", entry.id);
    if let Some(name) = entry.name.as_ref().filter(|name| **name != entry.id) {
        let _ = write!(line, " ({name})");
    }
    match &entry.pid {
        Some(pid) => {
            let _ = write!(line, "  {pid}");
        }
        None => line.push_str("  not running"),
    }
    line.push_str(match entry.kind {
        ChildKind::Supervisor => "  supervisor",
        ChildKind::TaskSupervisor => "  task supervisor",
        _ => "",
    });
    if entry.children_unknown {
        line.push_str("  (did not list its children in time)");
    }
    line
}

/// `1d 2h 3m 4s`, without the leading zero units.
fn uptime(d: Duration) -> String {
    let s = d.as_secs();
    let parts = [(s / 86_400, "d"), (s / 3600 % 24, "h"), (s / 60 % 60, "m")];
    let mut out = String::new();
    for (n, unit) in parts {
        if n > 0 || !out.is_empty() {
            let _ = write!(out, "{n}{unit} ");
        }
    }
    let _ = write!(out, "{}s", s % 60);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_reads_as_days_hours_minutes_seconds() {
        assert_eq!(uptime(Duration::from_millis(4_900)), "4s");
        assert_eq!(uptime(Duration::from_secs(3 * 60 + 4)), "3m 4s");
        assert_eq!(uptime(Duration::from_secs(3600)), "1h 0m 0s");
        assert_eq!(uptime(Duration::from_secs(2 * 86_400 + 5)), "2d 0h 0m 5s");
    }
}
