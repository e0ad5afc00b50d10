//! Rate traces: events per second as a function of seconds since the start.

use std::path::Path;

/// A target rate over time.
#[derive(Debug, Clone, PartialEq)]
pub enum Trace {
    /// `constant:RATE`
    Constant(f64),
    /// `step:BEFORE:AFTER:AT_S` — BEFORE until AT_S seconds, then AFTER.
    Step { before: f64, after: f64, at_s: f64 },
    /// `diurnal:MIN:MAX:PERIOD_S` — a cosine day from MIN (at 0) to MAX (at half the period).
    Diurnal { min: f64, max: f64, period_s: f64 },
    /// `spike:BASE:PEAK:AT_S:FOR_S` — BASE, with PEAK from AT_S for FOR_S seconds.
    Spike {
        base: f64,
        peak: f64,
        at_s: f64,
        for_s: f64,
    },
    /// `csv:PATH` — lines `seconds,rate`, linearly interpolated, held after the last point.
    Points(Vec<(f64, f64)>),
}

impl Trace {
    /// The target rate at `t` seconds.
    pub fn rate_at(&self, t: f64) -> f64 {
        match self {
            Trace::Constant(r) => *r,
            Trace::Step {
                before,
                after,
                at_s,
            } => {
                if t < *at_s {
                    *before
                } else {
                    *after
                }
            }
            Trace::Diurnal { min, max, period_s } => {
                let phase = (t / period_s) * std::f64::consts::TAU;
                min + (max - min) * (1.0 - phase.cos()) / 2.0
            }
            Trace::Spike {
                base,
                peak,
                at_s,
                for_s,
            } => {
                if t >= *at_s && t < at_s + for_s {
                    *peak
                } else {
                    *base
                }
            }
            Trace::Points(p) => interpolate(p, t),
        }
    }

    /// Parses the forms listed on the variants.
    pub fn parse(s: &str) -> Result<Trace, String> {
        let mut parts = s.split(':');
        let kind = parts.next().unwrap_or_default();
        if kind == "csv" {
            let path = &s[4..];
            return Self::from_csv(Path::new(path));
        }
        let nums: Vec<f64> = parts
            .map(|p| {
                p.parse::<f64>()
                    .map_err(|_| format!("trace {s:?}: {p:?} is not a number"))
            })
            .collect::<Result<_, _>>()?;
        let want = |n: usize| {
            if nums.len() == n {
                Ok(())
            } else {
                Err(format!("trace {s:?}: {kind} takes {n} numbers"))
            }
        };
        match kind {
            "constant" => want(1).map(|_| Trace::Constant(nums[0])),
            "step" => want(3).map(|_| Trace::Step {
                before: nums[0],
                after: nums[1],
                at_s: nums[2],
            }),
            "diurnal" => want(3).map(|_| Trace::Diurnal {
                min: nums[0],
                max: nums[1],
                period_s: nums[2],
            }),
            "spike" => want(4).map(|_| Trace::Spike {
                base: nums[0],
                peak: nums[1],
                at_s: nums[2],
                for_s: nums[3],
            }),
            _ => Err(format!(
                "trace {s:?}: unknown kind {kind:?} (constant, step, diurnal, spike, csv)"
            )),
        }
    }

    fn from_csv(path: &Path) -> Result<Trace, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut points = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with("timestamp") {
                continue;
            }
            let (t, r) = line
                .split_once(',')
                .ok_or_else(|| format!("{}:{}: expected seconds,rate", path.display(), i + 1))?;
            let t: f64 = t
                .trim()
                .parse()
                .map_err(|_| format!("{}:{}: bad seconds", path.display(), i + 1))?;
            let r: f64 = r
                .trim()
                .parse()
                .map_err(|_| format!("{}:{}: bad rate", path.display(), i + 1))?;
            points.push((t, r));
        }
        if points.is_empty() {
            return Err(format!("{}: no points", path.display()));
        }
        let t0 = points[0].0;
        Ok(Trace::Points(
            points.into_iter().map(|(t, r)| (t - t0, r)).collect(),
        ))
    }
}

fn interpolate(p: &[(f64, f64)], t: f64) -> f64 {
    match p.iter().position(|(pt, _)| *pt > t) {
        None => p.last().map(|x| x.1).unwrap_or(0.0),
        Some(0) => p[0].1,
        Some(i) => {
            let (t0, r0) = p[i - 1];
            let (t1, r1) = p[i];
            r0 + (r1 - r0) * (t - t0) / (t1 - t0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert_eq!(Trace::parse("constant:100").unwrap().rate_at(5.0), 100.0);
        let step = Trace::parse("step:100:400:60").unwrap();
        assert_eq!((step.rate_at(59.9), step.rate_at(60.0)), (100.0, 400.0));
        let d = Trace::parse("diurnal:10:110:100").unwrap();
        assert!((d.rate_at(0.0) - 10.0).abs() < 1e-9 && (d.rate_at(50.0) - 110.0).abs() < 1e-9);
        let s = Trace::parse("spike:10:90:5:2").unwrap();
        assert_eq!(
            (s.rate_at(4.9), s.rate_at(6.0), s.rate_at(7.0)),
            (10.0, 90.0, 10.0)
        );
        assert_eq!(interpolate(&[(0.0, 0.0), (10.0, 100.0)], 5.0), 50.0);
        assert!(Trace::parse("ramp:1").is_err());
        assert!(Trace::parse("step:1:2").is_err());
    }
}
