//! Judging a run: per fault, losses, duplicates, recovery, wrong scaling against the decision
//! log, evaluation gaps; and the Markdown table for docs/reliability.md.

use super::*;

pub(super) fn judge(run: &Run<'_>, phases: &mut [Phase], end: f64) -> (Report, Vec<String>) {
    let isolation = if run.guarantee == "ExactlyOnce" {
        Isolation::ReadCommitted
    } else {
        Isolation::ReadUncommitted
    };
    let outputs: Vec<Outputs> = run
        .pipes
        .iter()
        .map(|p| {
            let pre = format!("{}-{}", run.ns, p.name);
            Outputs::read(
                run.stack,
                &format!("{pre}-out"),
                &format!("{pre}-dlq"),
                isolation,
            )
        })
        .collect();
    let log = DecisionLog::read(&run.op_logs, &run.clock);
    // A metrics fault hid the metrics until its end, or later while reads still failed.
    let blind: Vec<Interval> = run
        .blind
        .iter()
        .map(|b| Interval {
            to: log
                .last_failed_read(b.to, b.to + BLIND_AFTER)
                .map_or(b.to, |t| t.max(b.to)),
            ..b.clone()
        })
        .collect();
    let rules = Rules {
        down_window: DOWN_WINDOW,
        max_gap: MAX_GAP,
        apply_within: APPLY_WITHIN,
        blind: blind.clone(),
        stalls: run.stalls.clone(),
    };
    let samples: Vec<Vec<Sample>> = run.pipes.iter().map(Pipe::samples).collect();
    // Every change of every pipeline, judged, in the phase where it was seen.
    let phase_of = |t: f64| phases.iter().rposition(|p| p.start <= t).unwrap_or(0);
    let mut verdicts: Vec<Vec<Vec<Verdict>>> =
        vec![vec![Vec::new(); run.pipes.len()]; phases.len()];
    for (i, p) in run.pipes.iter().enumerate() {
        for c in decisions::changes(&samples[i]) {
            let v = log.judge(&c, &run.ns, p.name, &rules);
            verdicts[phase_of(c.t)][i].push(v);
        }
    }

    let starts: Vec<f64> = phases.iter().map(|p| p.start).collect();
    let mut outcomes = Vec::new();
    for (k, ph) in phases.iter_mut().enumerate() {
        let next = starts.get(k + 1).copied().unwrap_or(end);
        let mut pipes_out = Vec::new();
        for (i, pipe) in run.pipes.iter().enumerate() {
            let runs: Vec<&LoadRun> = ph.runs.iter().filter(|r| r.pipe == i).collect();
            if runs.is_empty() {
                continue;
            }
            let mut sent: HashMap<String, Kind> = HashMap::new();
            for r in &runs {
                match r.run.try_sent() {
                    Ok(s) => sent.extend(s),
                    Err(e) => ph.failures.push(format!(
                        "{}: the events loadgen sent are unknown ({}: {e})",
                        pipe.name,
                        r.run.ids.display()
                    )),
                }
            }
            let rate = runs.iter().map(|r| r.rate).fold(0.0, f64::max);
            let account = Account::of(&sent, &outputs[i]);
            let changed: usize = decisions::changes(&samples[i])
                .iter()
                .filter(|c| c.t >= ph.start && c.t < next + 10.0)
                .map(|c| (c.to - c.from).unsigned_abs() as usize)
                .sum();
            let rebalances =
                changed + if i == A { 2 * ph.killed } else { 0 } + usize::from(ph.broker);
            let bound = if run.guarantee == "ExactlyOnce" {
                0
            } else {
                (rate * COMMIT_INTERVAL_S) as usize * rebalances
            };
            let lost = if i == C {
                account.unexpected_records
            } else {
                account.missing_records + account.missing_dead_letters + account.unexpected_records
            };
            let recover_s = (i != C && ph.recover_bound.is_some())
                .then(|| recovery(&samples[i], ph.from, ph.to))
                .flatten();
            let watched = ph.watch_until.unwrap_or(ph.to + 10.0);
            let gap = log.longest_gap(&run.ns, pipe.name, ph.from, watched);
            let name = pipe.name;
            if lost > 0 {
                ph.failures
                    .push(format!("{name}: {lost} events lost or invented"));
            }
            if account.duplicates > bound && (i != C || run.guarantee == "ExactlyOnce") {
                ph.failures.push(format!(
                    "{name}: {} duplicates, above the bound of {bound} ({rate}/s × {COMMIT_INTERVAL_S} s × {rebalances} rebalances)",
                    account.duplicates
                ));
            }
            if let Some((b, _)) = ph.recover_bound
                && i != C
            {
                match recover_s {
                    None => ph.failures.push(format!(
                        "{name}: the lag never came back under 2 s of input"
                    )),
                    Some(r) if r > b => ph.failures.push(format!(
                        "{name}: lag back under 2 s of input {r:.0} s after the fault (bound {b:.0} s)"
                    )),
                    _ => {}
                }
            }
            if let Some(b) = ph.on_time
                && ph.evaluated.contains(&i)
                && gap.0 > b
            {
                ph.failures.push(format!(
                    "{name}: not evaluated for {:.1} s from {:.1} (bound {b:.0} s)",
                    gap.0, gap.1
                ));
            }
            for v in verdicts[k][i].iter().filter(|v| !v.due) {
                ph.failures.push(format!(
                    "{name}: wrong scaling {} → {} seen at {:.1}: {}",
                    v.change.from, v.change.to, v.change.t, v.why
                ));
            }
            pipes_out.push(PipeOutcome {
                pipeline: name,
                input_per_s: rate,
                lost,
                account,
                duplicates_bound: bound,
                rebalances,
                recover_s,
                longest_evaluation_gap: gap,
                changes: verdicts[k][i].clone(),
                samples_skipped: pipe.skipped(ph.start, next),
            });
        }
        // What each fault must have shown the operator.
        let missing_held = log.count(&run.ns, "chaos", "HoldMetricsMissing", ph.from, ph.to + 5.0);
        if ph.fault.starts_with("Prometheus") && missing_held == 0 {
            ph.failures.push(
                "chaos: no HoldMetricsMissing evaluation during the fault: the operator did not meet it or did not hold"
                    .into(),
            );
        }
        if ph.fault.starts_with("broker hung")
            && missing_held == 0
            && log.stand_ins(ph.from, ph.to + 5.0).is_empty()
        {
            ph.failures.push(
                "no failed read (stand-in or missing metrics) logged during the hang: the operator did not meet it"
                    .into(),
            );
        }
        if ph.fault.starts_with("pipeline deleted")
            && let Some(last) = log.last(&run.ns, "gone")
            && last > ph.from + FORGOTTEN_WITHIN
        {
            ph.failures.push(format!(
                "gone: still evaluated {:.1} s after its deletion (bound {FORGOTTEN_WITHIN:.0} s)",
                last - ph.from
            ));
        }
        if ph.fault.starts_with("pipeline deleted")
            && let Some(c) = pipes_out.iter().find(|p| p.pipeline == "gone")
        {
            ph.notes.push(format!(
                "gone: {} of {} events had their output before the deletion",
                c.account.records_distinct + c.account.dead_letters_distinct,
                c.account.events_sent
            ));
        }
        for (t, note) in &run.restarts {
            if *t >= ph.start && *t < next {
                ph.notes.push(note.clone());
            }
        }
        let wrong = verdicts[k].iter().flatten().filter(|v| !v.due).count();
        outcomes.push(Outcome {
            fault: ph.fault,
            from: ph.from,
            to: ph.to,
            recover_bound_s: ph.recover_bound.map(|b| b.0),
            recover_bound_why: ph.recover_bound.map(|b| b.1),
            evaluation_gap_bound_s: ph.on_time,
            pipelines: pipes_out,
            wrong_scaling_actions: wrong,
            replicas: replicas(&samples[A], ph.start, next),
            notes: ph.notes.clone(),
            failures: ph.failures.clone(),
        });
    }
    // Records of ids no run sent, over the whole run.
    let mut invented = Vec::new();
    for (i, pipe) in run.pipes.iter().enumerate() {
        let mut sent = std::collections::HashSet::new();
        for ph in phases.iter() {
            for r in ph.runs.iter().filter(|r| r.pipe == i) {
                sent.extend(r.run.try_sent().unwrap_or_default().into_keys());
            }
        }
        let n = outputs[i]
            .records
            .keys()
            .filter(|id| !sent.contains(*id))
            .count();
        if n > 0 {
            invented.push(format!("{}: {n} records of events never sent", pipe.name));
        }
    }
    let report = Report {
        guarantee: run.guarantee.clone(),
        namespace: run.ns.clone(),
        clock_origin_unix: run.clock.unix_origin(),
        operator_logs: run.op_logs.clone(),
        blind,
        stalls: run.stalls.clone(),
        faults: outcomes,
    };
    (report, invented)
}

