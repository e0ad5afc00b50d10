//! Any consumer group's committed offsets, asked through librdkafka's admin API
//! (`rd_kafka_ListConsumerGroupOffsets`: one OffsetFetch request to the group's coordinator).
//! Unlike `Consumer::committed_offsets`, which reads the offsets of the client's own `group.id`,
//! it takes the group as an argument, so one client per cluster serves every pipeline on it.
//! rdkafka 0.39 has no safe wrapper for this call; this is the one unsafe block of the operator.

use std::{
    collections::HashMap,
    ffi::{CStr, CString, c_char, c_int},
    time::Duration,
};

use rdkafka::{ClientContext, bindings as rd, client::Client};

/// `RD_KAFKA_OFFSET_INVALID`: the group has committed nothing for the partition.
const NO_OFFSET: i64 = -1001;

/// A partition's committed offset (`None`: nothing committed) and the metadata committed with
/// it (empty when none; the archivers write their last commit there).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Committed {
    pub offset: Option<i64>,
    pub metadata: String,
}

/// The committed offset of each of `partitions` of `topic` for `group`, asked through `client`
/// (any consumer or producer) with a deadline of `timeout`.
pub fn committed<C: ClientContext>(
    client: &Client<C>,
    group: &str,
    topic: &str,
    partitions: &[i32],
    timeout: Duration,
) -> Result<HashMap<i32, Committed>, String> {
    let group_c = CString::new(group).map_err(|_| "group id contains NUL".to_owned())?;
    let topic_c = CString::new(topic).map_err(|_| "topic contains NUL".to_owned())?;
    let timeout_ms = c_int::try_from(timeout.as_millis()).unwrap_or(c_int::MAX);
    // Alive for the whole call: `client` is borrowed across it.
    let rk = client.native_ptr();
    // SAFETY: every object made here is destroyed here, on every path; librdkafka copies the
    // request and the partition list, and the result lives until the event is destroyed. A
    // temporary queue that is destroyed before its answer arrives is reference-counted by the
    // pending request, which librdkafka ends at the request timeout set below.
    unsafe {
        let tpl = rd::rd_kafka_topic_partition_list_new(partitions.len() as c_int);
        for p in partitions {
            rd::rd_kafka_topic_partition_list_add(tpl, topic_c.as_ptr(), *p);
        }
        let mut request = rd::rd_kafka_ListConsumerGroupOffsets_new(group_c.as_ptr(), tpl);
        rd::rd_kafka_topic_partition_list_destroy(tpl);

        let options = rd::rd_kafka_AdminOptions_new(
            rk,
            rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS,
        );
        let mut errstr = [0 as c_char; 256];
        rd::rd_kafka_AdminOptions_set_request_timeout(
            options,
            timeout_ms,
            errstr.as_mut_ptr(),
            errstr.len(),
        );
        let queue = rd::rd_kafka_queue_new(rk);
        rd::rd_kafka_ListConsumerGroupOffsets(rk, &mut request, 1, options, queue);
        rd::rd_kafka_ListConsumerGroupOffsets_destroy(request);
        rd::rd_kafka_AdminOptions_destroy(options);

        let event = rd::rd_kafka_queue_poll(queue, timeout_ms);
        rd::rd_kafka_queue_destroy(queue);
        if event.is_null() {
            return Err(format!("committed offsets: no answer within {timeout:?}"));
        }
        let out = read_result(event, topic);
        rd::rd_kafka_event_destroy(event);
        out
    }
}

/// The offsets in a ListConsumerGroupOffsets result event.
///
/// # Safety
/// `event` is a live event from [`committed`]'s queue.
unsafe fn read_result(
    event: *mut rd::rd_kafka_event_t,
    topic: &str,
) -> Result<HashMap<i32, Committed>, String> {
    unsafe {
        if rd::rd_kafka_event_error(event) != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            return Err(format!(
                "committed offsets: {}",
                text(rd::rd_kafka_event_error_string(event))
            ));
        }
        let result = rd::rd_kafka_event_ListConsumerGroupOffsets_result(event);
        if result.is_null() {
            return Err("committed offsets: unexpected answer".to_owned());
        }
        let mut count = 0usize;
        let groups = rd::rd_kafka_ListConsumerGroupOffsets_result_groups(result, &mut count);
        if count != 1 || groups.is_null() {
            return Err(format!("committed offsets: {count} groups in the answer"));
        }
        let group = *groups;
        let error = rd::rd_kafka_group_result_error(group);
        if !error.is_null() {
            return Err(format!(
                "committed offsets: {}",
                text(rd::rd_kafka_error_string(error))
            ));
        }
        let list = rd::rd_kafka_group_result_partitions(group);
        if list.is_null() {
            return Ok(HashMap::new());
        }
        let list = &*list;
        let mut out = HashMap::new();
        for i in 0..usize::try_from(list.cnt).unwrap_or(0) {
            let e = &*list.elems.add(i);
            if text(e.topic) != topic {
                continue;
            }
            if e.err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                return Err(format!(
                    "committed offset of partition {}: {}",
                    e.partition,
                    text(rd::rd_kafka_err2str(e.err))
                ));
            }
            let metadata = if e.metadata.is_null() || e.metadata_size == 0 {
                String::new()
            } else {
                let bytes = std::slice::from_raw_parts(e.metadata as *const u8, e.metadata_size);
                String::from_utf8_lossy(bytes).into_owned()
            };
            out.insert(
                e.partition,
                Committed {
                    offset: (e.offset != NO_OFFSET).then_some(e.offset),
                    metadata,
                },
            );
        }
        Ok(out)
    }
}

/// A C string owned by librdkafka, copied.
///
/// # Safety
/// `p` is null or a NUL-terminated string alive for the call.
unsafe fn text(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}
