//! The workspace's own shape, and the checker on small crates made here.

use std::path::Path;

use ferro_lint::{MAX_LINES, crate_roots, import_cycles, long_files, packages, workspace_root};

#[test]
fn no_module_imports_a_module_that_imports_it_back() {
    let root = workspace_root();
    let mut found = Vec::new();
    let mut crates = 0;
    for package in packages(&root) {
        for crate_root in crate_roots(&package) {
            crates += 1;
            found.extend(import_cycles(&crate_root));
        }
    }
    assert!(
        crates > 20,
        "only {crates} crate roots found under {}",
        root.display()
    );
    let report: String = found.iter().map(ToString::to_string).collect();
    assert!(found.is_empty(), "import cycles:\n{report}");
}

#[test]
fn no_source_file_is_longer_than_the_limit() {
    let long = long_files(&workspace_root());
    assert!(
        long.is_empty(),
        "files under src/ over {MAX_LINES} lines: {long:?}"
    );
}

/// Writes a crate of `files` (path, text) into a fresh folder.
fn crate_of(files: &[(&str, &str)]) -> tempdir::Dir {
    let dir = tempdir::Dir::new();
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

#[test]
fn the_checker_finds_the_loops_it_is_for() {
    // Siblings: a dispatcher and a handler importing its context back.
    let siblings = crate_of(&[
        ("src/lib.rs", "mod handlers;\nmod snmp;\n"),
        (
            "src/handlers.rs",
            "pub struct Ctx;\npub fn run() { crate::snmp::get(); }\n",
        ),
        (
            "src/snmp.rs",
            "use crate::handlers::Ctx;\npub fn get() {}\n",
        ),
    ]);
    let cycles = import_cycles(&siblings.path().join("src/lib.rs"));
    assert_eq!(cycles.len(), 1, "{cycles:?}");
    assert_eq!(cycles[0].modules, ["crate::handlers", "crate::snmp"]);

    // Parent and child: the root uses a child that uses an item of the root
    // (through a re-export, a group and a relative path).
    let parent = crate_of(&[
        (
            "src/lib.rs",
            "pub mod jobs;\npub struct Events;\nfn run() { jobs::go(); }\n",
        ),
        (
            "src/jobs/mod.rs",
            "mod snmp;\npub fn go() { snmp::get() }\n",
        ),
        (
            "src/jobs/snmp.rs",
            "use crate::{Events};\npub fn get() {}\n",
        ),
    ]);
    let cycles = import_cycles(&parent.path().join("src/lib.rs"));
    assert_eq!(cycles.len(), 1, "{cycles:?}");
    assert_eq!(
        cycles[0].modules,
        ["crate", "crate::jobs", "crate::jobs::snmp"]
    );

    // The same shape without the loop: the context in a module of its own,
    // re-exported by the parent; comments and tests do not count.
    let clean = crate_of(&[
        (
            "src/lib.rs",
            "pub mod jobs;\npub mod events;\nfn run() { jobs::go(); }\n",
        ),
        ("src/events.rs", "pub struct Events; // crate::jobs\n"),
        (
            "src/jobs/mod.rs",
            "mod context;\nmod snmp;\npub use context::Ctx;\npub fn go() { snmp::get() }\n",
        ),
        (
            "src/jobs/context.rs",
            "pub struct Ctx(crate::events::Events);\n",
        ),
        (
            "src/jobs/snmp.rs",
            "use super::context::Ctx;\npub fn get() {}\n#[cfg(test)]\nmod tests { use crate::run; }\n",
        ),
    ]);
    let cycles = import_cycles(&clean.path().join("src/lib.rs"));
    assert!(cycles.is_empty(), "{cycles:?}");
}

#[test]
fn the_checker_counts_lines_under_src_only() {
    let long = "fn f() {}\n".repeat(MAX_LINES + 1);
    let dir = crate_of(&[
        ("src/big.rs", &long),
        ("tests/big.rs", &long),
        ("src/ok.rs", "fn f() {}\n"),
    ]);
    let found = long_files(dir.path());
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].0.ends_with(Path::new("src/big.rs")));
    assert_eq!(found[0].1, MAX_LINES + 1);
}

mod tempdir {
    /// A folder under the system's temporary folder, removed when dropped.
    pub struct Dir(std::path::PathBuf);

    impl Dir {
        pub fn new() -> Self {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let path = std::env::temp_dir().join(format!(
                "ferro-lint-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&path).unwrap();
            Self(path)
        }

        pub fn path(&self) -> &std::path::Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
