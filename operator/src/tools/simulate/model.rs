//! The simulated cluster: a topic with P partitions (optionally skewed), arrivals from a trace,
//! replicas with a capacity each (optional noise), pod start-up delay, a consumption pause when
//! the consumer group changes size, and observations that reach the autoscaler late and
//! imperfect: the committed lag never reads 0 in a running group (offsets are committed every
//! `commit_interval_seconds`), the busy fraction and processed rate come from Prometheus scrapes
//! (every `scrape_interval_seconds`, averaged over a rate window, with measurement noise).
//! Deterministic: the same config and trace give the same run (the noise is a seeded hash).

/// The whole group's consumption pause of one scaling action under the workers' default group
/// protocol (KIP-848): the backlog the action adds, in seconds of the group's arrival. Measured
/// on the local stack by `make bench-rebalance` (docs/results/bench-rebalance.json, run
/// `stack`, protocol Consumer, `lost_seconds`): medians 0.08 s (one worker leaving), 0.13 s
/// (one joining), 0.25 s (three leaving together) and 0.46 s (three joining); the largest,
/// rounded up. The classic protocol's were 0.16 to 0.84 s.
pub const MEASURED_REBALANCE_SECONDS: f64 = 0.5;

/// The pause of an eager (stop-the-world) rebalance, every partition stopped: assumed, not
/// measured (the workers never rebalance eagerly).
pub const EAGER_REBALANCE_SECONDS: f64 = 5.0;

/// The simulated world.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ModelConfig {
    pub partitions: i32,
    /// Partition weights ∝ 1/(i+1)^skew; 0 is uniform.
    pub skew: f64,
    /// Events/s one replica processes when fully busy.
    pub capacity: f64,
    /// Relative spread of capacity between replicas (deterministic per replica).
    pub capacity_noise: f64,
    /// Total capacity grows as replicas^exponent (1 = linear; below 1 models a shared
    /// bottleneck such as the sink or the broker).
    pub scaling_exponent: f64,
    pub startup_seconds: f64,
    /// The consumption pause when the group changes size under incremental rebalancing, as the
    /// whole group's: the backlog a change adds, in seconds of the group's arrival (only the
    /// moved partitions stop, each for longer).
    pub rebalance_seconds: f64,
    /// Incremental rebalancing (the workers' protocols); false: eager, every partition stops for
    /// [`EAGER_REBALANCE_SECONDS`].
    pub cooperative: bool,
    /// How late observations reach the autoscaler.
    pub metric_delay_seconds: f64,
    /// Seconds between the consumers' offset commits: the committed lag reads, on top of the
    /// true backlog, the events processed since the last commit (a uniform share of one
    /// interval's processing, different at every read).
    pub commit_interval_seconds: f64,
    /// Seconds between Prometheus scrapes: a rate over a window is only as fresh as the last
    /// scrape.
    pub scrape_interval_seconds: f64,
    /// Relative measurement noise of the busy fraction and the processed rate at each scrape
    /// (uniform in ±this).
    pub busy_noise: f64,
    /// Seed of the measurement noise.
    pub seed: u64,
    pub min_replicas: i32,
    pub max_replicas: i32,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            partitions: 64,
            skew: 0.0,
            capacity: 25_000.0,
            capacity_noise: 0.0,
            scaling_exponent: 1.0,
            startup_seconds: 20.0,
            rebalance_seconds: MEASURED_REBALANCE_SECONDS,
            cooperative: true,
            metric_delay_seconds: 10.0,
            commit_interval_seconds: 1.0,
            scrape_interval_seconds: 15.0,
            busy_noise: 0.05,
            seed: 1,
            min_replicas: 1,
            max_replicas: 64,
        }
    }
}

/// What the autoscaler can observe at one moment (delayed by the metric delay).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Observation {
    pub at: f64,
    /// The committed lag (the true backlog plus the events processed since the last commit).
    pub lag: f64,
    /// Partitions whose committed lag is above 0.
    pub partitions_with_lag: i32,
    /// Sum of the partitions' end offsets (its growth is the input rate).
    pub end_offsets: f64,
    pub processed_rate: f64,
    pub busy_fraction: f64,
    pub running: i32,
}

