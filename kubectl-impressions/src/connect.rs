//! The user's cluster, as kubectl finds it: `--kubeconfig` or `$KUBECONFIG` (a list of files,
//! merged) or `~/.kube/config`; `--context` or the current context; `--namespace` or the
//! context's namespace or `default`. Every call to the API server has a deadline ([`within`]).

use std::{future::Future, path::PathBuf, time::Duration};

use kube::{
    Client, Config,
    config::{KubeConfigOptions, Kubeconfig, KubeconfigError},
};

use crate::error::Error;

/// The connection flags every subcommand takes.
#[derive(clap::Args, Debug, Clone)]
pub struct ConnectArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG, else ~/.kube/config).
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: its current context).
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// The namespace (default: the context's namespace, else `default`).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// Seconds to wait for each answer of the API server or Prometheus.
    #[arg(long, global = true, default_value_t = 15.0, value_name = "SECONDS")]
    pub request_timeout: f64,
}

impl ConnectArgs {
    /// The deadline of one call.
    pub fn deadline(&self) -> Duration {
        Duration::from_secs_f64(self.request_timeout.clamp(0.1, 3600.0))
    }
}

/// A client of the user's cluster and the namespace the command is about.
#[derive(Clone)]
pub struct Cluster {
    pub client: Client,
    pub namespace: String,
    pub deadline: Duration,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("namespace", &self.namespace)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

/// Reads the kubeconfig and builds a client; no request is made yet.
pub async fn connect(a: &ConnectArgs) -> Result<Cluster, Error> {
    let kubeconfig = match &a.kubeconfig {
        Some(path) => Kubeconfig::read_from(path),
        None => Kubeconfig::read(),
    }
    .map_err(read_error)?;
    check_context(&kubeconfig, a.context.as_deref())?;
    let options = KubeConfigOptions {
        context: a.context.clone(),
        ..KubeConfigOptions::default()
    };
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| Error::Kubeconfig(e.to_string()))?;
    // No connect timeout of its own: [`within`] bounds each call, connecting included, and
    // names the call in its error.
    config.connect_timeout = None;
    let namespace = a
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config).map_err(|e| Error::Kubeconfig(e.to_string()))?;
    Ok(Cluster {
        client,
        namespace,
        deadline: a.deadline(),
    })
}

/// A missing file is "no kubeconfig"; anything else is the file's fault.
fn read_error(e: KubeconfigError) -> Error {
    match e {
        KubeconfigError::FindPath => {
            Error::NoKubeconfig("no home folder to find ~/.kube/config in".into())
        }
        KubeconfigError::ReadConfig(io, path) if io.kind() == std::io::ErrorKind::NotFound => {
            Error::NoKubeconfig(format!("{} does not exist", path.display()))
        }
        other => Error::Kubeconfig(other.to_string()),
    }
}

/// The context asked for exists, or one is current.
fn check_context(k: &Kubeconfig, context: Option<&str>) -> Result<(), Error> {
    let names: Vec<&str> = k.contexts.iter().map(|c| c.name.as_str()).collect();
    match context {
        Some(c) if !names.contains(&c) => Err(Error::Kubeconfig(format!(
            "context {c:?} is not in the kubeconfig (it has: {})",
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        ))),
        None if k.current_context.as_deref().is_none_or(str::is_empty) => Err(Error::Kubeconfig(
            "the kubeconfig has no current-context: pass --context".into(),
        )),
        _ => Ok(()),
    }
}

/// Awaits one API call for at most `deadline`; `what` names it in the error.
pub async fn within<T>(
    deadline: Duration,
    what: impl Into<String>,
    call: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, Error> {
    match tokio::time::timeout(deadline, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(source)) => Err(Error::Api {
            what: what.into(),
            source,
        }),
        Err(_) => Err(Error::Timeout {
            what: what.into(),
            deadline,
        }),
    }
}

/// Whether an error is the API server's 404 (no such object, or no such resource type).
pub fn is_not_found(e: &Error) -> bool {
    matches!(e, Error::Api { source: kube::Error::Api(s), .. } if s.code == 404)
}

/// Whether the API server refused a write made at an old resourceVersion (409 Conflict).
pub fn is_conflict(e: &Error) -> bool {
    matches!(e, Error::Api { source: kube::Error::Api(s), .. } if s.code == 409)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kubeconfig(yaml: &str) -> Kubeconfig {
        Kubeconfig::from_yaml(yaml).unwrap()
    }

    const TWO: &str = "apiVersion: v1\nkind: Config\ncurrent-context: a\ncontexts:\n- name: a\n  context: {cluster: c, user: u}\n- name: b\n  context: {cluster: c, user: u}\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:1'}\nusers:\n- name: u\n  user: {token: t}\n";

    #[test]
    fn an_unknown_context_names_the_ones_there_are() {
        let e = check_context(&kubeconfig(TWO), Some("prod")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "kubeconfig: context \"prod\" is not in the kubeconfig (it has: a, b)"
        );
        assert!(check_context(&kubeconfig(TWO), Some("b")).is_ok());
        assert!(check_context(&kubeconfig(TWO), None).is_ok());
        let none = TWO.replace("current-context: a\n", "");
        let e = check_context(&kubeconfig(&none), None).unwrap_err();
        assert!(e.to_string().contains("pass --context"), "{e}");
    }

    #[test]
    fn a_missing_file_is_no_kubeconfig() {
        let e = read_error(KubeconfigError::ReadConfig(
            std::io::Error::from(std::io::ErrorKind::NotFound),
            "/nowhere/config".into(),
        ));
        assert_eq!(
            e.to_string(),
            "no kubeconfig: /nowhere/config does not exist. Set KUBECONFIG, pass --kubeconfig FILE, or create ~/.kube/config"
        );
    }

    #[tokio::test]
    async fn a_call_without_answer_fails_at_its_deadline() {
        let e = within::<()>(
            Duration::from_millis(300),
            "listing ImpressionPipelines",
            std::future::pending(),
        )
        .await
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "listing ImpressionPipelines: no answer within 0.3 s (--request-timeout)"
        );
    }

    #[tokio::test]
    async fn the_context_s_namespace_is_the_default_and_the_flag_wins() {
        let dir = std::env::temp_dir().join(format!("kubectl-impressions-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config");
        std::fs::write(
            &path,
            TWO.replace(
                "{cluster: c, user: u}\n- name: b",
                "{cluster: c, user: u, namespace: team}\n- name: b",
            ),
        )
        .unwrap();
        let mut a = ConnectArgs {
            kubeconfig: Some(path.clone()),
            context: None,
            namespace: None,
            request_timeout: 5.0,
        };
        assert_eq!(connect(&a).await.unwrap().namespace, "team");
        a.context = Some("b".into());
        assert_eq!(connect(&a).await.unwrap().namespace, "default");
        a.namespace = Some("other".into());
        assert_eq!(connect(&a).await.unwrap().namespace, "other");
        std::fs::remove_dir_all(&dir).ok();
    }
}
