#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| towerkit_fuzz::cursor(data));
