//! `operator top`: a live terminal view of the pipelines, read from their status (input and
//! processed rates, lag, replicas against desired, data quality, the last decision and why),
//! and on exit a plot of the run (the simulator's plot, fed with what was observed).

use std::{collections::BTreeMap, fmt::Write as _, path::PathBuf, time::Duration};

use impressions_crds::{ImpressionPipeline, ScalingPolicy, conditions};
use kube::{Api, Client, ResourceExt, api::ListParams};

use crate::tools::simulate::{Report, model::Tick, plot};

/// One pipeline at one moment, as the view shows it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Row {
    pub key: String,
    pub replicas: i32,
    pub ready: i32,
    pub desired: Option<i32>,
    pub input: Option<f64>,
    pub processed: Option<f64>,
    pub lag: Option<i64>,
    pub lag_seconds: Option<f64>,
    pub quality: String,
    pub decision: String,
}

impl Row {
    /// The row of a pipeline's status.
    pub fn of(p: &ImpressionPipeline) -> Row {
        let key = format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any());
        let Some(s) = &p.status else {
            return Row {
                key,
                decision: "(no status yet)".into(),
                ..Row::default()
            };
        };
        let quality = conditions::get(&s.conditions, conditions::DATA_QUALITY)
            .map(|c| c.reason.clone())
            .unwrap_or_else(|| "-".into());
        let decision = s
            .last_decision
            .as_ref()
            .map_or_else(|| "-".into(), |d| format!("{}: {}", d.reason, d.message));
        Row {
            key,
            replicas: s.replicas,
            ready: s.ready_replicas,
            desired: s.desired_replicas,
            input: s.throughput.as_ref().map(|t| t.input_per_second),
            processed: s.throughput.as_ref().map(|t| t.processed_per_second),
            lag: s.lag.as_ref().map(|l| l.total),
            lag_seconds: s.lag.as_ref().and_then(|l| l.estimated_seconds),
            quality,
            decision,
        }
    }
}

fn num(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.0}"))
}

/// The view: a table of the pipelines, then each one's last decision (wrapped to `width`).
pub fn render(rows: &[Row], elapsed: f64, width: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "impression pipelines — {elapsed:.0} s (Ctrl-C to stop and plot)\n"
    );
    let _ = writeln!(
        out,
        "{:<28} {:>9} {:>8} {:>9} {:>9} {:>14} {:>9}",
        "PIPELINE", "REPLICAS", "DESIRED", "INPUT/S", "DONE/S", "LAG", "QUALITY"
    );
    for r in rows {
        let lag = match (r.lag, r.lag_seconds) {
            (Some(l), Some(s)) if s >= 1.0 => format!("{l} ({s:.0}s)"),
            (Some(l), _) => l.to_string(),
            _ => "-".into(),
        };
        let _ = writeln!(
            out,
            "{:<28} {:>9} {:>8} {:>9} {:>9} {:>14} {:>9}",
            r.key,
            format!("{}/{}", r.ready, r.replicas),
            r.desired.map_or_else(|| "-".into(), |d| d.to_string()),
            num(r.input),
            num(r.processed),
            lag,
            r.quality
        );
    }
    out.push('\n');
    for r in rows {
        let _ = writeln!(out, "{} — last decision:", r.key);
        for line in wrap(&r.decision, width.saturating_sub(2).max(20)) {
            let _ = writeln!(out, "  {line}");
        }
    }
    out
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split_whitespace() {
        let last = lines.last_mut().expect("one line");
        if !last.is_empty() && last.len() + 1 + word.len() > width {
            lines.push(word.to_owned());
        } else {
            if !last.is_empty() {
                last.push(' ');
            }
            last.push_str(word);
        }
    }
    lines
}

/// What `top` observed of one pipeline: running and desired replicas over time, and the lag SLO
/// of its policy.
#[derive(Debug, Default, serde::Serialize)]
pub struct Observed {
    pub running: Vec<Tick>,
    pub desired: Vec<Tick>,
    pub lag_slo_seconds: Option<f64>,
}

impl Observed {
    /// Whether the desired replica count changed during the run.
    pub fn scaled(&self) -> bool {
        self.desired
            .first()
            .is_some_and(|f| self.desired.iter().any(|t| t.replicas != f.replicas))
    }
}

/// The lag SLO of the policy a pipeline names (or of the built-in policy when it names none or
/// its policy cannot be read).
async fn lag_slo(client: &Client, p: &ImpressionPipeline) -> f64 {
    let builtin = f64::from(impressions_crds::ScalingPolicySpec::builtin().lag_slo_seconds);
    let Some(name) = &p.spec.scaling.policy_ref else {
        return builtin;
    };
    let api: Api<ScalingPolicy> = Api::all(client.clone());
    match tokio::time::timeout(Duration::from_secs(5), api.get_opt(name)).await {
        Ok(Ok(Some(policy))) => f64::from(policy.spec.lag_slo_seconds),
        _ => builtin,
    }
}

