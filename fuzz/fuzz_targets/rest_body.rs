#![no_main]

#[path = "../src/server.rs"]
#[allow(dead_code)]
mod server;

libfuzzer_sys::fuzz_target!(|data: &[u8]| server::rest_body(data));
