//! actor-core's layers import only downward: the kernel imports nothing above it, the
//! supervisors nothing but the kernel, `System` nothing above itself; and modules import each
//! other by module path, never through the crate root (whose re-exports stand above all).

use std::{fs, path::Path};

/// The layers, bottom first; a file may import its own layer and those below.
const LAYERS: &[&[&str]] = &[
    // The kernel.
    &[
        "cancel",
        "codec",
        "destination",
        "error",
        "function",
        "io",
        "kernel",
        "monitor",
        "node_name",
        "pid",
        "process",
        "registry",
        "remote_message",
        "restart",
        "seam",
        "trace",
    ],
    // The behaviours.
    &["supervisor"],
    // The kernel plus the root supervisor.
    &["system"],
    // What takes a System.
    &["task_supervisor", "proxy", "transport", "context"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// The code of `source` without comments (line comments and doc comments).
fn code(source: &str) -> String {
    source
        .lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top modules named by `crate::` paths in `code`, including those inside a grouped
/// `use crate::{a::X, b::{Y, Z}};`, and any name taken from the crate root.
fn imports(code: &str) -> (Vec<String>, Vec<String>) {
    let (mut modules, mut from_root) = (Vec::new(), Vec::new());
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        let preceded_by_dollar = rest[..at].ends_with('$');
        rest = after;
        if preceded_by_dollar {
            continue; // `$crate::` in a macro body names the user's view of the crate
        }
        let names: Vec<&str> = if let Some(group) = after.strip_prefix('{') {
            let end = group.find(';').unwrap_or(group.len());
            let mut depth = 0usize;
            let mut names = Vec::new();
            let mut start = true;
            for (i, c) in group[..end].char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth = depth.saturating_sub(1),
                    ',' if depth == 0 => start = true,
                    c if start && depth == 0 && (c.is_alphanumeric() || c == '_') => {
                        let len = group[i..]
                            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                            .unwrap_or(group.len() - i);
                        names.push(&group[i..i + len]);
                        start = false;
                    }
                    _ => {}
                }
            }
            names
        } else {
            let len = after
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            vec![&after[..len]]
        };
        for name in names {
            if name.starts_with(|c: char| c.is_uppercase()) {
                from_root.push(name.to_string());
            } else if name != "self" {
                modules.push(name.to_string());
            }
        }
    }
    (modules, from_root)
}

fn visit(dir: &Path, src: &Path, problems: &mut Vec<String>) {
    let Ok(entries) = fs::read_dir(dir) else {
        problems.push(format!("cannot read {}", dir.display()));
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            visit(&path, src, problems);
            continue;
        }
        let Some(relative) = path.strip_prefix(src).ok().and_then(Path::to_str) else {
            continue;
        };
        if !relative.ends_with(".rs") || relative == "lib.rs" || relative.ends_with("tests.rs") {
            continue;
        }
        let top = relative
            .split(['/', '.'])
            .next()
            .unwrap_or_default()
            .to_string();
        let Some(own) = layer_of(&top) else {
            problems.push(format!(
                "{relative}: module `{top}` is in no layer; add it to LAYERS"
            ));
            continue;
        };
        let Ok(source) = fs::read_to_string(&path) else {
            problems.push(format!("cannot read {relative}"));
            continue;
        };
        let (modules, from_root) = imports(&code(&source));
        for module in modules {
            match layer_of(&module) {
                Some(theirs) if theirs > own => problems.push(format!(
                    "{relative} imports `{module}`, a layer above its own"
                )),
                _ => {}
            }
        }
        for name in from_root {
            problems.push(format!(
                "{relative} takes `{name}` from the crate root; import it by its module's path"
            ));
        }
    }
}

#[test]
fn imports_run_only_downward() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut problems = Vec::new();
    visit(&src, &src, &mut problems);
    problems.sort();
    assert!(
        problems.is_empty(),
        "layering broken:\n{}",
        problems.join("\n")
    );
}
