//! The layout promises of the workspace, checked: an embedder who turns the
//! default features off links no tool, terminal or benchmark code; and no
//! source file imports a file that (through any chain) imports it back.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

const WORKSPACE: &str = env!("CARGO_MANIFEST_DIR");

/// Crates that belong to the tools and the benchmark runs, never to an
/// embedder's build.
const TOOL_CRATES: [&str; 7] = [
    "clap",
    "indicatif",
    "plotters",
    "tempfile",
    "signal-hook",
    "cedar-bench",
    "utility-mode",
];

#[test]
fn without_default_features_the_facade_links_no_tool_or_benchmark_crate() {
    let output = Command::new(env!("CARGO"))
        .current_dir(WORKSPACE)
        .args([
            "tree",
            "--offline",
            "-p",
            "cedar-vm",
            "--no-default-features",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tree = String::from_utf8_lossy(&output.stdout);
    let names: BTreeSet<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(names.contains("vm-core"), "the VM is linked: {names:?}");
    for tool in TOOL_CRATES {
        assert!(
            !names.contains(tool),
            "{tool} is in an embedder's build: {names:?}"
        );
    }
    // And with the default features the binary's crates are there: the
    // check above can tell the two apart.
    let full = Command::new(env!("CARGO"))
        .current_dir(WORKSPACE)
        .args([
            "tree",
            "--offline",
            "-p",
            "cedar-vm",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .output()
        .expect("cargo runs");
    let full = String::from_utf8_lossy(&full.stdout);
    assert!(full.lines().any(|l| l.starts_with("clap ")), "{full}");
}

/// A module path (`["fault", "queue"]`) → its file, for the crate at `src`.
fn module_file(src: &Path, path: &[String]) -> Option<PathBuf> {
    if path.is_empty() {
        return Some(src.join("lib.rs"));
    }
    let joined: PathBuf = path.iter().collect();
    let flat = src.join(&joined).with_extension("rs");
    let folder = src.join(&joined).join("mod.rs");
    [flat, folder].into_iter().find(|p| p.exists())
}

/// The module path of `file` in the crate at `src`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().expect("a file name");
    if last != "mod.rs" && last != "lib.rs" {
        parts.push(last.trim_end_matches(".rs").to_string());
    }
    parts
}

/// The names the crate root re-exports (`pub use a::b::{X, Y};` in
/// `lib.rs`) → the module path they come from.
fn root_reexports(src: &Path) -> BTreeMap<String, Vec<String>> {
    let text = std::fs::read_to_string(src.join("lib.rs")).unwrap_or_default();
    let mut names = BTreeMap::new();
    for statement in text.split(';') {
        let statement = statement.trim();
        let Some(path) = statement.strip_prefix("pub use ") else {
            continue;
        };
        let (module, items) = match path.find("::{") {
            Some(i) => (&path[..i], path[i + 3..].trim_end_matches('}')),
            None => match path.rfind("::") {
                Some(i) => (&path[..i], &path[i + 2..]),
                None => continue,
            },
        };
        let module: Vec<String> = module.split("::").map(str::to_string).collect();
        for item in items.split(',') {
            let name = item.split(" as ").last().unwrap_or("").trim();
            if !name.is_empty() {
                names.insert(name.to_string(), module.clone());
            }
        }
    }
    names
}

/// The identifiers of a path written after `crate::`/`super::`/a module
/// name: one path, or several in `{…}` (one level).
fn path_tails(rest: &str) -> Vec<Vec<String>> {
    let ident = |s: &str| -> String {
        s.trim()
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .next()
            .unwrap_or("")
            .to_string()
    };
    let mut segments = Vec::new();
    let mut at = rest;
    loop {
        if let Some(group) = at.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            return group[..end]
                .split(',')
                .map(|item| {
                    let mut path = segments.clone();
                    path.extend(item.split("::").map(ident).filter(|s| !s.is_empty()));
                    path
                })
                .collect();
        }
        let name = ident(at);
        if name.is_empty() {
            return vec![segments];
        }
        at = &at[at.find(&name).unwrap_or(0) + name.len()..];
        segments.push(name);
        match at.strip_prefix("::") {
            Some(next) => at = next,
            None => return vec![segments],
        }
    }
}

/// Every path in `text` that names a module of this crate — `crate::…`,
/// `super::…`, or (in a `use`) a submodule of this file — resolved to the
/// deepest module that has a file, names re-exported by the crate root
/// resolved to the module they come from.
fn imported_files(src: &Path, file: &Path, text: &str) -> BTreeSet<PathBuf> {
    let here = module_of(src, file);
    let reexports = root_reexports(src);
    let mut found = BTreeSet::new();
    // Unit tests at the end of a file (`#[cfg(test)] mod tests`) import
    // their parent with `super::*`; they are not part of the module graph.
    let code: String = text
        .lines()
        .take_while(|l| l.trim() != "#[cfg(test)]")
        .filter(|l| {
            let t = l.trim_start();
            !t.starts_with("//") && !t.starts_with("mod ") && !t.starts_with("pub mod ")
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut starts: Vec<(usize, Vec<String>)> = Vec::new();
    // A keyword that ends another identifier (`my_crate::`) is not one.
    let standalone = |at: usize| {
        code[..at]
            .chars()
            .last()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == ':'))
    };
    for (at, _) in code
        .match_indices("crate::")
        .filter(|&(at, _)| standalone(at))
    {
        starts.push((at + "crate::".len(), Vec::new()));
    }
    for (at, _) in code
        .match_indices("super::")
        .filter(|&(at, _)| standalone(at))
    {
        // `super` is the module above this file's module.
        let mut base = here.clone();
        base.pop();
        starts.push((at + "super::".len(), base));
    }
    // `use child::…` in a module with submodules.
    for (at, _) in code.match_indices("use ").filter(|&(at, _)| standalone(at)) {
        let rest = &code[at + 4..];
        let first: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let mut child = here.clone();
        child.push(first.clone());
        if !first.is_empty()
            && rest[first.len()..].starts_with("::")
            && module_file(src, &child).is_some()
        {
            starts.push((at + 4, here.clone()));
        }
    }
    for (start, base) in starts {
        for tail in path_tails(&code[start..]) {
            let mut path = base.clone();
            let mut rest = tail.as_slice();
            while let Some(first) = rest.first() {
                if first == "super" {
                    path.pop();
                    rest = &rest[1..];
                } else {
                    break;
                }
            }
            for segment in rest {
                let mut deeper = path.clone();
                deeper.push(segment.clone());
                if module_file(src, &deeper).is_some() {
                    path = deeper;
                } else {
                    if path.is_empty()
                        && let Some(module) = reexports.get(segment)
                    {
                        path = module.clone();
                    }
                    break;
                }
            }
            if let Some(target) = module_file(src, &path)
                && target != file
            {
                found.insert(target);
            }
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source folder") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The import graph of the crate at `src`: file → files it imports.
fn import_graph(src: &Path) -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files
        .into_iter()
        .filter(|f| !f.ends_with("main.rs"))
        .map(|f| {
            let text = std::fs::read_to_string(&f).expect("readable source");
            let imports = imported_files(src, &f, &text);
            (f, imports)
        })
        .collect()
}

/// A cycle in `graph`, if there is one (as the files along it).
fn find_cycle(graph: &BTreeMap<PathBuf, BTreeSet<PathBuf>>) -> Option<Vec<PathBuf>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        node: &PathBuf,
        graph: &BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        marks: &mut BTreeMap<PathBuf, Mark>,
        stack: &mut Vec<PathBuf>,
    ) -> Option<Vec<PathBuf>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let from = stack.iter().position(|n| n == node).expect("on the stack");
                let mut cycle = stack[from..].to_vec();
                cycle.push(node.clone());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(node.clone(), Mark::Open);
        stack.push(node.clone());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, marks, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        marks.insert(node.clone(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, graph, &mut marks, &mut Vec::new()) {
            return Some(cycle);
        }
    }
    None
}

#[test]
fn no_source_file_imports_a_file_that_imports_it() {
    let root = Path::new(WORKSPACE);
    for krate in [
        "src",
        "disk-channel/src",
        "runtable/src",
        "vm-core/src",
        "utility-mode/src",
        "bench/src",
    ] {
        let src = root.join(krate);
        let graph = import_graph(&src);
        assert!(graph.len() > 1, "{krate}: no files found");
        if let Some(cycle) = find_cycle(&graph) {
            let names: Vec<String> = cycle
                .iter()
                .map(|p| p.strip_prefix(root).unwrap_or(p).display().to_string())
                .collect();
            panic!("import cycle in {krate}: {}", names.join(" → "));
        }
    }
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    // The check above can fail: two files that import each other are found.
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::write(src.join("lib.rs"), "mod a;\nmod b;\n").unwrap();
    std::fs::write(src.join("a.rs"), "use crate::b::B;\npub struct A;\n").unwrap();
    std::fs::write(src.join("b.rs"), "use crate::a::A;\npub struct B;\n").unwrap();
    let cycle = find_cycle(&import_graph(src)).expect("a cycle");
    assert_eq!(cycle.len(), 3, "{cycle:?}");
    // Through `super::` from a flat file in a folder, a child's `use` in
    // `mod.rs`, and a name the crate root re-exports.
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir(src.join("f")).unwrap();
    std::fs::write(src.join("lib.rs"), "mod f;\nmod g;\npub use g::G;\n").unwrap();
    std::fs::write(src.join("f/mod.rs"), "mod q;\nuse q::Q;\npub struct S;\n").unwrap();
    std::fs::write(src.join("f/q.rs"), "use super::S;\npub struct Q;\n").unwrap();
    std::fs::write(src.join("g.rs"), "pub struct G;\n").unwrap();
    let graph = import_graph(src);
    let cycle = find_cycle(&graph).expect("mod.rs and q.rs import each other");
    assert_eq!(cycle.len(), 3, "{cycle:?}");
    std::fs::write(src.join("f/q.rs"), "use crate::{G};\npub struct Q;\n").unwrap();
    let graph = import_graph(src);
    assert!(find_cycle(&graph).is_none());
    let q_imports = &graph[&src.join("f/q.rs")];
    assert!(q_imports.contains(&src.join("g.rs")), "{q_imports:?}");
}

/// Functions in `text` that take the monitor as a parameter and whose doc
/// comment does not open with their locking contract ("Monitor held").
fn monitor_functions_without_contract(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut missing = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let is_fn = trimmed.starts_with("fn ")
            || trimmed.starts_with("pub fn ")
            || trimmed.starts_with("pub(crate) fn ")
            || trimmed.starts_with("pub(super) fn ");
        if !is_fn {
            continue;
        }
        let mut signature = String::new();
        for l in &lines[i..] {
            signature.push_str(l);
            if l.contains('{') || l.trim_end().ends_with(';') {
                break;
            }
        }
        let open = signature.find('(').unwrap_or(0);
        let close = signature.find("->").unwrap_or(signature.len());
        let params = &signature[open..close.max(open)];
        let takes_monitor = params.contains(": &Monitor")
            || params.contains(": &mut Monitor")
            || params.contains("MonitorGuard<");
        if !takes_monitor {
            continue;
        }
        let mut k = i;
        while k > 0 && lines[k - 1].trim_start().starts_with("#[") {
            k -= 1;
        }
        let mut first = k;
        while first > 0 && lines[first - 1].trim_start().starts_with("///") {
            first -= 1;
        }
        let documented = first < k && lines[first].to_lowercase().contains("monitor held");
        if !documented {
            missing.push(trimmed.to_string());
        }
    }
    missing
}

#[test]
fn every_function_that_takes_the_monitor_opens_its_doc_with_the_locking_contract() {
    let src = Path::new(WORKSPACE).join("vm-core/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut checked = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable source");
        checked += text.matches(": &mut Monitor").count() + text.matches(": &Monitor").count();
        let missing = monitor_functions_without_contract(&text);
        assert!(missing.is_empty(), "{}: {missing:#?}", file.display());
    }
    assert!(
        checked > 5,
        "found only {checked} functions that take the monitor"
    );
    // The check can fail.
    let bad = "    /// Does a thing.\n    fn thing(&self, monitor: &mut Monitor) {}\n";
    assert_eq!(monitor_functions_without_contract(bad).len(), 1);
}
