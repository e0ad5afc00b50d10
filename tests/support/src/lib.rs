//! The client side of the local stack (`tests/stack/stack.sh`): where its components listen and
//! helpers the integration and end-to-end tests share.
//!
//! A test that needs the stack calls [`Stack::get`]; when the stack is not up it panics with the
//! command that brings it up. Nothing skips itself.

pub mod archive;
pub mod blackhole;
pub mod chart;
pub mod cluster;
pub mod decisions;
pub mod images;
pub mod kafka;
pub mod observe;
pub mod operator;
pub mod processes;
pub mod proxy;
pub mod worker;

use std::{collections::HashMap, path::PathBuf, sync::OnceLock};

/// Where the running local stack's components listen, read from its `stack.env`.
#[derive(Debug, Clone)]
pub struct Stack {
    /// The stack's state folder.
    pub dir: PathBuf,
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// Kafka bootstrap servers (the PLAINTEXT listener).
    pub kafka_bootstrap: String,
    /// The broker's SASL_SSL listener; `None` in a stack started before it existed.
    pub kafka_sasl: Option<SaslListener>,
    /// Prometheus base URL.
    pub prometheus_url: String,
    /// The folder of Prometheus file_sd target files.
    pub file_sd_dir: PathBuf,
    /// The folder of the pinned binaries (kubectl, helm, etcd, …).
    pub bin: PathBuf,
}

/// The broker's SASL_SSL listener: SCRAM-SHA-512 with one user, a certificate of the stack's CA.
#[derive(Debug, Clone)]
pub struct SaslListener {
    pub bootstrap: String,
    pub mechanism: String,
    pub username: String,
    pub password: String,
    /// The CA certificate (PEM) the broker's certificate is signed with.
    pub ca_file: PathBuf,
}

/// The env file's path: `$IMPRESSIONS_STACK_DIR/stack.env`, default `/tmp/impressions-stack`.
pub fn env_file() -> PathBuf {
    let dir = std::env::var_os("IMPRESSIONS_STACK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/impressions-stack"));
    dir.join("stack.env")
}

impl Stack {
    /// The running stack. Panics, naming the command to run, when it is not up.
    pub fn get() -> &'static Stack {
        static STACK: OnceLock<Stack> = OnceLock::new();
        STACK.get_or_init(|| match Stack::load() {
            Ok(s) => s,
            Err(e) => panic!(
                "the local stack is not up ({e}). Start it with `make stack-up` \
                 (or run the whole suite with `make test`)."
            ),
        })
    }

    /// Reads the env file that `stack.sh up` writes.
    pub fn load() -> Result<Stack, String> {
        let path = env_file();
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let vars: HashMap<&str, &str> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .collect();
        let var = |k: &str| {
            vars.get(k)
                .map(|v| v.to_string())
                .ok_or_else(|| format!("{} lacks {k}", path.display()))
        };
        let kafka_sasl = (|| {
            Some(SaslListener {
                bootstrap: vars.get("KAFKA_SASL_BOOTSTRAP")?.to_string(),
                mechanism: vars.get("KAFKA_SASL_MECHANISM")?.to_string(),
                username: vars.get("KAFKA_SASL_USERNAME")?.to_string(),
                password: vars.get("KAFKA_SASL_PASSWORD")?.to_string(),
                ca_file: vars.get("KAFKA_CA_FILE")?.into(),
            })
        })();
        Ok(Stack {
            dir: var("IMPRESSIONS_STACK_DIR")?.into(),
            kubeconfig: var("KUBECONFIG")?.into(),
            kafka_bootstrap: var("KAFKA_BOOTSTRAP")?,
            kafka_sasl,
            prometheus_url: var("PROMETHEUS_URL")?,
            file_sd_dir: var("PROMETHEUS_FILE_SD_DIR")?.into(),
            bin: var("STACK_BIN")?.into(),
        })
    }

    /// The SASL_SSL listener. Panics, naming the command to run, when the stack was started
    /// before it had one.
    pub fn sasl(&self) -> &SaslListener {
        self.kafka_sasl.as_ref().unwrap_or_else(|| {
            panic!(
                "the local stack at {} predates Kafka's SASL_SSL listener: restart it with \
                 `make stack-down stack-up`",
                self.dir.display()
            )
        })
    }

    /// A kube client authenticated as the stack's admin.
    pub async fn client(&self) -> kube::Client {
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("stack kubeconfig");
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .expect("kube config from the stack's kubeconfig");
        kube::Client::try_from(cfg).expect("kube client")
    }

    /// The API server's address (host:port), from the kubeconfig.
    pub fn api_server_address(&self) -> std::net::SocketAddr {
        let text = std::fs::read_to_string(&self.kubeconfig).expect("stack kubeconfig");
        let kc: serde_yaml::Value = serde_yaml::from_str(&text).expect("kubeconfig YAML");
        let server = kc["clusters"][0]["cluster"]["server"]
            .as_str()
            .expect("a server in the kubeconfig");
        let host_port = server.trim_start_matches("https://").trim_end_matches('/');
        std::net::ToSocketAddrs::to_socket_addrs(host_port)
            .expect("the server's address")
            .next()
            .expect("an address")
    }

    /// A copy of the stack's kubeconfig whose server is `address` (host:port): a black hole,
    /// or a proxy that can cut the API server off for one client.
    pub fn kubeconfig_with_server(&self, address: &str) -> PathBuf {
        let text = std::fs::read_to_string(&self.kubeconfig).expect("stack kubeconfig");
        let mut kc: serde_yaml::Value = serde_yaml::from_str(&text).expect("kubeconfig YAML");
        for c in kc["clusters"].as_sequence_mut().expect("clusters") {
            c["cluster"]["server"] = format!("https://{address}").into();
        }
        let dir = std::env::temp_dir().join("impressions-tests");
        std::fs::create_dir_all(&dir).expect("temporary folder");
        let path = dir.join(format!("{}.kubeconfig", unique("via")));
        std::fs::write(&path, serde_yaml::to_string(&kc).expect("YAML")).expect("write");
        path
    }

    /// A `kubectl` command of the pinned version, pointed at the stack.
    pub fn kubectl(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(self.bin.join("kubectl"));
        cmd.env("KUBECONFIG", &self.kubeconfig);
        cmd
    }

    /// The folder of a pinned binary of the stack, e.g. `helm`.
    pub fn tool(&self, name: &str) -> PathBuf {
        self.bin.join(name)
    }
}

/// A unique name for a test's objects: `prefix-<pid>-<counter>`.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The last `n` lines of a log file (for failure messages).
pub fn log_tail(path: &std::path::Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The repository root (this crate is `tests/support/`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("tests/support/ is two levels below the repository root")
        .to_path_buf()
}
