//! Replaying fuzz inputs in a plain `cargo test`, for `core/tests/fuzz_regressions.rs` and
//! `server/tests/fuzz_regressions.rs`.
//!
//! For a target, every file in `fuzz/seeds/<target>/` (committed), `fuzz/corpus/<target>/` and
//! `fuzz/artifacts/<target>/` (both local, left by fuzzing runs) is fed to its harness. A crash
//! file that cargo-fuzz leaves in `fuzz/artifacts/` therefore fails the test until it is fixed.

use std::path::{Path, PathBuf};

/// `fuzz/` (beside `testkit/` at the workspace root).
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

/// Fails unless every target has a cargo-fuzz binary of its name in `fuzz/Cargo.toml`, and
/// there are `count` targets (a new harness must be added to the replay tests too).
pub fn check_binaries(targets: &[Target<'_>], count: usize) {
    let fuzz_bins = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    for (name, _) in targets {
        assert!(
            fuzz_bins.contains(&format!("name = \"{name}\"")),
            "{name} has no fuzz binary"
        );
    }
    assert_eq!(targets.len(), count);
}

/// One `#[test]` per target named: replays its inputs from `targets` (a `&[Target]`), and
/// fails when it has no seed.
#[macro_export]
macro_rules! replay_tests {
    ($targets:expr; $($target:ident),* $(,)?) => {$(
        #[test]
        fn $target() {
            let name = stringify!($target);
            let n = $crate::fuzz::replay::replay(name, $targets);
            assert!(n > 0, "no seeds for {name}: fuzz/seeds/{name} is empty");
        }
    )*};
}
