//! Traffic traces, one arrival rate (events/s) per second: built-in generators and CSV input,
//! and the surges declared ahead of a scenario's planned event.

use crate::autoscale::planned::Surge;

/// A diurnal day for one of three regions, eight hours apart: 235k events/s at night, 940k at
/// the evening peak; the three together peak at 1.5 M events/s.
pub fn diurnal(region: usize, seconds: usize) -> Vec<f64> {
    let phase = region as f64 * 8.0 * 3600.0;
    (0..seconds)
        .map(|t| {
            let x = ((t as f64 + phase) / 86_400.0 - 20.0 / 24.0) * std::f64::consts::TAU;
            235_000.0 + 705_000.0 * ((1.0 + x.cos()) / 2.0).powi(2)
        })
        .collect()
}

/// A 4× step: 100k events/s, 400k from 20 minutes on, back to 100k at 80 minutes.
pub fn step(seconds: usize) -> Vec<f64> {
    (0..seconds)
        .map(|t| {
            if (1200..4800).contains(&t) {
                400_000.0
            } else {
                100_000.0
            }
        })
        .collect()
}

/// A 3-minute spike from 200k to 800k events/s at 30 minutes.
pub fn spike(seconds: usize) -> Vec<f64> {
    (0..seconds)
        .map(|t| {
            if (1800..1980).contains(&t) {
                800_000.0
            } else {
                200_000.0
            }
        })
        .collect()
}

/// A slow ramp from 100k to 600k events/s over two hours, then flat.
pub fn ramp(seconds: usize) -> Vec<f64> {
    (0..seconds)
        .map(|t| 100_000.0 + 500_000.0 * (t as f64 / 7200.0).min(1.0))
        .collect()
}

/// A region failover: 300k events/s of its own, plus another region's 300k for 40 minutes.
pub fn failover(seconds: usize) -> Vec<f64> {
    (0..seconds)
        .map(|t| {
            if (1800..4200).contains(&t) {
                600_000.0
            } else {
                300_000.0
            }
        })
        .collect()
}

const DAY: usize = 86_400;

/// Seconds of the day (UTC) as an offset into a trace.
fn at(day: usize, hour: f64) -> usize {
    day * DAY + (hour * 3600.0) as usize
}

/// A title launch (flash crowd) on the second of two diurnal days: at 14:00 an extra 700k
/// events/s arrive within 2 minutes, then fade with a 2-hour time constant.
pub fn launch(days: usize) -> Vec<f64> {
    let start = at(1, 14.0);
    diurnal(0, days * DAY)
        .into_iter()
        .enumerate()
        .map(|(t, base)| {
            if t < start {
                return base;
            }
            let x = (t - start) as f64;
            base + 700_000.0 * (x / 120.0).min(1.0) * (-(x - 120.0).max(0.0) / 7200.0).exp()
        })
        .collect()
}

/// A two-step regional evacuation on the second of two diurnal days: half of another region's
/// traffic moves in at 14:00, the rest at 14:20, all of it back at 16:00.
pub fn evacuation(days: usize) -> Vec<f64> {
    let other = diurnal(1, days * DAY);
    diurnal(0, days * DAY)
        .into_iter()
        .zip(other)
        .enumerate()
        .map(|(t, (own, other))| {
            let share = if (at(1, 14.0)..at(1, 14.0 + 1.0 / 3.0)).contains(&t) {
                0.5
            } else if (at(1, 14.0 + 1.0 / 3.0)..at(1, 16.0)).contains(&t) {
                1.0
            } else {
                0.0
            };
            own + share * other
        })
        .collect()
}

/// Diurnal days with ±5 % noise every second and 1-minute bursts of +40 % at irregular times
/// (on average one every 20 minutes).
pub fn noisy(days: usize) -> Vec<f64> {
    use super::model::noise;
    let mut burst_until = 0usize;
    diurnal(0, days * DAY)
        .into_iter()
        .enumerate()
        .map(|(t, base)| {
            // A burst starts in a given second with probability 1/1200.
            if t >= burst_until && noise(7, t as u64) > 1.0 - 2.0 / 1200.0 {
                burst_until = t + 60;
            }
            let burst = if t < burst_until { 1.4 } else { 1.0 };
            base * burst * (1.0 + 0.05 * noise(11, t as u64))
        })
        .collect()
}

/// A sawtooth faster than a scaling round trip: from 200k to 700k events/s over 10 minutes,
/// then back to 200k at once, all day.
pub fn sawtooth(seconds: usize) -> Vec<f64> {
    (0..seconds)
        .map(|t| 200_000.0 + 500_000.0 * (t % 600) as f64 / 600.0)
        .collect()
}

