//! Running the real `operator` binary as a process in tests.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::{
    Stack,
    worker::{binary, free_port},
};

/// A running operator.
#[derive(Debug)]
pub struct OperatorProcess {
    pub child: Child,
    pub metrics_port: u16,
    pub log: PathBuf,
}

impl OperatorProcess {
    /// Starts `operator run` for `region`, watching `namespace`, with extra flags.
    pub fn start(stack: &Stack, region: &str, namespace: &str, extra: &[&str]) -> OperatorProcess {
        Self::start_with_kubeconfig(stack, &stack.kubeconfig, region, namespace, extra)
    }

    /// [`OperatorProcess::start`] with another kubeconfig (e.g. through a proxy).
    pub fn start_with_kubeconfig(
        _stack: &Stack,
        kubeconfig: &std::path::Path,
        region: &str,
        namespace: &str,
        extra: &[&str],
    ) -> OperatorProcess {
        let port = free_port();
        let dir = std::env::temp_dir().join("impressions-tests");
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join(format!("operator-{}.log", crate::unique(namespace)));
        let child = Command::new(binary("operator"))
            .args([
                "run",
                "--region",
                region,
                "--namespace",
                namespace,
                "--worker-image",
                "impressions/worker:test",
            ])
            .arg("--metrics-listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            .env("OPERATOR_LOG", "info,impressions_operator=debug")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start operator");
        OperatorProcess {
            child,
            metrics_port: port,
            log,
        }
    }

    /// The /metrics text.
    pub fn metrics(&self) -> String {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.metrics_port)) else {
            return String::new();
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        );
        let mut buf = String::new();
        let _ = s.read_to_string(&mut buf);
        buf
    }

    /// SIGKILL.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log_tail(&self) -> String {
        crate::log_tail(&self.log, 40)
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` every 200 ms until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
