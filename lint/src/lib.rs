//! Checks of the code's shape, run by `cargo nextest run -p ferro-lint`:
//!
//! - no module imports a module that imports it back, directly or through
//!   others ([`import_cycles`]); a parent and its child count as two
//!   modules, so `mod.rs` dispatching to a child that imports `super::X`
//!   back is a cycle too;
//! - no Rust file under a `src/` folder is longer than [`MAX_LINES`].
//!
//! The sources are read as text (comments, literals and `#[cfg(test)]`
//! items left out), which is enough for the paths this workspace writes.

pub mod modules;
pub mod source;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use modules::{Crate, ModPath, Reference};

/// The longest a source file under `src/` may be.
pub const MAX_LINES: usize = 500;

/// The workspace's root (this crate lives in `lint/`). Read when the tests
/// run (cargo and nextest set `CARGO_MANIFEST_DIR`), not only when this
/// crate was built: a target directory shared by two checkouts may keep a
/// build made in the other one.
pub fn workspace_root() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest.parent().expect("lint/ has a parent").to_path_buf()
}

/// Every package folder of the workspace (those with a `Cargo.toml` with a
/// `[package]`), `target` folders left out.
pub fn packages(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    walk(root, &mut |path| {
        if path.file_name().is_some_and(|n| n == "Cargo.toml")
            && std::fs::read_to_string(path).is_ok_and(|t| t.contains("[package]"))
        {
            out.push(path.parent().expect("a file has a folder").to_path_buf());
        }
    });
    out.sort();
    out
}

/// The crate roots of a package: its library, binaries, tests, benches and
/// examples.
pub fn crate_roots(package: &Path) -> Vec<PathBuf> {
    let mut roots = Vec::new();
    for file in ["src/lib.rs", "src/main.rs"] {
        let path = package.join(file);
        if path.exists() {
            roots.push(path);
        }
    }
    for dir in ["src/bin", "tests", "benches", "examples"] {
        let Ok(entries) = std::fs::read_dir(package.join(dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "rs") {
                roots.push(path);
            } else if path.join("main.rs").exists() {
                roots.push(path.join("main.rs"));
            }
        }
    }
    roots.sort();
    roots
}

/// A set of modules that import each other in a loop, with the references
/// that close it.
#[derive(Debug)]
pub struct Cycle {
    pub crate_root: PathBuf,
    pub modules: Vec<ModPath>,
    pub references: Vec<Reference>,
}

impl std::fmt::Display for Cycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{}: {} import each other:",
            self.crate_root.display(),
            self.modules.join(", ")
        )?;
        for r in &self.references {
            writeln!(
                f,
                "  {} -> {} ({}:{})",
                r.from,
                r.to,
                r.file.display(),
                r.line
            )?;
        }
        Ok(())
    }
}

/// The import cycles of the crate rooted at `root_file`: each strongly
/// connected group of two or more modules.
pub fn import_cycles(root_file: &Path) -> Vec<Cycle> {
    let krate = Crate::load(root_file);
    let references = krate.references();
    let mut edges: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for r in &references {
        edges.entry(&r.from).or_default().push(&r.to);
    }
    let nodes: Vec<&str> = krate.modules.keys().map(String::as_str).collect();
    strongly_connected(&nodes, &edges)
        .into_iter()
        .filter(|group| group.len() > 1)
        .map(|group| Cycle {
            crate_root: root_file.to_path_buf(),
            references: references
                .iter()
                .filter(|r| group.contains(&r.from.as_str()) && group.contains(&r.to.as_str()))
                .cloned()
                .collect(),
            modules: group.into_iter().map(str::to_owned).collect(),
        })
        .collect()
}

/// Tarjan's strongly connected components.
fn strongly_connected<'a>(
    nodes: &[&'a str],
    edges: &BTreeMap<&'a str, Vec<&'a str>>,
) -> Vec<Vec<&'a str>> {
    struct State<'a> {
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: std::collections::BTreeSet<&'a str>,
        groups: Vec<Vec<&'a str>>,
    }
    fn visit<'a>(v: &'a str, edges: &BTreeMap<&'a str, Vec<&'a str>>, s: &mut State<'a>) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for &w in edges.get(v).map(Vec::as_slice).unwrap_or_default() {
            if !s.index.contains_key(w) {
                visit(w, edges, s);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut group = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                group.push(w);
                if w == v {
                    break;
                }
            }
            group.sort_unstable();
            s.groups.push(group);
        }
    }
    let mut state = State {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: Default::default(),
        groups: Vec::new(),
    };
    for &v in nodes {
        if !state.index.contains_key(v) {
            visit(v, edges, &mut state);
        }
    }
    state.groups
}

/// Rust files under any `src/` folder of the workspace with more than
/// [`MAX_LINES`] lines, with their line counts.
pub fn long_files(root: &Path) -> Vec<(PathBuf, usize)> {
    let mut out = Vec::new();
    walk(root, &mut |path| {
        let in_src = path.components().any(|c| c.as_os_str() == "src");
        if in_src && path.extension().is_some_and(|e| e == "rs") {
            let lines = std::fs::read_to_string(path).map_or(0, |t| t.lines().count());
            if lines > MAX_LINES {
                out.push((path.to_path_buf(), lines));
            }
        }
    });
    out.sort();
    out
}

/// Calls `f` with every file under `dir`, skipping `target`, `.git` and
/// other hidden folders.
fn walk(dir: &Path, f: &mut dyn FnMut(&Path)) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') && name != "node_modules" {
                walk(&path, f);
            }
        } else {
            f(&path);
        }
    }
}
