#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| camgate_testkit::fuzz::viewer_token(data));
