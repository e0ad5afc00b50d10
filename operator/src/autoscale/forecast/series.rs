//! A pipeline's arrival history in fixed buckets (bucket k covers [k·step, (k+1)·step) on the
//! caller's clock), bounded to a number of buckets. Filled one sample at a time (the
//! simulator, the evaluations) or from a Prometheus range query whose points are the means of
//! the buckets they end. A bucket without data is NaN (the fit interpolates it). Pure.

use std::collections::VecDeque;

/// The arrival history in buckets.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    step: f64,
    capacity: usize,
    /// The index of `values[0]`.
    first: i64,
    values: VecDeque<f64>,
    /// The bucket being filled: index, sum, samples.
    open: Option<(i64, f64, u32)>,
}

impl Series {
    /// An empty history of buckets of `step` seconds, at most `capacity` of them.
    pub fn new(step: f64, capacity: usize) -> Self {
        Series {
            step: step.max(1.0),
            capacity: capacity.max(1),
            first: 0,
            values: VecDeque::new(),
            open: None,
        }
    }

    pub fn step(&self) -> f64 {
        self.step
    }

    fn index(&self, t: f64) -> i64 {
        (t / self.step).floor() as i64
    }

    /// Adds a sample at `t`. Returns the bucket it closed, as (start, mean), when the sample
    /// is the first of a later bucket. Samples older than the open bucket are dropped.
    pub fn push(&mut self, t: f64, value: f64) -> Option<(f64, f64)> {
        if !value.is_finite() {
            return None;
        }
        let k = self.index(t);
        match self.open {
            Some((open, sum, n)) if open == k => {
                self.open = Some((k, sum + value, n + 1));
                None
            }
            Some((open, _, _)) if k < open => None,
            Some((open, sum, n)) => {
                let mean = sum / f64::from(n);
                self.set(open, mean);
                self.open = Some((k, value, 1));
                Some((open as f64 * self.step, mean))
            }
            None => {
                self.open = Some((k, value, 1));
                None
            }
        }
    }

    /// Sets complete buckets from points at bucket ends (a range query evaluated every `step`
    /// seconds, each point the mean of the bucket it ends). Returns the buckets that had no
    /// value before, as (start, mean), oldest first.
    pub fn insert_bucket_ends(&mut self, points: &[(f64, f64)]) -> Vec<(f64, f64)> {
        let mut new = Vec::new();
        for &(t, v) in points {
            if !v.is_finite() {
                continue;
            }
            let k = (t / self.step).round() as i64 - 1;
            if self.get(k).is_none() {
                new.push((k as f64 * self.step, v));
            }
            self.set(k, v);
        }
        new
    }

    /// The mean of bucket `k`, if known.
    pub fn get(&self, k: i64) -> Option<f64> {
        let i = usize::try_from(k - self.first).ok()?;
        self.values.get(i).copied().filter(|v| v.is_finite())
    }

    fn set(&mut self, k: i64, v: f64) {
        if self.values.is_empty() {
            self.first = k;
        }
        if k < self.first {
            // Older than what is kept: prepend only while within the capacity.
            let room = self.capacity.saturating_sub(self.values.len()) as i64;
            if self.first - k > room {
                return;
            }
            for _ in k..self.first {
                self.values.push_front(f64::NAN);
            }
            self.first = k;
        }
        let i = (k - self.first) as usize;
        while self.values.len() <= i {
            self.values.push_back(f64::NAN);
        }
        self.values[i] = v;
        while self.values.len() > self.capacity {
            self.values.pop_front();
            self.first += 1;
        }
    }

    /// The complete buckets, oldest first, from the first known one (NaN where unknown).
    pub fn values(&self) -> Vec<f64> {
        let skip = self
            .values
            .iter()
            .position(|v| v.is_finite())
            .unwrap_or(self.values.len());
        self.values.iter().skip(skip).copied().collect()
    }

    /// When the last complete bucket ends (the start of the first bucket a forecast covers).
    pub fn end(&self) -> f64 {
        (self.first + self.values.len() as i64) as f64 * self.step
    }

    /// Seconds from the first known bucket to the end of the last complete one.
    pub fn known_seconds(&self) -> f64 {
        self.values().len() as f64 * self.step
    }

    /// Buckets kept (for the bound on memory).
    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_close_buckets_with_their_mean() {
        let mut s = Series::new(10.0, 100);
        assert_eq!(s.push(0.0, 1.0), None);
        assert_eq!(s.push(5.0, 3.0), None);
        assert_eq!(s.push(10.0, 7.0), Some((0.0, 2.0)));
        // A gap: the buckets between are unknown.
        assert_eq!(s.push(40.0, 1.0), Some((10.0, 7.0)));
        assert_eq!(s.values().len(), 2);
        assert_eq!(s.end(), 20.0);
        assert_eq!(s.push(50.0, 1.0), Some((40.0, 1.0)));
        let v = s.values();
        assert_eq!(v.len(), 5);
        assert!(v[2].is_nan() && v[3].is_nan());
        assert_eq!(s.known_seconds(), 50.0);
    }

    #[test]
    fn the_history_is_bounded() {
        let mut s = Series::new(1.0, 8);
        for t in 0..100 {
            s.push(f64::from(t), f64::from(t));
        }
        assert_eq!(s.len(), 8);
        assert_eq!(s.values().first(), Some(&91.0));
        assert_eq!(s.end(), 99.0);
    }

    #[test]
    fn range_points_fill_the_buckets_they_end_and_say_which_are_new() {
        let mut s = Series::new(300.0, 100);
        let new = s.insert_bucket_ends(&[(600.0, 5.0), (900.0, 6.0)]);
        assert_eq!(new, [(300.0, 5.0), (600.0, 6.0)]);
        assert_eq!(s.end(), 900.0);
        // A refresh that overlaps: only the later bucket is new.
        let new = s.insert_bucket_ends(&[(900.0, 6.5), (1200.0, 7.0)]);
        assert_eq!(new, [(900.0, 7.0)]);
        assert_eq!(s.get(2), Some(6.5));
        assert_eq!(s.values(), [5.0, 6.5, 7.0]);
    }
}
