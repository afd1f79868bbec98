//! API document 004 SealTalk friendship: arbitrary method, path tail, query and body under its mounts,
//! sent to the real actix App over in-memory ports. Never a 5xx, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

const PREFIXES: &[&str] = &["/friendship"];

fuzz_target!(|data: &[u8]| kith_fuzz::run_api(data, PREFIXES));