/// Slow growth: diurnal days whose traffic grows by 30 % over the trace.
pub fn growth(days: usize) -> Vec<f64> {
    let n = days * DAY;
    diurnal(0, n)
        .into_iter()
        .enumerate()
        .map(|(t, base)| base * (1.0 + 0.3 * t as f64 / n as f64))
        .collect()
}

/// A producer outage on the second of two diurnal days: nothing arrives from 13:00 for 10
/// minutes, then the producers flush their buffers at 3× the rate until the 10 minutes are
/// delivered (5 minutes), then traffic is as before.
pub fn outage(days: usize) -> Vec<f64> {
    let (start, flush, end) = (at(1, 13.0), at(1, 13.0) + 600, at(1, 13.0) + 900);
    diurnal(0, days * DAY)
        .into_iter()
        .enumerate()
        .map(|(t, base)| {
            if (start..flush).contains(&t) {
                0.0
            } else if (flush..end).contains(&t) {
                3.0 * base
            } else {
                base
            }
        })
        .collect()
}

/// A week: diurnal weekdays, Saturday at 80 %, Sunday at 70 %.
pub fn weekly() -> Vec<f64> {
    diurnal(0, 7 * DAY)
        .into_iter()
        .enumerate()
        .map(|(t, base)| {
            base * match t / DAY {
                5 => 0.8,
                6 => 0.7,
                _ => 1.0,
            }
        })
        .collect()
}

/// The surges an SRE would declare ahead of a scenario's planned event (`plannedSurges`), on
/// the trace's clock: the evacuation's two steps, ×2 of the region's traffic before it when
/// half of the other region's moves in at 14:00 and ×3 when the rest follows at 14:20, until
/// 16:00 (the other region carries about twice this one's load that afternoon). The other
/// scenarios' events are not announced.
pub fn planned_surges(name: &str) -> Vec<Surge> {
    match name {
        "evacuation" => vec![
            Surge {
                start: at(1, 14.0) as f64,
                end: at(1, 14.0 + 1.0 / 3.0) as f64,
                factor: 2.0,
            },
            Surge {
                start: at(1, 14.0 + 1.0 / 3.0) as f64,
                end: at(1, 16.0) as f64,
                factor: 3.0,
            },
        ],
        _ => Vec::new(),
    }
}

/// The built-in scenarios, in the order the benchmark runs them.
pub const SCENARIOS: [&str; 14] = [
    "step",
    "spike",
    "ramp",
    "failover",
    "diurnal:0",
    "diurnal:1",
    "diurnal:2",
    "launch",
    "evacuation",
    "noisy",
    "sawtooth",
    "growth",
    "outage",
    "weekly",
];

/// Lines `seconds,events_per_second` (a header line is skipped), held between points.
pub fn from_csv(text: &str) -> Result<Vec<f64>, String> {
    let mut points: Vec<(f64, f64)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty()
            || line.starts_with('#')
            || line.chars().next().is_some_and(|c| c.is_alphabetic())
        {
            continue;
        }
        let (t, r) = line
            .split_once(',')
            .ok_or_else(|| format!("line {}: expected seconds,rate", i + 1))?;
        let t: f64 = t
            .trim()
            .parse()
            .map_err(|_| format!("line {}: bad seconds", i + 1))?;
        let r: f64 = r
            .trim()
            .parse()
            .map_err(|_| format!("line {}: bad rate", i + 1))?;
        points.push((t, r));
    }
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return Err("no points".into());
    };
    let (t0, end) = (first.0, last.0);
    let mut out = Vec::new();
    let mut j = 0;
    for s in 0..=((end - t0) as usize) {
        while j + 1 < points.len() && points[j + 1].0 - t0 <= s as f64 {
            j += 1;
        }
        out.push(points[j].1);
    }
    Ok(out)
}

/// Seconds where the load changed by half or more against a minute before, either way (the
/// larger rate at least 1.5× the smaller; once per change: changes closer than 2 minutes are
/// one).
pub fn load_changes(arrivals: &[f64]) -> Vec<usize> {
    let mut out: Vec<usize> = Vec::new();
    for t in 60..arrivals.len() {
        let (before, now) = (arrivals[t - 60], arrivals[t]);
        let (lo, hi) = (before.min(now), before.max(now));
        let changed = hi > 0.0 && hi >= 1.5 * lo;
        if changed && out.last().is_none_or(|l| t - l > 120) {
            out.push(t);
        }
    }
    out
}

