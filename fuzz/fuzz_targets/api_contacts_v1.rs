//! API document 000 contacts v1: arbitrary method, path tail, query and body under its mounts,
//! sent to the real actix App over in-memory ports. Never a 5xx, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

const PREFIXES: &[&str] = &["/api/v1/contact"];

fuzz_target!(|data: &[u8]| kith_fuzz::run_api(data, PREFIXES));
