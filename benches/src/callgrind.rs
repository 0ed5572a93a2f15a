//! Instructions per delivered packet, independent of the box's load: with `BENCH_CALLGRIND=FILE`
//! the server runs under `valgrind --tool=callgrind --instr-atstart=no`, instrumentation is
//! turned on for the measured window only and the window's instruction count (Ir) read from the
//! dump.

use std::path::Path;
use std::process::{Command, Stdio};

/// Turns callgrind's instrumentation of the server on or off (`callgrind_control -i`).
pub fn instr(pid: u32, on: bool) {
    let _ = Command::new("callgrind_control")
        .args(["-i", if on { "on" } else { "off" }, &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Dumps the server's counters (`callgrind_control -d`) and returns the instructions (Ir) of the
/// newest dump next to `out` (callgrind numbers its dumps `out.N`).
pub fn dump(pid: u32, out: &str) -> Option<u64> {
    let _ = Command::new("callgrind_control")
        .args(["-d", &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let out = Path::new(out);
    let dir = out.parent().filter(|d| !d.as_os_str().is_empty())?;
    let name = out.file_name()?.to_string_lossy().into_owned();
    let newest = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&name))
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())?;
    let text = std::fs::read_to_string(newest.path()).ok()?;
    text.lines()
        .find_map(|l| {
            l.strip_prefix("summary:")
                .or_else(|| l.strip_prefix("totals:"))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}