/// A built-in scenario by name.
pub fn scenario(name: &str) -> Result<Vec<f64>, String> {
    Ok(match name {
        "step" => step(6000),
        "spike" => spike(3600),
        "ramp" => ramp(3 * 3600),
        "failover" => failover(6000),
        "diurnal" | "diurnal:0" => diurnal(0, 86_400),
        "diurnal:1" => diurnal(1, 86_400),
        "diurnal:2" => diurnal(2, 86_400),
        "launch" => launch(2),
        "evacuation" => evacuation(2),
        "noisy" => noisy(2),
        "sawtooth" => sawtooth(DAY),
        "growth" => growth(3),
        "outage" => outage(2),
        "weekly" => weekly(),
        other => match other.strip_prefix("csv:") {
            Some(path) => {
                from_csv(&std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?)?
            }
            None => {
                return Err(format!(
                    "unknown scenario {other:?} (step, spike, ramp, failover, diurnal[:0|1|2], launch, evacuation, noisy, sawtooth, growth, outage, weekly, csv:PATH)"
                ));
            }
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_regions_peak_near_1_5_million() {
        let regions: Vec<Vec<f64>> = (0..3).map(|r| diurnal(r, 86_400)).collect();
        let peak = (0..86_400)
            .map(|t| regions.iter().map(|r| r[t]).sum::<f64>())
            .fold(0.0, f64::max);
        assert!((1.45e6..1.55e6).contains(&peak), "{peak}");
    }

    #[test]
    fn the_new_scenarios_have_their_shape() {
        for name in SCENARIOS {
            let a = scenario(name).unwrap();
            let peak = a.iter().copied().fold(0.0, f64::max);
            assert!(a.iter().all(|x| *x >= 0.0), "{name}");
            // 64 partitions × 25k events/s carry it.
            assert!(peak <= 1.6e6, "{name}: {peak}");
        }
        let o = outage(2);
        assert_eq!(o[at(1, 13.0) + 300], 0.0);
        let i = at(1, 13.0) + 700;
        assert!((o[i] / diurnal(0, 2 * DAY)[i] - 3.0).abs() < 1e-9);
        let e = evacuation(2);
        assert!(e[at(1, 15.0)] > 1.9 * diurnal(0, 2 * DAY)[at(1, 15.0)] - 1.0);
        let declared = planned_surges("evacuation");
        assert_eq!(declared.len(), 2);
        // The declared factors are what arrives against the traffic when the pre-scale begins
        // (its base), within 15 %.
        let base = e[at(1, 14.0) - 60];
        for w in &declared {
            let mid = ((w.start + w.end) / 2.0) as usize;
            let ratio = e[mid] / base;
            assert!((ratio / w.factor - 1.0).abs() < 0.15, "{w:?}: {ratio}");
        }
        assert!(planned_surges("launch").is_empty());
        let s = sawtooth(1800);
        assert_eq!((s[0], s[599], s[600]), (200_000.0, s[599], 200_000.0));
        assert!(load_changes(&s).len() == 2, "one change per drop");
        assert_eq!(weekly().len(), 7 * DAY);
    }

    #[test]
    fn csv_and_changes() {
        let t = from_csv("timestamp,rate\n0,10\n2,20\n").unwrap();
        assert_eq!(t, vec![10.0, 10.0, 20.0]);
        assert_eq!(load_changes(&step(6000)), vec![1200, 4800]);
        assert_eq!(load_changes(&spike(3600)), vec![1800, 1980], "up and down");
        assert_eq!(
            load_changes(&failover(6000)),
            vec![1800, 4200],
            "halving counts"
        );
    }
}

/// Arrival rates per second from a pipeline's recorded history: processed rate plus the growth
/// of the lag between points, held between points.
pub fn from_history(points: &[crate::autoscale::signals::prometheus::HistoryPoint]) -> Vec<f64> {
    let mut out = Vec::new();
    for w in points.windows(2) {
        let (a, b) = (w[0], w[1]);
        let span = (b.at - a.at).max(1.0);
        let arrival = (b.processed_rate + (b.lag - a.lag) / span).max(0.0);
        out.extend(std::iter::repeat_n(arrival, span as usize));
    }
    out
}

#[cfg(test)]
mod history_tests {
    use super::*;
    use crate::autoscale::signals::prometheus::HistoryPoint;

    #[test]
    fn arrivals_are_processed_plus_lag_growth() {
        let p = |at: f64, processed: f64, lag: f64| HistoryPoint {
            at,
            processed_rate: processed,
            busy_fraction: 0.5,
            lag,
            replicas: 2,
        };
        let a = from_history(&[
            p(0.0, 100.0, 0.0),
            p(10.0, 100.0, 500.0),
            p(20.0, 300.0, 0.0),
        ]);
        assert_eq!(a.len(), 20);
        assert_eq!((a[0], a[15]), (150.0, 250.0));
    }
}