/// Options of `operator top`.
#[derive(Debug, Clone)]
pub struct TopOptions {
    pub namespace: Option<String>,
    pub interval: Duration,
    /// Stop after this long (default: until Ctrl-C).
    pub duration: Option<Duration>,
    /// Write an SVG of the run here on exit (one file per pipeline when there are several).
    pub plot: Option<PathBuf>,
    /// Write what was observed (per pipeline: ticks of ready and desired replicas, lag, rates)
    /// as JSON here on exit.
    pub json: Option<PathBuf>,
}

/// Runs the view until Ctrl-C or the duration; writes the plot; returns the files written.
pub async fn run(client: Client, o: TopOptions) -> anyhow::Result<Vec<PathBuf>> {
    let api: Api<ImpressionPipeline> = match &o.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let start = std::time::Instant::now();
    let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let mut seen: BTreeMap<String, Observed> = BTreeMap::new();
    let mut stop = std::pin::pin!(crate::shutdown::signal());
    loop {
        let elapsed = start.elapsed().as_secs_f64();
        let listed =
            tokio::time::timeout(Duration::from_secs(10), api.list(&ListParams::default())).await;
        match listed.map_err(|_| "no answer within 10 s".to_string()) {
            Ok(Ok(list)) => {
                let rows: Vec<Row> = list.items.iter().map(Row::of).collect();
                for (r, p) in rows.iter().zip(&list.items) {
                    let o = seen.entry(r.key.clone()).or_default();
                    if o.lag_slo_seconds.is_none() {
                        o.lag_slo_seconds = Some(lag_slo(&client, p).await);
                    }
                    let tick = |replicas| Tick {
                        t: elapsed,
                        arrival: r.input.unwrap_or(0.0),
                        lag: r.lag.unwrap_or(0) as f64,
                        lag_seconds: r.lag_seconds.unwrap_or(0.0),
                        replicas,
                    };
                    o.running.push(tick(r.ready));
                    o.desired.push(tick(r.desired.unwrap_or(r.replicas)));
                }
                let view = render(&rows, elapsed, 100);
                if tty {
                    print!("\x1b[2J\x1b[H{view}");
                } else {
                    println!("{view}");
                }
            }
            Ok(Err(e)) => eprintln!("listing pipelines: {e}"),
            Err(e) => eprintln!("listing pipelines: {e}"),
        }
        if o.duration.is_some_and(|d| start.elapsed() >= d) {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(o.interval) => {}
            _ = &mut stop => break,
        }
    }
    if let Some(path) = &o.json {
        std::fs::write(path, serde_json::to_vec_pretty(&seen)?)?;
    }
    let Some(path) = &o.plot else {
        return Ok(Vec::new());
    };
    let mut written = Vec::new();
    for (key, obs) in &seen {
        let file = if seen.len() == 1 {
            path.clone()
        } else {
            let stem = path.file_stem().unwrap_or_default().to_string_lossy();
            path.with_file_name(format!("{stem}-{}.svg", key.replace('/', "-")))
        };
        let reports = [
            Report::of_ticks("ready replicas", obs.running.clone()),
            Report::of_ticks("desired replicas", obs.desired.clone()),
        ];
        plot::svg(&file, key, &reports, obs.lag_slo_seconds).map_err(anyhow::Error::msg)?;
        written.push(file);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_per_pipeline_and_its_decision_wrapped() {
        let rows = [Row {
            key: "demo/impressions".into(),
            replicas: 3,
            ready: 2,
            desired: Some(4),
            input: Some(2500.4),
            processed: Some(1999.6),
            lag: Some(12000),
            lag_seconds: Some(6.2),
            quality: "OK".into(),
            decision: "ScaleUp: arrival 2500/s, backlog 12000 events; scaling up 3 → 4".into(),
        }];
        let v = render(&rows, 42.0, 40);
        assert!(v.contains("42 s"), "{v}");
        let line = v
            .lines()
            .find(|l| l.starts_with("demo/impressions "))
            .unwrap();
        for want in ["2/3", "4", "2500", "2000", "12000 (6s)", "OK"] {
            assert!(line.contains(want), "{want} in {line}");
        }
        let decision: Vec<&str> = v
            .lines()
            .skip_while(|l| !l.contains("last decision"))
            .collect();
        assert!(decision.len() >= 3, "wrapped at 40 columns: {decision:?}");
        assert!(decision.iter().all(|l| l.len() <= 40), "{decision:?}");
    }

    #[test]
    fn a_pipeline_without_status_says_so() {
        let p: ImpressionPipeline = serde_json::from_value(serde_json::json!({
            "apiVersion": "impressions.dev/v1alpha1", "kind": "ImpressionPipeline",
            "metadata": {"name": "p", "namespace": "n"},
            "spec": {"source": {"bootstrapServers": "k:9092", "topic": "raw"},
                     "sink": {"topic": "out", "deadLetterTopic": "dlq"},
                     "enrichment": {"catalog": {"topic": "titles"}}}
        }))
        .unwrap();
        let r = Row::of(&p);
        assert_eq!(r.key, "n/p");
        assert!(render(&[r], 0.0, 80).contains("no status yet"));
    }
}
