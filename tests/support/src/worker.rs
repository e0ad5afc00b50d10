//! Running the real `worker` binary as a process in tests, with its topics and config, and
//! reading its outputs back.

use std::{
    collections::{HashMap, HashSet},
    io::Write,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use apache_avro::{Schema, types::Value};
use rdkafka::{Message, message::OwnedMessage};

use crate::{
    Stack,
    kafka::{self, Sent},
    unique,
};

/// The topics and consumer group of one worker test.
#[derive(Debug, Clone)]
pub struct Topics {
    pub raw: String,
    pub out: String,
    pub dlq: String,
    pub titles: String,
    pub group: String,
}

/// Creates a test's topics (`partitions` raw partitions, 3 output, 1 dead-letter) and fills its
/// catalog with `titles` titles.
pub async fn topics(stack: &Stack, prefix: &str, partitions: i32, titles: u32) -> Topics {
    let id = unique(prefix);
    let t = Topics {
        raw: format!("{id}-raw"),
        out: format!("{id}-out"),
        dlq: format!("{id}-dlq"),
        titles: format!("{id}-titles"),
        group: format!("{id}-group"),
    };
    kafka::create_topic(stack, &t.raw, partitions, false).await;
    kafka::create_topic(stack, &t.out, 3, false).await;
    kafka::create_topic(stack, &t.dlq, 1, false).await;
    kafka::create_topic(stack, &t.titles, 2, true).await;
    kafka::fill_catalog(stack, &t.titles, titles).await;
    t
}

/// A worker config on these topics; `extra` is appended (top-level YAML).
pub fn config(stack: &Stack, t: &Topics, extra: &str) -> String {
    config_with_sink(stack, t, "", extra)
}

/// [`config`] with more `sink` fields (`sink_extra`, e.g. `deliveryGuarantee: ExactlyOnce`).
pub fn config_with_sink(stack: &Stack, t: &Topics, sink_extra: &str, extra: &str) -> String {
    let sink_extra = if sink_extra.is_empty() {
        String::new()
    } else {
        format!(", {sink_extra}")
    };
    format!(
        "pipeline: {{namespace: tests, name: {group}}}
source: {{bootstrapServers: '{b}', topic: {raw}, consumerGroup: {group}, offsetReset: earliest}}
sink: {{topic: {out}, deadLetterTopic: {dlq}{sink_extra}}}
catalog: {{topic: {titles}}}
locations: {{pages: {{'1': Home, '2': Search}}, rows: {{trending: Trending Now}}}}
drainTimeoutSecs: 20
{extra}",
        b = stack.kafka_bootstrap,
        raw = t.raw,
        group = t.group,
        out = t.out,
        dlq = t.dlq,
        titles = t.titles,
    )
}

/// `yaml` (from [`config`]) with `source.groupProtocol: protocol` (Consumer or Classic).
pub fn with_group_protocol(yaml: &str, protocol: &str) -> String {
    const AT: &str = "offsetReset: earliest}";
    assert!(yaml.contains(AT), "not a config of worker::config: {yaml}");
    yaml.replacen(
        AT,
        &format!("offsetReset: earliest, groupProtocol: {protocol}}}"),
        1,
    )
}

/// Decodes a single-object-encoded record with apache-avro (independent of the encoder).
pub fn decode(bytes: &[u8]) -> HashMap<String, Value> {
    assert_eq!(&bytes[..2], &[0xC3, 0x01], "single-object marker");
    static SCHEMA: std::sync::OnceLock<Schema> = std::sync::OnceLock::new();
    let schema = SCHEMA
        .get_or_init(|| Schema::parse_str(impressions_worker::avro::IMPRESSION_SCHEMA).unwrap());
    let mut body = &bytes[10..];
    match apache_avro::from_avro_datum(schema, &mut body, None).unwrap() {
        Value::Record(f) => f.into_iter().collect(),
        o => panic!("not a record: {o:?}"),
    }
}

/// The event id of an output record.
pub fn event_id(m: &OwnedMessage) -> String {
    match &decode(m.payload().unwrap())["eventId"] {
        Value::String(s) => s.clone(),
        o => panic!("{o:?}"),
    }
}

/// What the worker should make of `sent`: the event ids of records, and of dead letters with
/// their reason.
pub fn expected(sent: &[Sent]) -> (HashSet<String>, HashMap<String, &'static str>) {
    let records = sent
        .iter()
        .filter(|s| s.kind.is_record())
        .map(|s| s.event_id.clone())
        .collect();
    let dead = sent
        .iter()
        .filter_map(|s| s.kind.reject_reason().map(|r| (s.event_id.clone(), r)))
        .collect();
    (records, dead)
}

/// Waits until the group committed every raw partition's high watermark (or `timeout`
/// passed); returns the committed offsets.
pub async fn wait_committed(stack: &Stack, t: &Topics, timeout: Duration) -> HashMap<i32, i64> {
    let high = kafka::high_watermarks(stack, &t.raw);
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let c = kafka::committed(stack, &t.group, &t.raw);
        if high.iter().all(|(p, h)| *h == 0 || c.get(p) == Some(h))
            || std::time::Instant::now() > deadline
        {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A built binary of the workspace (`cargo build --bins` first; `make test` does).
pub fn binary(name: &str) -> PathBuf {
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::repo_root().join("target"));
    let path = target.join(profile).join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --bins` (make test does)",
        path.display()
    );
    path
}

/// `GET path` on `127.0.0.1:port` (5 s read deadline): the status and the body.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    http_get_at(("127.0.0.1", port), path)
}

/// `GET path` on `addr` (a pod IP and port; 5 s read deadline): the status and the body.
pub fn http_get_at(addr: impl std::net::ToSocketAddrs, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let code = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_owned())
        .unwrap_or_default();
    Some((code, body))
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running worker process.
#[derive(Debug)]
pub struct WorkerProcess {
    pub child: Child,
    pub metrics_port: u16,
    pub log: PathBuf,
    config: PathBuf,
    env: Vec<(String, String)>,
}

impl WorkerProcess {
    /// Starts `worker run` with `config_yaml` (its `metrics.listen` is set here).
    pub fn start(name: &str, config_yaml: &str) -> WorkerProcess {
        Self::start_with_env(name, config_yaml, &[])
    }

    /// [`WorkerProcess::start`] with environment variables (e.g. the `WORKER__SOURCE__KAFKA__…`
    /// overrides a pod gets from its pipeline's Secret).
    pub fn start_with_env(
        name: &str,
        config_yaml: &str,
        env: &[(String, String)],
    ) -> WorkerProcess {
        let dir = std::env::temp_dir().join("impressions-tests");
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let config = dir.join(format!("{name}.yaml"));
        let mut f = std::fs::File::create(&config).unwrap();
        write!(
            f,
            "{config_yaml}\nmetrics: {{listen: \"127.0.0.1:{port}\"}}\n"
        )
        .unwrap();
        Self::spawn(name, config, port, env.to_vec())
    }

    fn spawn(name: &str, config: PathBuf, port: u16, env: Vec<(String, String)>) -> WorkerProcess {
        let log = std::env::temp_dir()
            .join("impressions-tests")
            .join(format!("{name}-{}.log", crate::unique("run")));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(binary("worker"))
            .args(["run", "--config"])
            .arg(&config)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .expect("start worker");
        WorkerProcess {
            child,
            metrics_port: port,
            log,
            config,
            env,
        }
    }

    /// Starts a new process with the same configuration (after a kill).
    pub fn restart(&mut self, name: &str) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        *self = Self::spawn(
            name,
            self.config.clone(),
            self.metrics_port,
            std::mem::take(&mut self.env),
        );
    }

    /// `GET path` on the worker's metrics listener: the status and the body.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.metrics_port, path)
    }

    /// Waits until /readyz answers 200; panics with the log's tail otherwise.
    pub fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "worker exited with {status} before ready:\n{}",
                    self.log_tail()
                );
            }
            if matches!(self.get("/readyz"), Some((200, _))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("worker not ready within {timeout:?}:\n{}", self.log_tail());
    }

    /// The /metrics text.
    pub fn metrics(&self) -> String {
        self.get("/metrics").map(|x| x.1).unwrap_or_default()
    }

    /// The value of one series in /metrics (`name{labels}` exactly as exposed), or 0.
    pub fn metric(&self, series: &str) -> f64 {
        parse_metric(&self.metrics(), series)
    }

    /// Sends SIGTERM and waits for the exit; returns whether it exited 0 and how long it took.
    pub fn terminate(&mut self, timeout: Duration) -> (bool, Duration) {
        let t0 = Instant::now();
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        while t0.elapsed() < timeout {
            if let Ok(Some(s)) = self.child.try_wait() {
                return (s.success(), t0.elapsed());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        (false, t0.elapsed())
    }

    /// SIGKILL, no chance to drain.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The last lines of the worker's log.
    pub fn log_tail(&self) -> String {
        crate::log_tail(&self.log, 30)
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of one series in a Prometheus text exposition, or 0 when absent.
pub fn parse_metric(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok()).flatten()
        })
        .unwrap_or(0.0)
}
