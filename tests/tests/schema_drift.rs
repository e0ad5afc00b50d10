//! The raw events' schema watched end to end on the stack: an ImpressionPipeline with two
//! workers (pods run by the node agent, 4 s schema windows), the operator reading their
//! windows, and `loadgen` sending steady traffic. The pipeline first asks for more sampled
//! events than a window has (`spec.schema.drift.minEvents`): no baseline, the condition names
//! the number; with the default, the next window becomes the baseline (SchemaDrift False). Then
//! each client release (`loadgen produce --release-…`, 30 % of the events, the releases added
//! one at a time so that each phase changes one thing) shows as its drift kind with the field
//! named in the pipeline's SchemaDrift condition and the RawEventSchema's status within two
//! windows, counted in windows: the condition names it before the end of the second window
//! after the one the release started in (the release's window, partly the new client's, and
//! the next, all of it, are judged by then). Accepting (the `impressions.dev/schema-accept`
//! annotation) clears it. The drift gauge and the Events follow.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use impressions_crds::{ImpressionPipeline, RawEventSchema, conditions};
use impressions_tests::{
    Stack, cluster, kafka,
    operator::{OperatorProcess, eventually},
    processes::NodeAgentProcess,
    unique,
    worker::binary,
};
use k8s_openapi::api::core::v1::Event;
use kube::{
    Api, Client,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use serde_json::json;

/// The workers' schema window: short for a short test, long enough that the delay from a
/// window's end to the condition (the settle, a read and a reconcile: under a second usually,
/// once 3.1 s on the 2-core machine at load 18) stays within a window.
const WINDOW_S: u64 = 4;
/// `spec.schema.drift.minEvents` at first: more than a window of the test's traffic holds.
const TOO_MANY_EVENTS: u64 = 100_000_000;
/// Events per second.
const RATE: u32 = 400;
/// The share of the events sent by the release.
const SHARE: &str = "0.3";

/// A `loadgen produce` process with release flags, stopped on drop.
struct Loadgen(Child);

impl Loadgen {
    fn start(stack: &Stack, topic: &str, seed: u64, release: &[&str]) -> Loadgen {
        let mut cmd = Command::new(binary("loadgen"));
        cmd.args([
            "produce",
            "--bootstrap",
            &stack.kafka_bootstrap,
            "--topic",
            topic,
        ])
        .args(["--trace", &format!("constant:{RATE}"), "--duration", "600"])
        .args(["--titles", "200", "--seed", &seed.to_string()]);
        if !release.is_empty() {
            cmd.args(["--release-share", SHARE]).args(release);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start loadgen");
        Loadgen(child)
    }
}

impl Drop for Loadgen {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The pipeline's SchemaDrift condition: (status, reason, message).
async fn drift_condition(api: &Api<ImpressionPipeline>) -> Option<(String, String, String)> {
    let p = api.get("shop").await.ok()?;
    let status = p.status?;
    let c = conditions::get(&status.conditions, conditions::SCHEMA_DRIFT)?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// One client release and what it must show as.
struct Case {
    name: &'static str,
    flags: &'static [&'static str],
    kind: &'static str,
    event_type: &'static str,
    field: Option<&'static str>,
}

const CASES: [Case; 5] = [
    Case {
        name: "rename",
        flags: &["--release-rename", "presentation.visibleMs=visibleMillis"],
        kind: "NewField",
        event_type: "impression",
        field: Some("presentation.visibleMillis"),
    },
    Case {
        name: "change type",
        flags: &["--release-retype", "rowIndex"],
        kind: "TypeChanged",
        event_type: "impression",
        field: Some("rowIndex"),
    },
    Case {
        name: "drop a column",
        flags: &["--release-drop", "trackId"],
        kind: "PresenceDropped",
        event_type: "impression",
        field: Some("trackId"),
    },
    Case {
        name: "add a field",
        flags: &["--release-add", r#"clientHints={"lowData":true}"#],
        kind: "NewField",
        event_type: "impression",
        field: Some("clientHints"),
    },
    Case {
        name: "add an event type",
        flags: &["--release-event-type", "interaction_v2"],
        kind: "NewEventType",
        event_type: "interaction_v2",
        field: None,
    },
];

async fn setup(stack: &Stack, client: &Client, ns: &str) -> String {
    let raw = kafka::pipeline_topics(stack, ns).await;
    let pipeline = json!({"apiVersion": "impressions.dev/v1alpha1", "kind": "ImpressionPipeline",
        "metadata": {"name": "shop"},
        "spec": {"region": "local", "replicas": 2,
                 "source": {"bootstrapServers": stack.kafka_bootstrap, "topic": raw, "offsetReset": "Latest"},
                 "sink": {"topic": format!("{ns}-out"), "deadLetterTopic": format!("{ns}-dlq")},
                 "enrichment": {"catalog": {"topic": format!("{ns}-titles")}},
                 "worker": {"threads": 1, "drainTimeoutSeconds": 5,
                            "env": [{"name": "WORKER__SCHEMA__WINDOW_SECONDS", "value": WINDOW_S.to_string()},
                                    {"name": "WORKER__SCHEMA__SAMPLE_ONE_IN", "value": "1"}]},
                 "schema": {"drift": {"minEvents": TOO_MANY_EVENTS}},
                 "scaling": {"mode": "Manual"}}});
    Api::<ImpressionPipeline>::namespaced(client.clone(), ns)
        .create(
            &PostParams::default(),
            &serde_json::from_value(pipeline).unwrap(),
        )
        .await
        .unwrap();
    raw
}

#[tokio::test(flavor = "multi_thread")]
async fn each_client_release_shows_as_its_drift_kind_and_accepting_clears_it() {
    let t_test = Instant::now();
    let stack = Stack::get();
    let client = stack.client().await;
    cluster::install_crds(&client).await.unwrap();
    let ns = cluster::namespace(&client, &unique("schema"))
        .await
        .unwrap();
    let raw = setup(stack, &client, &ns).await;
    let agent = NodeAgentProcess::start(stack, &ns);
    let op = OperatorProcess::start(stack, "local", &ns, &[]);
    let diag = || format!("{}\n{}", op.log_tail(), agent.log_tail());
    let pipelines: Api<ImpressionPipeline> = Api::namespaced(client.clone(), &ns);
    let schemas: Api<RawEventSchema> = Api::namespaced(client.clone(), &ns);
    let window = Duration::from_secs(WINDOW_S);

    // Steady traffic from the current client. The workers' pods start when the
    // controller-manager creates them (slow on a loaded machine): the first window may take a
    // while. With `minEvents` above what a window holds, no window becomes the baseline, and the
    // condition says so with the pipeline's number (the spec reaches the operator's judgement).
    let mut loadgen = Loadgen::start(stack, &raw, 1, &[]);
    let (_, reason, message) = eventually(
        Duration::from_secs(240),
        "SchemaDrift Unknown: no baseline with the pipeline's minEvents",
        || async {
            drift_condition(&pipelines)
                .await
                .filter(|c| c.1 == "NoBaseline")
        },
    )
    .await;
    assert!(
        message.contains(&format!("at least {TOO_MANY_EVENTS} sampled events")),
        "{reason}: {message}"
    );
    assert!(
        schemas
            .get("shop")
            .await
            .unwrap()
            .status
            .unwrap()
            .baseline
            .is_none(),
        "no baseline while minEvents is above a window's events"
    );
    // The default minEvents (100): the next window becomes the baseline, and nothing drifts.
    pipelines
        .patch(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"schema": {"drift": {"minEvents": null}}}})),
        )
        .await
        .unwrap();
    let (status, reason, _) = eventually(
        Duration::from_secs(30),
        "the first baseline (SchemaDrift False)",
        || async { drift_condition(&pipelines).await.filter(|c| c.0 == "False") },
    )
    .await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "NoDrift"),
        "{}",
        diag()
    );
    let s = schemas.get("shop").await.unwrap();
    let owner = &s.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("ImpressionPipeline", "shop")
    );
    let st = s.status.as_ref().unwrap();
    assert_eq!(st.baseline.as_ref().unwrap().accepted, "initial");
    assert_eq!(
        st.window.as_ref().unwrap().pods,
        2,
        "both workers' windows merged"
    );
    let imp = &st.event_types["impression"];
    assert!(imp.json_schema.is_some());
    assert_eq!(imp.fields["rowIndex"].types, ["integer"]);
    assert_eq!(imp.fields["presentation.visibleMs"].presence, 1.0);
    assert!(!imp.client_versions.is_empty());
    println!(
        "baseline after {:.1} s: {} event types",
        t_test.elapsed().as_secs_f64(),
        st.event_type_count
    );

    let mut flags: Vec<&str> = Vec::new();
    let mut latencies = Vec::new();
    for (i, case) in CASES.iter().enumerate() {
        // The releases so far plus this one: the only change from the accepted baseline.
        flags.extend_from_slice(case.flags);
        drop(loadgen);
        let started = Instant::now();
        let started_ms = impressions_worker::now_ms();
        loadgen = Loadgen::start(stack, &raw, 10 + i as u64, &flags);
        let (seen_ms, reason, message) = eventually(
            Duration::from_secs(60),
            &format!("{}: SchemaDrift with {}", case.name, case.kind),
            || async {
                drift_condition(&pipelines)
                    .await
                    .filter(|c| c.0 == "True" && c.1.split(',').any(|k| k == case.kind))
                    .map(|c| (impressions_worker::now_ms(), c.1, c.2))
            },
        )
        .await;
        let took = started.elapsed();
        // Counted in windows: the window the release started in (the loadgen started; its
        // first events may fall in the next) and the window in which the condition named it.
        let window_ms = window.as_millis() as i64;
        let windows = seen_ms.div_euclid(window_ms) - started_ms.div_euclid(window_ms);
        println!(
            "{}: {reason} after {:.1} s ({:.2} windows of time; {windows} window(s) later): {message}",
            case.name,
            took.as_secs_f64(),
            took.as_secs_f64() / WINDOW_S as f64
        );
        // Within two windows: named during the second window after the release's at the
        // latest (the release's window and the next one judged, the collection's delay less
        // than a window).
        assert!(
            windows <= 2,
            "{}: drift named {windows} windows after the release's window ({took:?})\n{}",
            case.name,
            diag()
        );
        let named = match case.field {
            Some(f) => format!("{} {}: {f}", case.kind, case.event_type),
            None => format!("{} {}", case.kind, case.event_type),
        };
        assert!(message.contains(&named), "{named:?} in {message:?}");
        let st = schemas.get("shop").await.unwrap().status.unwrap();
        // The window judged last (it may already be a later one than the condition's).
        let judged = st.window.as_ref().map(|w| {
            w.end.0.as_millisecond().div_euclid(window_ms) - 1 - started_ms.div_euclid(window_ms)
        });
        println!(
            "{}: the last window judged is {judged:?} after the release's",
            case.name
        );
        let d = st
            .drifts
            .iter()
            .find(|d| d.kind == case.kind && d.path.as_deref() == case.field)
            .unwrap_or_else(|| panic!("{}: not in status.drifts {:?}", case.name, st.drifts));
        // A drift names the client versions sending the field now: the release's, except for a
        // field it no longer sends (then only a window that still has events of the previous
        // phase's loadgen names it).
        assert!(
            case.kind == "PresenceDropped" || d.message.contains("16.0.0"),
            "{}: the release's version named: {}",
            case.name,
            d.message
        );
        let label = match case.kind {
            "NewField" => "new_field",
            "TypeChanged" => "type_changed",
            "PresenceDropped" => "presence_dropped",
            "NewEventType" => "new_event_type",
            k => panic!("{k}"),
        };
        let series = format!(
            "impressions_operator_pipeline_schema_drifts{{namespace=\"{ns}\",pipeline=\"shop\",kind=\"{label}\"}}"
        );
        let metrics = op.metrics();
        let value = metrics
            .lines()
            .find_map(|l| l.strip_prefix(&series))
            .and_then(|v| v.trim().parse::<i64>().ok());
        assert!(value.is_some_and(|v| v >= 1), "{series} = {value:?}");

        // Accept once a whole window after the release started is the learned schema (the
        // baseline is then the new client's share, not a window cut in between).
        eventually(
            Duration::from_secs(30),
            "a whole window of the release",
            || async {
                let st = schemas.get("shop").await.ok()?.status?;
                let w = st.window?;
                (w.start.0.as_millisecond() >= started_ms).then_some(())
            },
        )
        .await;
        let value = format!("{}-{}", i, impressions_worker::now_ms());
        schemas
            .patch(
                "shop",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"annotations": {
                    impressions_crds::raw_schema::ACCEPT_ANNOTATION: value}}})),
            )
            .await
            .unwrap();
        let accepted = Instant::now();
        let (_, reason, message) = eventually(
            Duration::from_secs(30),
            &format!("{}: SchemaDrift cleared by the accept", case.name),
            || async { drift_condition(&pipelines).await.filter(|c| c.0 == "False") },
        )
        .await;
        assert_eq!(reason, "NoDrift", "{message}");
        let st = schemas.get("shop").await.unwrap().status.unwrap();
        assert_eq!(st.baseline.unwrap().accepted, value);
        println!(
            "{}: cleared {:.1} s after the accept",
            case.name,
            accepted.elapsed().as_secs_f64()
        );
        latencies.push((took, windows));
    }
    drop(loadgen);

    // The Events: the baseline, a Warning per drift, an accept and a clear per release (the
    // recorder counts a repeated Event in its series).
    let events: Vec<(String, String, i32)> = Api::<Event>::namespaced(client.clone(), &ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some("shop"))
        .map(|e| {
            let n = e
                .series
                .as_ref()
                .and_then(|s| s.count)
                .or(e.count)
                .unwrap_or(1);
            (e.type_.unwrap_or_default(), e.reason.unwrap_or_default(), n)
        })
        .collect();
    let count = |reason: &str| -> usize {
        events
            .iter()
            .filter(|e| e.1 == reason)
            .map(|e| e.2.max(1) as usize)
            .sum()
    };
    assert_eq!(count("SchemaBaselineLearned"), 1, "{events:?}");
    assert!(count("SchemaDrift") >= CASES.len(), "{events:?}");
    assert_eq!(count("SchemaAccepted"), CASES.len(), "{events:?}");
    assert!(count("SchemaDriftCleared") >= CASES.len(), "{events:?}");
    let metrics = op.metrics();
    let reconciles: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("impressions_operator_reconcile_duration_seconds"))
        .collect();
    println!("{}", reconciles.join("\n"));
    println!(
        "drift latencies (s, windows later): {:?}; whole test {:.0} s",
        latencies
            .iter()
            .map(|(d, w)| ((d.as_secs_f64() * 10.0).round() / 10.0, *w))
            .collect::<Vec<_>>(),
        t_test.elapsed().as_secs_f64()
    );
}

