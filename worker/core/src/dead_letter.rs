//! Dead letters, shared by every program that writes them (the worker's rejected raw events,
//! the archiver's records it cannot archive): the header names, the reason's detail cut to a
//! bound, and a payload cut to the topic's limit with what the original was. Pure.

use sha2::{Digest, Sha256};

/// Header names of dead letters.
pub mod headers {
    pub const REASON: &str = "impressions.reject.reason";
    pub const DETAIL: &str = "impressions.reject.detail";
    pub const SOURCE_TOPIC: &str = "impressions.source.topic";
    pub const SOURCE_PARTITION: &str = "impressions.source.partition";
    pub const SOURCE_OFFSET: &str = "impressions.source.offset";
    /// Only on a dead letter whose payload was cut to `deadLetter.maxPayloadBytes`: the
    /// original payload's size in bytes (decimal)…
    pub const ORIGINAL_SIZE: &str = "impressions.payload.original.size";
    /// …and its SHA-256 (64 lower-case hex digits).
    pub const ORIGINAL_SHA256: &str = "impressions.payload.original.sha256";
}

/// The longest dead-letter detail header, in bytes (a parse error can quote the input).
pub const MAX_DETAIL_BYTES: usize = 1024;

/// Where an event came from.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
}

/// A cut dead-letter payload: what the original was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncated {
    pub original_size: usize,
    /// SHA-256 of the original payload, lower-case hex.
    pub sha256: String,
}

impl Truncated {
    /// The headers that say what the original payload was: its size and its SHA-256.
    pub fn headers(&self) -> [(&'static str, String); 2] {
        [
            (headers::ORIGINAL_SIZE, self.original_size.to_string()),
            (headers::ORIGINAL_SHA256, self.sha256.clone()),
        ]
    }
}

/// The payload a dead letter carries: the original bytes when they are at most `max` bytes,
/// else their first `max` bytes and what the original was. A dead letter is cut rather than
/// dropped, and cut before it is produced, so that neither the producer nor the broker refuses
/// it for its size.
pub fn dead_letter_payload(payload: &[u8], max: usize) -> (&[u8], Option<Truncated>) {
    if payload.len() <= max {
        return (payload, None);
    }
    let sha256 = Sha256::digest(payload)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (
        &payload[..max],
        Some(Truncated {
            original_size: payload.len(),
            sha256,
        }),
    )
}

/// A rejection's detail, cut to at most [`MAX_DETAIL_BYTES`] (on a character boundary) with
/// `…` appended when cut.
pub fn bounded_detail(mut detail: String) -> String {
    if detail.len() > MAX_DETAIL_BYTES {
        let mut end = MAX_DETAIL_BYTES - '…'.len_utf8();
        while !detail.is_char_boundary(end) {
            end -= 1;
        }
        detail.truncate(end);
        detail.push('…');
    }
    detail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_within_the_limit_is_kept_whole() {
        let p = vec![7u8; 100];
        for max in [100, 101, 1 << 20] {
            let (bytes, cut) = dead_letter_payload(&p, max);
            assert_eq!((bytes, cut), (&p[..], None));
        }
        assert_eq!(dead_letter_payload(b"", 1), (&b""[..], None));
    }

    #[test]
    fn a_larger_payload_is_cut_with_its_size_and_hash() {
        let (bytes, cut) = dead_letter_payload(b"abc", 2);
        assert_eq!(bytes, b"ab");
        assert_eq!(
            cut,
            Some(Truncated {
                original_size: 3,
                // SHA-256("abc"), FIPS 180-2 appendix B.1.
                sha256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".into(),
            })
        );
        let big: Vec<u8> = (0..2 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
        let (bytes, cut) = dead_letter_payload(&big, 256 * 1024);
        assert_eq!(bytes, &big[..256 * 1024], "the first bytes are kept");
        let cut = cut.unwrap();
        assert_eq!(cut.original_size, 2 * 1024 * 1024);
        assert_eq!(cut.sha256.len(), 64);
        assert!(
            cut.sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        // The hash is of the whole original: another tail, another hash.
        let mut other = big.clone();
        *other.last_mut().unwrap() ^= 1;
        assert_ne!(
            dead_letter_payload(&other, 256 * 1024).1.unwrap().sha256,
            cut.sha256
        );
    }

    #[test]
    fn a_long_detail_is_cut_on_a_character_boundary() {
        assert_eq!(bounded_detail("short".into()), "short");
        let exact = "x".repeat(MAX_DETAIL_BYTES);
        assert_eq!(bounded_detail(exact.clone()), exact);
        let long = "é".repeat(MAX_DETAIL_BYTES);
        let d = bounded_detail(long);
        assert!(d.len() <= MAX_DETAIL_BYTES, "{}", d.len());
        assert!(d.ends_with("é…"), "{d}");
    }
}