/// One simulated second, for reports and plots.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Tick {
    pub t: f64,
    pub arrival: f64,
    /// The true backlog (events not yet processed).
    pub lag: f64,
    /// The age of the oldest unprocessed event, in seconds (0 when nothing waits).
    pub lag_seconds: f64,
    pub replicas: i32,
}

/// The cluster's state.
#[derive(Debug, Clone)]
pub struct Cluster {
    cfg: ModelConfig,
    weights: Vec<f64>,
    lag: Vec<f64>,
    end_offsets: f64,
    running: i32,
    pending: Vec<f64>,
    paused_until: f64,
    /// Observations by second, for the metric delay.
    history: Vec<Observation>,
    /// Cumulative arrivals at the end of each second (for the age of the oldest event).
    arrived: Vec<f64>,
}

/// A deterministic noise in [-1, 1] for a seed and a key (splitmix64).
pub fn noise(seed: u64, key: u64) -> f64 {
    let mut z = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(key.wrapping_mul(0xBF58_476D_1CE4_E5B9));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
}

impl Cluster {
    pub fn new(cfg: ModelConfig, replicas: i32) -> Self {
        let p = cfg.partitions.max(1) as usize;
        let raw: Vec<f64> = (0..p)
            .map(|i| 1.0 / ((i + 1) as f64).powf(cfg.skew))
            .collect();
        let sum: f64 = raw.iter().sum();
        Cluster {
            weights: raw.iter().map(|w| w / sum).collect(),
            lag: vec![0.0; p],
            end_offsets: 0.0,
            running: replicas.clamp(cfg.min_replicas, cfg.max_replicas),
            pending: Vec::new(),
            paused_until: 0.0,
            history: Vec::new(),
            arrived: Vec::new(),
            cfg,
        }
    }

    /// Pods that exist (running or starting): what they cost.
    pub fn pods(&self) -> i32 {
        self.running + self.pending.len() as i32
    }

    pub fn running(&self) -> i32 {
        self.running
    }

