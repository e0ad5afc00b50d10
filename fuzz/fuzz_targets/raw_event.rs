//! Any bytes as a Kafka message payload through the whole per-event path: an Avro record that
//! decodes with the schema, a filtered event, or a dead letter with a known reason; no panic.
#![no_main]

use std::cell::RefCell;

use impressions_worker_core::invariants::EventCheck;
use libfuzzer_sys::fuzz_target;

thread_local! {
    static CHECK: RefCell<EventCheck> = RefCell::new(EventCheck::new());
}

fuzz_target!(|payload: &[u8]| {
    CHECK.with_borrow_mut(|c| {
        c.check(payload);
    });
});
