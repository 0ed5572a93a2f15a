#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| camgate_fuzz::stun_username(data));