    pub fn starting(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Asks for `desired` pods: new ones start after the start-up delay, surplus ones stop now.
    pub fn scale_to(&mut self, t: f64, desired: i32) {
        let desired = desired.clamp(self.cfg.min_replicas, self.cfg.max_replicas);
        let pods = self.pods();
        if desired > pods {
            self.pending.extend(std::iter::repeat_n(
                t + self.cfg.startup_seconds,
                (desired - pods) as usize,
            ));
        } else if desired < pods {
            let mut drop = pods - desired;
            while drop > 0 && self.pending.pop().is_some() {
                drop -= 1;
            }
            if drop > 0 {
                self.running -= drop;
                self.rebalance(t);
            }
        }
    }

    /// Stops all consumption for `seconds` (e.g. a job restart).
    pub fn pause(&mut self, t: f64, seconds: f64) {
        if seconds > 0.0 {
            self.paused_until = self.paused_until.max(t + seconds);
        }
    }

    fn rebalance(&mut self, t: f64) {
        let pause = if self.cfg.cooperative {
            self.cfg.rebalance_seconds
        } else {
            EAGER_REBALANCE_SECONDS
        };
        self.paused_until = self.paused_until.max(t + pause);
    }

    /// Advances one second with `arrival` events/s; returns the tick.
    pub fn step(&mut self, t: f64, arrival: f64) -> Tick {
        let ready = self.pending.iter().filter(|r| **r <= t).count();
        if ready > 0 {
            self.pending.retain(|r| *r > t);
            self.running += ready as i32;
            self.rebalance(t);
        }
        for (l, w) in self.lag.iter_mut().zip(&self.weights) {
            *l += arrival * w;
        }
        self.end_offsets += arrival;
        self.arrived.push(self.end_offsets);
        let mut processed = 0.0;
        let n = self.running.max(0) as usize;
        if t >= self.paused_until && n > 0 {
            let p = self.lag.len();
            let scale = (n as f64).powf(self.cfg.scaling_exponent - 1.0);
            for r in 0..n.min(p) {
                let noise = self.cfg.capacity_noise * (((r * 7919) % 13) as f64 / 6.0 - 1.0);
                let cap = self.cfg.capacity * (1.0 + noise) * scale;
                // A replica holds partitions r, r + n, r + 2n… and gives its capacity to them in
                // proportion to their backlog.
                let need: f64 = (r..p).step_by(n).map(|i| self.lag[i]).sum();
                if need <= 0.0 {
                    continue;
                }
                let done = cap.min(need);
                let keep = 1.0 - done / need;
                for i in (r..p).step_by(n) {
                    self.lag[i] *= keep;
                }
                processed += done;
            }
        }
        let running_capacity = self.running.max(1) as f64 * self.cfg.capacity;
        let lag: f64 = self.lag.iter().sum();
        // The committed lag: what was processed since the last commit is not committed yet.
        let uncommitted =
            processed * self.cfg.commit_interval_seconds * (noise(self.cfg.seed, t as u64) + 1.0)
                / 2.0;
        let with_lag = if arrival > 0.0 {
            self.lag.len() as i32
        } else {
            self.lag.iter().filter(|l| **l > 0.5).count() as i32
        };
        self.history.push(Observation {
            at: t,
            lag: lag + uncommitted,
            partitions_with_lag: with_lag,
            end_offsets: self.end_offsets,
            processed_rate: processed,
            busy_fraction: (processed / running_capacity).clamp(0.0, 1.0),
            running: self.running,
        });
        Tick {
            t,
            arrival,
            lag,
            lag_seconds: self.oldest_age(),
            replicas: self.pods(),
        }
    }

    /// The age in seconds of the oldest unprocessed event over all partitions: partition i
    /// received the share w_i of every second's arrivals, so its oldest event arrived in the
    /// first second whose cumulative arrivals exceed what it has processed.
    fn oldest_age(&self) -> f64 {
        let behind = self
            .lag
            .iter()
            .zip(&self.weights)
            .filter(|(l, w)| **w > 0.0 && **l > 1e-6)
            .map(|(l, w)| l / w)
            .fold(0.0, f64::max);
        if behind <= 1e-3 {
            return 0.0;
        }
        let now = self.arrived.len() - 1;
        let consumed = self.arrived[now] - behind;
        let first = self.arrived.partition_point(|a| *a <= consumed);
        (now - first.min(now)) as f64
    }

    /// What the autoscaler sees at `t`: Kafka's committed lag and end offsets of `t - delay`;
    /// the processed rate and busy fraction as Prometheus has them then: averaged over the
    /// `window` seconds before its last scrape, with the scrape's measurement noise.
    pub fn observe(&self, t: f64, window: f64) -> Option<Observation> {
        let at = t - self.cfg.metric_delay_seconds;
        let end = self.history.iter().rposition(|o| o.at <= at)?;
        let last = self.history[end];
        let scrape = self.cfg.scrape_interval_seconds.max(1.0);
        let scraped_at = (at / scrape).floor() * scrape;
        let s_end = self.history[..=end]
            .iter()
            .rposition(|o| o.at <= scraped_at)
            .unwrap_or(0);
        let start = self.history[..=s_end]
            .iter()
            .rposition(|o| o.at <= scraped_at - window)
            .unwrap_or(0);
        let span = &self.history[start..=s_end];
        let n = span.len() as f64;
        // The two counters are scraped separately: independent errors.
        let e =
            |key: u64| 1.0 + self.cfg.busy_noise * noise(self.cfg.seed ^ key, scraped_at as u64);
        Some(Observation {
            processed_rate: span.iter().map(|o| o.processed_rate).sum::<f64>() / n * e(0x5bd1),
            busy_fraction: (span.iter().map(|o| o.busy_fraction).sum::<f64>() / n * e(0x9e37))
                .clamp(0.0, 1.0),
            ..last
        })
    }

    pub fn partitions(&self) -> i32 {
        self.cfg.partitions
    }

    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn processed_in_one_second(cfg: ModelConfig, replicas: i32) -> f64 {
        let mut c = Cluster::new(cfg, replicas);
        c.step(0.0, 1e9);
        c.history.last().map_or(0.0, |o| o.processed_rate)
    }

    #[test]
    fn capacity_scales_linearly_or_along_the_curve() {
        let linear = ModelConfig {
            partitions: 8,
            ..Default::default()
        };
        let one = processed_in_one_second(linear.clone(), 1);
        let four = processed_in_one_second(linear.clone(), 4);
        assert!((four / one - 4.0).abs() < 1e-9, "{one} {four}");
        let curved = ModelConfig {
            scaling_exponent: 0.5,
            ..linear
        };
        let four = processed_in_one_second(curved, 4);
        assert!(
            (four / one - 2.0).abs() < 1e-9,
            "4 replicas at exponent 0.5 give 2× one: {four}"
        );
    }

    #[test]
    fn eager_rebalances_pause_longer_than_cooperative() {
        let mut eager = Cluster::new(
            ModelConfig {
                cooperative: false,
                ..Default::default()
            },
            2,
        );
        let mut coop = Cluster::new(ModelConfig::default(), 2);
        for c in [&mut eager, &mut coop] {
            c.scale_to(0.0, 1);
        }
        assert!(eager.paused_until > coop.paused_until);
    }

    #[test]
    fn committed_lag_never_reads_zero_while_events_flow() {
        let mut c = Cluster::new(
            ModelConfig {
                metric_delay_seconds: 0.0,
                ..Default::default()
            },
            10,
        );
        let mut seen = Vec::new();
        for t in 0..120 {
            let tick = c.step(f64::from(t), 100_000.0);
            assert_eq!(tick.lag_seconds, 0.0, "capacity suffices: nothing waits");
            seen.push(c.observe(f64::from(t), 0.0).unwrap().lag);
        }
        // Up to one commit interval of processed events, different at every read.
        assert!(seen.iter().all(|l| *l > 0.0 && *l <= 100_000.0), "{seen:?}");
        let spread = seen.iter().copied().fold(0.0, f64::max)
            - seen.iter().copied().fold(f64::MAX, f64::min);
        assert!(spread > 10_000.0, "noisy: {spread}");
    }

    #[test]
    fn lag_seconds_is_the_age_of_the_oldest_event_even_when_nothing_arrives() {
        let mut c = Cluster::new(ModelConfig::default(), 1);
        // 50k/s for 10 s against one replica of 25k/s: 250k behind, the oldest from second 5.
        for t in 0..10 {
            c.step(f64::from(t), 50_000.0);
        }
        let tick = c.step(10.0, 0.0);
        assert!((tick.lag - 225_000.0).abs() < 1.0, "{tick:?}");
        assert!((4.0..=6.0).contains(&tick.lag_seconds), "{tick:?}");
        // Nothing arrives: the age grows by a second a second, it does not explode.
        let later = c.step(11.0, 0.0);
        assert!(later.lag_seconds <= tick.lag_seconds + 1.0, "{later:?}");
    }

    #[test]
    fn the_busy_fraction_is_scraped_late_and_noisy() {
        let cfg = ModelConfig {
            metric_delay_seconds: 0.0,
            ..Default::default()
        };
        let mut c = Cluster::new(cfg, 4);
        let mut seen = Vec::new();
        for t in 0..300 {
            // The load doubles at 152 s.
            c.step(f64::from(t), if t < 152 { 50_000.0 } else { 100_000.0 });
            seen.push(c.observe(f64::from(t), 0.0).unwrap().busy_fraction);
        }
        // A scrape every 15 s: the value holds between scrapes, then moves.
        assert!(seen[163] < 0.6, "the scrape at 150 s saw the old load");
        assert_eq!(seen[151], seen[163], "it holds until the next scrape");
        assert!(seen[170] > 0.8, "{}", seen[170]);
        let exact = 0.5;
        assert!(
            seen[..150].iter().any(|b| (b - exact).abs() > 0.005),
            "noisy"
        );
        assert!(
            seen[..150]
                .iter()
                .all(|b| (b - exact).abs() <= 0.05 * exact + 1e-9)
        );
    }
}
