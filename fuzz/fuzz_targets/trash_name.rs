#![no_main]
//! See `lifecycle_domain::fuzz_checks::trash_name` for the input and the properties checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    lifecycle_domain::fuzz_checks::trash_name(data);
});
