//! API document 002 address book v2: arbitrary method, path tail, query and body under its mounts,
//! sent to the real actix App over in-memory ports. Never a 5xx, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

const PREFIXES: &[&str] = &[
    "/api/v2/contact",
    "/api/v2/contacts",
    "/api/v2/tag",
    "/api/v2/tags",
    "/api/v2",
];

fuzz_target!(|data: &[u8]| kith_fuzz::run_api(data, PREFIXES));
