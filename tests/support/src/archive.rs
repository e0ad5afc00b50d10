//! The `archiver` binary as a test process, its catalog (per test: a SQLite file and a local
//! warehouse, or Apache Iceberg's REST catalog server on them), and the table read back with
//! pyiceberg (the stack's venv), independently of the archiver's own Iceberg code.

use std::{
    io::Write,
    path::PathBuf,
    process::{Child, Command, ExitStatus, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use serde::Deserialize;

use crate::{
    Stack, unique,
    worker::{binary, free_port, parse_metric},
};

/// A test's catalog: a SQLite file and a warehouse folder of its own, used directly (a SQL
/// catalog) or behind a REST catalog server of its own.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub dir: PathBuf,
    pub name: String,
    pub namespace: String,
    pub table: String,
    rest: Option<Arc<RestCatalogServer>>,
}

impl Catalog {
    /// A SQL catalog on a SQLite file.
    pub fn new(prefix: &str) -> Catalog {
        let dir = std::env::temp_dir()
            .join("impressions-tests")
            .join(unique(prefix));
        std::fs::create_dir_all(dir.join("warehouse")).unwrap();
        Catalog {
            dir,
            name: "impressions".into(),
            namespace: "impressions".into(),
            table: "archive".into(),
            rest: None,
        }
    }

    /// A REST catalog: Apache Iceberg's REST catalog server (its test fixture, provisioned by the
    /// stack), started for this catalog on a free port, its JDBC catalog on a SQLite file and its
    /// warehouse the local folder. Stopped when the last clone is dropped.
    pub fn rest(stack: &Stack, prefix: &str) -> Catalog {
        let mut c = Catalog::new(prefix);
        c.rest = Some(Arc::new(RestCatalogServer::start(stack, &c.dir)));
        c
    }

    /// `sql` or `rest` (the archiver's `catalog.kind`).
    pub fn kind(&self) -> &'static str {
        if self.rest.is_some() { "rest" } else { "sql" }
    }

    pub fn uri(&self) -> String {
        match &self.rest {
            Some(server) => server.uri(),
            None => format!("sqlite://{}/catalog.db?mode=rwc", self.dir.display()),
        }
    }

    /// The REST catalog server, when this catalog has one.
    pub fn rest_server(&self) -> Option<&RestCatalogServer> {
        self.rest.as_deref()
    }

    pub fn warehouse(&self) -> String {
        format!("file://{}/warehouse", self.dir.display())
    }

    /// The Parquet files under the warehouse (committed or not).
    pub fn parquet_files(&self) -> Vec<PathBuf> {
        fn walk(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else if p.extension().is_some_and(|x| x == "parquet") {
                    out.push(p);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.dir.join("warehouse"), &mut out);
        out
    }

    /// Reads the table with pyiceberg; panics with pyiceberg's error when it cannot.
    pub fn read(&self, stack: &Stack) -> TableReadBack {
        self.try_read(stack)
            .unwrap_or_else(|e| panic!("pyiceberg failed: {e}"))
    }

    /// Reads the table with pyiceberg (an error while it does not exist yet).
    pub fn try_read(&self, stack: &Stack) -> Result<TableReadBack, String> {
        let python = stack.tool("pyiceberg-python");
        assert!(
            python.exists(),
            "{} is missing: run tests/stack/provision.sh pyiceberg (stack.sh up does)",
            python.display()
        );
        let script = crate::repo_root().join("tests/support/py/read_table.py");
        let uri = match &self.rest {
            Some(server) => server.uri(),
            None => format!("sqlite:///{}/catalog.db", self.dir.display()),
        };
        let out = Command::new(&python)
            .arg(script)
            .args([
                self.kind(),
                &self.name,
                &uri,
                &self.warehouse(),
                &format!("{}.{}", self.namespace, self.table),
            ])
            .output()
            .expect("run pyiceberg");
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        serde_json::from_slice(&out.stdout).map_err(|e| format!("pyiceberg's JSON: {e}"))
    }
}

/// What pyiceberg read.
#[derive(Debug, Clone, Deserialize)]
pub struct TableReadBack {
    pub rows: usize,
    pub event_ids: Vec<String>,
    pub schema: Vec<Field>,
    pub partition_spec: Vec<PartitionField>,
    pub snapshots: Vec<Snapshot>,
    pub data_files: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Field {
    pub id: i32,
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub required: bool,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct PartitionField {
    pub name: String,
    pub transform: String,
    pub source: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Snapshot {
    pub id: i64,
    pub summary: std::collections::HashMap<String, String>,
}

impl TableReadBack {
    /// Event ids read more than once.
    pub fn duplicates(&self) -> Vec<&String> {
        self.event_ids
            .windows(2)
            .filter(|w| w[0] == w[1])
            .map(|w| &w[0])
            .collect()
    }
}

/// An archiver config for `topic` into `catalog`, its dead letters to `dead_letter`; `extra` is
/// appended (top-level YAML).
pub fn config(
    stack: &Stack,
    topic: &str,
    dead_letter: &str,
    group: &str,
    catalog: &Catalog,
    extra: &str,
) -> String {
    format!(
        "pipeline: {{namespace: tests, name: {group}}}
source: {{bootstrapServers: '{b}', topic: {topic}, consumerGroup: {group}, kafka: {{session.timeout.ms: '6000', heartbeat.interval.ms: '1000'}}}}
catalog: {{kind: {kind}, name: {name}, uri: '{uri}', warehouse: '{wh}'}}
table: {{namespace: {ns}, name: {table}}}
deadLetter: {{topic: {dead_letter}}}
{extra}",
        b = stack.kafka_bootstrap,
        kind = catalog.kind(),
        name = catalog.name,
        uri = catalog.uri(),
        wh = catalog.warehouse(),
        ns = catalog.namespace,
        table = catalog.table,
    )
}

/// Apache Iceberg's REST catalog server (`iceberg-rest-catalog`, the stack's wrapper of
/// `tests/stack/iceberg-rest/run.sh`) for one test: a JDBC catalog on `DIR/rest-catalog.db`,
/// the warehouse `DIR/warehouse`. Killed on drop.
#[derive(Debug)]
pub struct RestCatalogServer {
    child: std::sync::Mutex<Child>,
    pub port: u16,
    pub log: PathBuf,
}

impl RestCatalogServer {
    /// Starts the server and waits (≤ 60 s) until `GET /v1/config` answers 200; panics with
    /// its log otherwise.
    pub fn start(stack: &Stack, dir: &std::path::Path) -> RestCatalogServer {
        let program = stack.tool("iceberg-rest-catalog");
        assert!(
            program.exists(),
            "{} is missing: run tests/stack/provision.sh iceberg-rest (stack.sh up does on a new cache)",
            program.display()
        );
        let port = free_port();
        let log = dir.join("rest-catalog.log");
        let child = Command::new(&program)
            .arg(port.to_string())
            .arg(dir.join("warehouse"))
            .arg(dir.join("rest-catalog.db"))
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.join("rest-catalog.err")).unwrap())
            .spawn()
            .expect("start the REST catalog server");
        let server = RestCatalogServer {
            child: std::sync::Mutex::new(child),
            port,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if matches!(crate::worker::http_get(port, "/v1/config"), Some((200, _))) {
                return server;
            }
            let exited = server.child.lock().unwrap().try_wait().ok().flatten();
            if exited.is_some() || Instant::now() > deadline {
                panic!(
                    "the REST catalog server on port {port} did not answer /v1/config (exit: {exited:?}):\n{}",
                    server.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn uri(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The server's stdout and stderr, their last lines.
    pub fn log_tail(&self) -> String {
        format!(
            "{}\n{}",
            crate::log_tail(&self.log, 20),
            crate::log_tail(&self.log.with_extension("err"), 40)
        )
    }
}

impl Drop for RestCatalogServer {
    fn drop(&mut self) {
        let mut child = self.child.lock().unwrap();
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A running archiver process.
#[derive(Debug)]
pub struct ArchiverProcess {
    pub child: Child,
    pub metrics_port: u16,
    pub log: PathBuf,
}

impl ArchiverProcess {
    /// Starts `archiver --config` with `config_yaml` (its `metrics.listen` set here).
    pub fn start(name: &str, config_yaml: &str, env: &[(&str, &str)]) -> ArchiverProcess {
        let dir = std::env::temp_dir().join("impressions-tests");
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let config = dir.join(format!("{}.yaml", unique(name)));
        let mut f = std::fs::File::create(&config).unwrap();
        write!(
            f,
            "{config_yaml}\nmetrics: {{listen: \"127.0.0.1:{port}\"}}\n"
        )
        .unwrap();
        let log = dir.join(format!("{}.log", unique(name)));
        // IMPRESSIONS_ARCHIVER_BIN: another build of the archiver (e.g. a release build driven by
        // a debug bench harness)
        let program = std::env::var_os("IMPRESSIONS_ARCHIVER_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| binary("archiver"));
        let child = Command::new(program)
            .arg("--config")
            .arg(&config)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start archiver");
        ArchiverProcess {
            child,
            metrics_port: port,
            log,
        }
    }

    /// `GET path` on the metrics listener: the status and the body.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        crate::worker::http_get(self.metrics_port, path)
    }

    /// The value of one series (`name{labels}` as exposed), or 0.
    pub fn metric(&self, series: &str) -> f64 {
        parse_metric(
            &self.get("/metrics").map(|x| x.1).unwrap_or_default(),
            series,
        )
    }

    /// Waits until /readyz answers 200; panics with the log's tail otherwise.
    pub fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "archiver exited with {status} before ready:\n{}",
                    self.log_tail()
                );
            }
            if matches!(self.get("/readyz"), Some((200, _))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "archiver not ready within {timeout:?}:\n{}",
            self.log_tail()
        );
    }

    /// Waits until `records_committed_total` reaches `n` (or the process exits, or `timeout`);
    /// returns the value reached.
    pub fn wait_committed(&mut self, n: f64, timeout: Duration) -> f64 {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.metric("impressions_archiver_records_committed_total");
            if v >= n || Instant::now() > deadline || matches!(self.child.try_wait(), Ok(Some(_))) {
                return v;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    /// SIGTERM, then waits; returns whether it exited 0.
    pub fn terminate(&mut self, timeout: Duration) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        match self.wait_exit(timeout) {
            Some(s) => s.success(),
            None => {
                self.kill9();
                false
            }
        }
    }

    /// SIGKILL.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_tail(&self) -> String {
        crate::log_tail(&self.log, 40)
    }
}

impl Drop for ArchiverProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sets the consumer group's committed offsets of `topic` (the archiver's hint, which it must
/// never trust), once the group has no member.
pub fn set_group_offsets(
    stack: &Stack,
    group: &str,
    topic: &str,
    offsets: &std::collections::HashMap<i32, i64>,
) {
    use rdkafka::{
        ClientConfig, Offset, TopicPartitionList,
        consumer::{BaseConsumer, CommitMode, Consumer},
    };
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for (p, o) in offsets {
        tpl.add_partition_offset(topic, *p, Offset::Offset(*o))
            .unwrap();
    }
    // a member that died without leaving holds the group until its session times out
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = c.commit(&tpl, CommitMode::Sync) {
        assert!(Instant::now() < deadline, "commit the group's offsets: {e}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let got = crate::kafka::committed(stack, group, topic);
    assert_eq!(&got, offsets, "the group's offsets were set");
}
