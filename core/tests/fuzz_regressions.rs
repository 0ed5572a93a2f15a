//! Replays the fuzz corpora through the fuzz harnesses in a plain `cargo test`: no nightly, no
//! cargo-fuzz. See docs/FUZZING.md.
//!
//! For each target of `fuzz/src/lib.rs` (included below, the very code the fuzz binaries run),
//! every file in `fuzz/seeds/<target>/` (committed), `fuzz/corpus/<target>/` and
//! `fuzz/artifacts/<target>/` (both local, left by fuzzing runs) is fed to the harness. A crash
//! file that cargo-fuzz leaves in `fuzz/artifacts/` therefore fails this test until it is fixed.

#[path = "../../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod harness;

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
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
                .filter(|p| p.is_file() && !p.file_name().is_some_and(|n| n == ".keep")),
        );
    }
    files.sort();
    files
}

fn replay(target: &str) -> usize {
    let (_, run) = harness::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .expect("known target");
    let files = inputs(target);
    for f in &files {
        let data = std::fs::read(f).unwrap();
        let res = std::panic::catch_unwind(|| run(&data));
        assert!(
            res.is_ok(),
            "{target}: {} fails (see the panic above)",
            f.display()
        );
    }
    files.len()
}

macro_rules! replay_tests {
    ($($target:ident),* $(,)?) => {$(
        #[test]
        fn $target() {
            let n = replay(stringify!($target));
            assert!(n > 0, "no seeds for {}: fuzz/seeds/{} is empty", stringify!($target), stringify!($target));
        }
    )*};
}

replay_tests!(
    rtsp_framing,
    rtsp_client,
    camera_sdp,
    rtp_parse,
    h264_relay,
    h264_depacketize,
    signaling,
    rtsp_url,
);

#[test]
fn every_target_is_replayed() {
    let fuzz_bins = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    for (name, _) in harness::TARGETS {
        assert!(
            fuzz_bins.contains(&format!("name = \"{name}\"")),
            "{name} has no fuzz binary"
        );
    }
    assert_eq!(harness::TARGETS.len(), 8);
}
