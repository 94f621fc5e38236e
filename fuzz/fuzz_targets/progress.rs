#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| swiftdup_fuzz::progress(data));
