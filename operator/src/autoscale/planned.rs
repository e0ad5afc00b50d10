//! Planned surges: windows the SREs declare (`spec.scaling.plannedSurges`) in which the load is
//! expected to be `factor` × the usual — a regional evacuation, a launch. From a pod's start and
//! a rebalance before the window until its end the pipeline runs at least `factor` × the
//! replicas it ran when the pre-scale began. Pure: times are Unix seconds, an input.

use impressions_crds::scaling::PlannedSurge;

/// One surge window, in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Surge {
    pub start: f64,
    pub end: f64,
    pub factor: f64,
}

impl Surge {
    pub fn of(s: &PlannedSurge) -> Surge {
        let unix = |t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time| {
            t.0.as_millisecond() as f64 / 1000.0
        };
        Surge {
            start: unix(&s.start),
            end: unix(&s.end),
            factor: s.factor,
        }
    }
}

/// The count a surge holds the pipeline at, and why.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Floor {
    /// At least this many replicas.
    pub replicas: i32,
    /// The replicas the pre-scale began from.
    pub from: i32,
    pub surge: Surge,
    /// The window itself has started (not only its lead).
    pub started: bool,
}

/// The count a pre-scale began from, kept while any window (with its lead) is on.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Planned {
    from: Option<i32>,
    /// An evaluation was made before: a window already on at the first one was on before this
    /// operator started.
    seen: bool,
}

impl Planned {
    /// The floor at `now` for `current` replicas: the largest factor among the windows on
    /// (from `lead` seconds before their start until their end) × the count when the first of
    /// them began. An operator that starts inside a window takes the count it finds as already
    /// pre-scaled (its base is that count ÷ the factor), so a restart does not multiply twice.
    pub fn floor(&mut self, surges: &[Surge], now: f64, lead: f64, current: i32) -> Option<Floor> {
        let first = !self.seen;
        self.seen = true;
        let Some(on) = surges
            .iter()
            .filter(|s| now >= s.start - lead && now < s.end)
            .max_by(|a, b| a.factor.total_cmp(&b.factor))
        else {
            self.from = None;
            return None;
        };
        let current = current.max(1);
        let from = *self.from.get_or_insert_with(|| {
            if first && now >= on.start {
                (f64::from(current) / on.factor).ceil() as i32
            } else {
                current
            }
        });
        Some(Floor {
            replicas: (on.factor * f64::from(from)).ceil() as i32,
            from,
            surge: *on,
            started: now >= on.start,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Surge = Surge {
        start: 1000.0,
        end: 2000.0,
        factor: 2.5,
    };

    #[test]
    fn the_floor_starts_a_lead_before_the_window_and_ends_with_it() {
        let mut p = Planned::default();
        assert_eq!(p.floor(&[S], 900.0, 35.0, 4), None, "before the lead");
        let f = p.floor(&[S], 970.0, 35.0, 4).unwrap();
        assert_eq!((f.replicas, f.from, f.started), (10, 4, false));
        // The count rose (the pre-scale, then the load): the base stays what it was.
        let f = p.floor(&[S], 1500.0, 35.0, 14).unwrap();
        assert_eq!((f.replicas, f.from, f.started), (10, 4, true));
        assert_eq!(
            p.floor(&[S], 2000.0, 35.0, 14),
            None,
            "the end is not in it"
        );
        // A later window starts from the count then.
        let later = Surge {
            start: 5000.0,
            end: 6000.0,
            factor: 2.0,
        };
        assert_eq!(p.floor(&[S, later], 4990.0, 35.0, 3).unwrap().replicas, 6);
    }

    #[test]
    fn an_operator_that_starts_inside_a_window_does_not_multiply_twice() {
        let mut p = Planned::default();
        let f = p.floor(&[S], 1500.0, 35.0, 10).unwrap();
        assert_eq!((f.from, f.replicas), (4, 10));
        // A surge added while the operator runs, already started: the count now is the base.
        let mut p = Planned::default();
        assert_eq!(p.floor(&[], 1400.0, 35.0, 4), None);
        assert_eq!(p.floor(&[S], 1500.0, 35.0, 4).unwrap().replicas, 10);
    }

    #[test]
    fn overlapping_windows_take_the_largest_factor_from_one_base() {
        let mut p = Planned::default();
        let big = Surge {
            start: 1200.0,
            end: 1800.0,
            factor: 4.0,
        };
        assert_eq!(p.floor(&[S, big], 990.0, 35.0, 2).unwrap().replicas, 5);
        assert_eq!(p.floor(&[S, big], 1300.0, 35.0, 5).unwrap().replicas, 8);
        assert_eq!(p.floor(&[S, big], 1900.0, 35.0, 8).unwrap().replicas, 5);
    }
}
