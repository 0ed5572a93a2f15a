//! Replaying fuzz inputs in a plain `cargo test`, shared by `core/tests/fuzz_regressions.rs`
//! and `server/tests/fuzz_regressions.rs` (both include this file with `#[path]`).
//!
//! For a target, every file in `fuzz/seeds/<target>/` (committed), `fuzz/corpus/<target>/` and
//! `fuzz/artifacts/<target>/` (both local, left by fuzzing runs) is fed to its harness. A crash
//! file that cargo-fuzz leaves in `fuzz/artifacts/` therefore fails the test until it is fixed.

use std::path::{Path, PathBuf};

/// `fuzz/`, seen from the including crate (a direct child of the workspace root).
pub fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// Input files of one target, sorted; missing directories count as empty.
fn inputs(target: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["seeds", "corpus", "artifacts"] {
        let Ok(entries) = std::fs::read_dir(fuzz_dir().join(dir).join(target)) else {
            continue;
        };
        files.extend(
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file() && p.file_name().is_none_or(|n| n != ".keep")),
        );
    }
    files.sort();
    files
}

/// A fuzz harness by its target name.
pub type Target<'a> = (&'a str, fn(&[u8]));

/// Feeds every input of `target` to its harness in `targets`; returns how many there were.
pub fn replay(target: &str, targets: &[Target<'_>]) -> usize {
    let (_, run) = targets
        .iter()
        .find(|(name, _)| *name == target)
        .expect("known target");
    let files = inputs(target);
    for f in &files {
        // A running fuzzer replaces corpus files as it reduces them.
        let Ok(data) = std::fs::read(f) else {
            continue;
        };
        let res = std::panic::catch_unwind(|| run(&data));
        assert!(
            res.is_ok(),
            "{target}: {} fails (see the panic above)",
            f.display()
        );
    }
    files.len()
}
