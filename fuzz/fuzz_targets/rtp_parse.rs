#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| camgate_testkit::fuzz::rtp_parse(data));
