#![no_main]
//! See wa_gateway::fuzzing::host_message.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| wa_gateway::fuzzing::host_message(data));
