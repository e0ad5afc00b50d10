//! Any text as the worker's YAML config, its `#env KEY=VALUE` lines as environment overrides:
//! a validated config the worker can use, or an error naming a field; no panic.
#![no_main]

use impressions_worker_core::invariants::{check_config, config_input};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (yaml, env) = config_input(&text);
    check_config(yaml, &env);
});
