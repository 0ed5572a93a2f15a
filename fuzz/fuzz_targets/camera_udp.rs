#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| camgate_testkit::fuzz::camera_udp(data));
