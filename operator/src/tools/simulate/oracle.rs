//! The physical limits a policy's replica-hours are measured against: clairvoyant scalers that
//! know each second's arrival rate and change the replica count instantly, at no cost.
//! - fluid: replicas = arrival / capacity, fractional (no partition, no headroom, no minimum);
//! - partition-granular: the fewest whole replicas whose busiest one (holding its share of the
//!   partitions, round-robin as the simulated group assigns them) is at most fully busy, and at
//!   least the minimum replica count.

use super::model::ModelConfig;

/// Replica-hours of the fluid oracle.
pub fn fluid_replica_hours(arrivals: &[f64], cfg: &ModelConfig) -> f64 {
    arrivals
        .iter()
        .map(|a| a.max(0.0) / cfg.capacity)
        .sum::<f64>()
        / 3600.0
}

/// The busiest replica's share of the load at each replica count 1..=P (index n - 1), with the
/// model's partition weights and round-robin assignment.
pub fn busiest_shares(cfg: &ModelConfig) -> Vec<f64> {
    let p = cfg.partitions.max(1) as usize;
    let raw: Vec<f64> = (0..p)
        .map(|i| 1.0 / ((i + 1) as f64).powf(cfg.skew))
        .collect();
    let sum: f64 = raw.iter().sum();
    (1..=p)
        .map(|n| {
            (0..n)
                .map(|r| (r..p).step_by(n).map(|i| raw[i] / sum).sum::<f64>())
                .fold(0.0, f64::max)
        })
        .collect()
}

/// The fewest replicas (within the bounds) whose busiest one carries `arrival` at most at
/// full capacity; the most allowed when none does.
pub fn partition_granular(arrival: f64, cfg: &ModelConfig, shares: &[f64]) -> i32 {
    let max = cfg.max_replicas.min(shares.len() as i32).max(1);
    let min = cfg.min_replicas.clamp(1, max);
    (min..=max)
        .find(|n| shares[(*n - 1) as usize] * arrival <= cfg.capacity)
        .unwrap_or(max)
}

/// Replica-hours of the partition-granular oracle.
pub fn partition_replica_hours(arrivals: &[f64], cfg: &ModelConfig) -> f64 {
    let shares = busiest_shares(cfg);
    arrivals
        .iter()
        .map(|a| f64::from(partition_granular(*a, cfg, &shares)))
        .sum::<f64>()
        / 3600.0
}

/// Seconds over the lag SLO of the partition-granular oracle: it has a backlog only when the
/// arrival exceeds what the most replicas allowed carry; the backlog's age is taken as backlog /
/// that capacity.
pub fn seconds_over_slo(arrivals: &[f64], cfg: &ModelConfig, slo: f64) -> u64 {
    let shares = busiest_shares(cfg);
    let max = cfg.max_replicas.min(shares.len() as i32).max(1);
    // The most the fleet carries: its busiest replica at full capacity.
    let most = cfg.capacity / shares[(max - 1) as usize];
    let mut backlog = 0.0_f64;
    let mut over = 0;
    for a in arrivals {
        backlog = (backlog + a - most).max(0.0);
        if backlog / most > slo {
            over += 1;
        }
    }
    over
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_partition_granular_oracle_pays_for_the_busiest_replica() {
        let cfg = ModelConfig::default();
        let shares = busiest_shares(&cfg);
        // 64 uniform partitions, 25k/s each replica: 640k/s is 25.6 replicas' worth, but 26–31
        // replicas leave one holding 3 partitions (30k/s): 32 it is.
        assert_eq!(partition_granular(640_000.0, &cfg, &shares), 32);
        assert_eq!(partition_granular(500_000.0, &cfg, &shares), 22);
        assert_eq!(partition_granular(0.0, &cfg, &shares), 1);
        let a = vec![640_000.0; 3600];
        assert!((partition_replica_hours(&a, &cfg) - 32.0).abs() < 1e-9);
        assert!((fluid_replica_hours(&a, &cfg) - 25.6).abs() < 1e-9);
    }
}