/// The status's budget on the real API server: the RawEventSchema of a flood beyond every
/// budget (40 event types of 600 paths each window, names and client versions of the longest
/// kept, more than a thousand drifts), judged by the operator's code and written as the
/// operator writes it (server-side apply of the status, its field manager), is accepted and
/// stays well below the API server's object limit with its managed fields.
#[tokio::test(flavor = "multi_thread")]
async fn the_raw_event_schema_of_a_flood_of_paths_stays_within_the_object_limit() {
    use impressions_operator::schema::{
        judge::{judge, thresholds},
        learned::{MAX_NAME_BYTES, time_of},
        windows::ClosedWindow,
    };
    use impressions_worker::schema::{
        EventTypeShape, FieldShape, JsonType, Observation, report::WindowBounds, versions::Versions,
    };

    fn flood(round: usize, end_ms: i64) -> ClosedWindow {
        let long = |prefix: &str, i: usize| {
            format!(
                "{prefix}{i:06}{}",
                "x".repeat(MAX_NAME_BYTES - prefix.len() - 6)
            )
        };
        let mut o = Observation::default();
        for t in 0..40 {
            let mut fields = std::collections::BTreeMap::new();
            for p in 0..600 {
                let mut versions = Versions::default();
                for v in 0..8 {
                    versions.add(Some(&format!("{v}.{}", "9".repeat(60))), 1, 8);
                }
                let f = FieldShape {
                    present: 500,
                    types: [(JsonType::Integer, 400), (JsonType::String, 100)].into(),
                    first_seen_ms: end_ms - 5_000,
                    last_seen_ms: end_ms - 1_000,
                    versions,
                };
                fields.insert(long(&format!("r{round}.id"), p), f);
            }
            let shape = EventTypeShape {
                events: 1_000,
                first_seen_ms: end_ms - 5_000,
                last_seen_ms: end_ms - 1_000,
                fields,
                paths_overflow: 0,
                values_truncated: 0,
                versions: Versions::default(),
            };
            o.event_types.insert(long("type", t), shape);
        }
        o.events_seen = 40_000;
        o.events_sampled = 40_000;
        ClosedWindow {
            bounds: WindowBounds {
                start_ms: end_ms - 10_000,
                end_ms,
            },
            boundary_ms: end_ms,
            window_seconds: 10,
            pods: 1,
            observation: o,
        }
    }

    let stack = Stack::get();
    let client = stack.client().await;
    cluster::install_crds(&client).await.unwrap();
    let ns = cluster::namespace(&client, &unique("schema-flood"))
        .await
        .unwrap();
    let th = thresholds(&Default::default());
    let now = time_of(impressions_worker::now_ms());
    let j1 = judge(None, None, Some(&flood(1, 10_000)), &th, &now);
    let j2 = judge(Some(&j1.status), None, Some(&flood(2, 20_000)), &th, &now);
    assert!(j2.status.overflow.is_some() && j2.status.drift_count > 1_000);

    let api: Api<RawEventSchema> = Api::namespaced(client.clone(), &ns);
    let apply = PatchParams::apply("impressions-operator").force();
    let body = json!({"apiVersion": "impressions.dev/v1alpha1", "kind": "RawEventSchema",
        "metadata": {"name": "flood"}, "spec": {}});
    api.patch("flood", &apply, &Patch::Apply(&body))
        .await
        .unwrap();
    for status in [&j1.status, &j2.status] {
        let body = json!({"apiVersion": "impressions.dev/v1alpha1", "kind": "RawEventSchema",
            "status": status});
        api.patch_status("flood", &apply, &Patch::Apply(&body))
            .await
            .expect("the API server accepts the bounded status");
    }
    let stored = api.get("flood").await.unwrap();
    assert_eq!(
        stored.status.as_ref(),
        Some(&j2.status),
        "stored as written"
    );
    let whole = serde_json::to_vec(&stored).unwrap().len();
    let managed = serde_json::to_vec(&stored.metadata.managed_fields)
        .unwrap()
        .len();
    println!("the flood's RawEventSchema: {whole} bytes, of which managed fields {managed}");
    assert!(
        whole <= 1_048_576,
        "{whole} bytes: near the API server's limit (~1.5 MB)"
    );
}