pub(super) fn print_table(guarantee: &str, outcomes: &[Outcome]) {
    println!(
        "\n{guarantee}:\n\n| fault | events | lost | duplicates (bound) | recover s (bound) | wrong scaling | replicas of chaos | longest evaluation gap s (bound) | samples skipped | note |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for o in outcomes {
        let sum = |f: &dyn Fn(&PipeOutcome) -> usize| o.pipelines.iter().map(f).sum::<usize>();
        let events = sum(&|p| p.account.events_sent);
        let lost = sum(&|p| p.lost);
        let dups = sum(&|p| p.account.duplicates);
        let bound = sum(&|p| p.duplicates_bound);
        let skipped = sum(&|p| p.samples_skipped.len());
        let recover = o
            .pipelines
            .iter()
            .filter_map(|p| p.recover_s)
            .fold(None, |a: Option<f64>, r| Some(a.map_or(r, |a| a.max(r))));
        let gap = o
            .pipelines
            .iter()
            .filter(|p| p.pipeline != "gone")
            .map(|p| p.longest_evaluation_gap.0)
            .fold(0.0, f64::max);
        println!(
            "| {} | {events} | {lost} | {dups} ({bound}) | {} | {} | {} | {gap:.0}{} | {skipped} | {} |",
            o.fault,
            match (recover, o.recover_bound_s) {
                (Some(r), Some(b)) => format!("{r:.0} ({b:.0})"),
                (None, Some(b)) => format!("never ({b:.0})"),
                _ => "-".into(),
            },
            o.wrong_scaling_actions,
            o.replicas.chars().take(40).collect::<String>(),
            o.evaluation_gap_bound_s
                .map_or(String::new(), |b| format!(" ({b:.0})")),
            o.notes.join("; ")
        );
    }
}
