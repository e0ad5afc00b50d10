//! When to hand buffered rows to the file writers and when to commit. Pure.
//!
//! Files roll by size inside the writers (`targetFileSizeBytes`); a commit closes every open
//! file, so commits also roll files by time. A commit is due once the oldest record taken since
//! the last commit has waited `commitIntervalSeconds`, or once the payload bytes taken reach
//! `maxPendingBytes`, whichever comes first.

use std::time::{Duration, Instant};

/// The thresholds, from the config.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RollPolicy {
    pub commit_interval: Duration,
    /// Rows buffered before they are encoded into the open files.
    pub flush_rows: usize,
    /// Payload bytes taken since the last commit that make a commit due early.
    pub max_pending_bytes: u64,
}

/// What has been taken since the last commit.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Pending {
    pub first_taken: Option<Instant>,
    pub buffered_rows: usize,
    pub records: u64,
    pub payload_bytes: u64,
}

impl Pending {
    pub fn took(&mut self, now: Instant, payload_bytes: usize) {
        self.first_taken.get_or_insert(now);
        self.buffered_rows += 1;
        self.records += 1;
        self.payload_bytes += payload_bytes as u64;
    }
}

impl RollPolicy {
    /// Whether the buffered rows should go to the file writers now.
    pub fn flush_due(&self, p: &Pending) -> bool {
        p.buffered_rows >= self.flush_rows
    }

    /// Whether a commit is due at `now`.
    pub fn commit_due(&self, p: &Pending, now: Instant) -> bool {
        match p.first_taken {
            None => false,
            Some(first) => {
                now.saturating_duration_since(first) >= self.commit_interval
                    || p.payload_bytes >= self.max_pending_bytes
            }
        }
    }

    /// How long to wait for more records before the commit falls due (None: nothing pending).
    pub fn until_due(&self, p: &Pending, now: Instant) -> Option<Duration> {
        p.first_taken
            .map(|first| (first + self.commit_interval).saturating_duration_since(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RollPolicy {
        RollPolicy {
            commit_interval: Duration::from_secs(60),
            flush_rows: 3,
            max_pending_bytes: 1000,
        }
    }

    #[test]
    fn nothing_pending_is_never_due() {
        let now = Instant::now();
        let p = Pending::default();
        assert!(!policy().commit_due(&p, now + Duration::from_secs(3600)));
        assert_eq!(policy().until_due(&p, now), None);
    }

    #[test]
    fn due_when_the_oldest_record_waited_the_interval() {
        let t0 = Instant::now();
        let mut p = Pending::default();
        p.took(t0, 10);
        p.took(t0 + Duration::from_secs(50), 10);
        assert!(!policy().commit_due(&p, t0 + Duration::from_secs(59)));
        assert!(policy().commit_due(&p, t0 + Duration::from_secs(60)));
        assert_eq!(
            policy().until_due(&p, t0 + Duration::from_secs(45)),
            Some(Duration::from_secs(15))
        );
    }

    #[test]
    fn due_early_on_bytes_and_flush_on_rows() {
        let t0 = Instant::now();
        let mut p = Pending::default();
        p.took(t0, 600);
        assert!(!policy().commit_due(&p, t0));
        p.took(t0, 400);
        assert!(policy().commit_due(&p, t0));
        assert!(!policy().flush_due(&p));
        p.took(t0, 1);
        assert!(policy().flush_due(&p));
    }
}
