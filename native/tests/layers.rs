//! The layers of `native/src` (DEVELOPERS.md, "Layers"): each module may use
//! only the modules below it. This reads every source file, resolves each
//! `crate::…` and `super::…` path to the top-level module it names, and fails
//! on any use of a module that is not below the file's own.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Each layer and the layers it may use. Anything not listed is forbidden,
/// including layers of the same height (storage and client know nothing of
/// each other).
const LAYERS: &[(&str, &[&str])] = &[
    ("storage", &[]),
    ("logging", &[]),
    ("tls", &[]),
    ("client", &["tls"]),
    ("locks", &[]),
    ("raft", &["locks"]),
    ("cluster", &["storage", "client", "locks", "raft", "tls"]),
    ("node", &["storage", "locks", "raft", "cluster", "tls"]),
    ("http", &["node", "tls"]),
    ("server", &["http", "node", "tls"]),
];

/// The `canhazdb-bench` binary's modules reach the library as `canhazdb::…`
/// and may use only the client.
const BENCH_MAY_USE: &[&str] = &["client"];

fn allowed(layer: &str) -> Option<&'static [&'static str]> {
    LAYERS
        .iter()
        .find(|(name, _)| *name == layer)
        .map(|(_, uses)| *uses)
}

/// Source without comments (doc links may name any module).
fn code_only(source: &str) -> String {
    source
        .lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first path segment of each item in `rest`, which follows a `::`:
/// `storage::Store` gives `storage`, `{storage::Store, client}` both.
fn first_segments(rest: &str) -> Vec<String> {
    let rest = rest.trim_start();
    if let Some(group) = rest.strip_prefix('{') {
        let mut depth = 1;
        let mut end = group.len();
        for (at, character) in group.char_indices() {
            match character {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = at;
                        break;
                    }
                }
                _ => {}
            }
        }
        let mut segments = Vec::new();
        let mut depth = 0;
        let mut item = String::new();
        for character in group[..end].chars().chain(std::iter::once(',')) {
            match character {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    let name: String = item
                        .trim()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        segments.push(name);
                    }
                    item.clear();
                    continue;
                }
                _ => {}
            }
            item.push(character);
        }
        return segments;
    }
    let name: String = rest
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    if name.is_empty() {
        Vec::new()
    } else {
        vec![name]
    }
}

fn is_word_boundary(source: &str, at: usize) -> bool {
    source[..at]
        .chars()
        .next_back()
        .is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
}

/// The top-level modules that `source`, the file of module `module_path`
/// (`["node", "dispatch"]`), names through `crate::` or `super::`.
fn modules_used(module_path: &[String], source: &str) -> BTreeSet<String> {
    let code = code_only(source);
    let mut used = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        if is_word_boundary(&code, at) {
            used.extend(first_segments(&code[at + "crate::".len()..]));
        }
    }
    for (at, _) in code.match_indices("super::") {
        if !is_word_boundary(&code, at) || code[..at].ends_with("super::") {
            continue;
        }
        let mut rest = &code[at..];
        let mut path = module_path.to_vec();
        while let Some(after) = rest.strip_prefix("super::") {
            path.pop();
            rest = after;
        }
        match path.first() {
            // Still inside the file's own top-level module.
            Some(top) => {
                used.insert(top.clone());
            }
            None => used.extend(first_segments(rest)),
        }
    }
    used
}

/// Every violation in one file, as readable lines.
fn violations(module_path: &[String], source: &str) -> Vec<String> {
    let Some(layer) = module_path.first() else {
        return Vec::new(); // lib.rs: the root wires the layers together.
    };
    let Some(may_use) = allowed(layer) else {
        return vec![format!(
            "module `{layer}` is in no layer: add it to LAYERS in native/tests/layers.rs and to DEVELOPERS.md"
        )];
    };
    modules_used(module_path, source)
        .into_iter()
        .filter(|used| used != layer && !may_use.contains(&used.as_str()))
        .map(|used| format!("`{layer}` uses `{used}`, which is not below it"))
        .collect()
}

fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read source dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
}

/// `src/node/dispatch.rs` → `["node", "dispatch"]`; `src/node/mod.rs` → `["node"]`.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).expect("file under src");
    let mut path: Vec<String> = relative
        .iter()
        .map(|part| part.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    if path.last().is_some_and(|last| last == "mod" || last == "lib") {
        path.pop();
    }
    path
}

#[test]
fn no_module_uses_a_layer_above_its_own() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in &files {
        let path = module_path(&src, file);
        if path.first().is_some_and(|top| top == "bin" || top == "bench") {
            continue;
        }
        let source = std::fs::read_to_string(file).expect("read source");
        checked += 1;
        for problem in violations(&path, &source) {
            problems.push(format!("{}: {problem}", file.display()));
        }
    }
    assert!(
        checked > 50,
        "only {checked} files checked: is src/ where it should be?"
    );
    assert!(problems.is_empty(), "upward imports:\n{}", problems.join("\n"));
}

#[test]
fn the_bench_uses_only_the_client() {
    let bench = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/bench");
    let mut files = Vec::new();
    rust_files(&bench, &mut files);
    assert!(!files.is_empty());
    for file in files {
        let code = code_only(&std::fs::read_to_string(&file).expect("read source"));
        for (at, _) in code.match_indices("canhazdb::") {
            if !is_word_boundary(&code, at) {
                continue;
            }
            for used in first_segments(&code[at + "canhazdb::".len()..]) {
                assert!(
                    BENCH_MAY_USE.contains(&used.as_str()),
                    "{}: the bench uses `canhazdb::{used}`",
                    file.display()
                );
            }
        }
    }
}

/// The checker itself catches what it is there to catch.
#[test]
fn upward_imports_are_found_in_every_spelling() {
    let path = |parts: &[&str]| parts.iter().map(|p| p.to_string()).collect::<Vec<_>>();
    let storage = path(&["storage", "read"]);
    assert_eq!(violations(&storage, "use crate::server::Session;").len(), 1);
    assert_eq!(
        violations(
            &storage,
            "use crate::{cluster::Cluster, node::{Node, NodeConfig}};"
        )
        .len(),
        2
    );
    assert_eq!(violations(&storage, "fn f(x: crate::node::Node) {}").len(), 1);
    // From storage/mod.rs, `super::` is the crate root.
    assert_eq!(violations(&path(&["storage"]), "use super::node::Node;").len(), 1);
    assert_eq!(violations(&storage, "use super::super::node::Node;").len(), 1);
    // Downward, inside the layer, and in comments: fine.
    let node = path(&["node", "dispatch"]);
    assert!(violations(&node, "use crate::cluster::coordinator;\nuse super::system;").is_empty());
    assert!(violations(&storage, "// see crate::server::Session\nuse super::codec;").is_empty());
    // Same height is not below.
    assert_eq!(
        violations(&path(&["client"]), "use crate::storage::Store;").len(),
        1
    );
    assert_eq!(
        violations(&path(&["server"]), "use crate::storage::Store;").len(),
        1
    );
    // A new top-level module must be placed in a layer.
    assert_eq!(violations(&path(&["metrics"]), "").len(), 1);
}
