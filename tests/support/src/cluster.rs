//! Kubernetes helpers for tests: installing the CRDs, namespaces and applying manifests.

use std::time::Duration;

use k8s_openapi::{
    api::core::v1::Namespace,
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, ResourceExt,
    api::{DynamicObject, Patch, PatchParams, PostParams},
    discovery::{ApiResource, Discovery},
};

/// The field manager tests apply with.
pub const MANAGER: &str = "impressions-tests";

/// Installs the checked-in CRD YAML with server-side apply and waits until each is Established.
pub async fn install_crds(client: &Client) -> anyhow::Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in load_crds()? {
        let name = crd.name_any();
        api.patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&crd),
        )
        .await?;
        let established = kube::runtime::conditions::is_crd_established();
        tokio::time::timeout(
            Duration::from_secs(30),
            kube::runtime::wait::await_condition(api.clone(), &name, established),
        )
        .await
        .map_err(|_| anyhow::anyhow!("CRD {name} not Established within 30s"))??;
    }
    Ok(())
}

/// The CRDs as checked in under `crds/yaml/`.
pub fn load_crds() -> anyhow::Result<Vec<CustomResourceDefinition>> {
    let dir = crate::repo_root().join("crds/yaml");
    let mut out = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir(&dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(&path)?;
        out.push(serde_yaml::from_str(&text)?);
    }
    Ok(out)
}

/// Creates a namespace (idempotent) and returns its name.
pub async fn namespace(client: &Client, name: &str) -> anyhow::Result<String> {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": name }
    }))?;
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(e.into()),
    }
    Ok(name.to_owned())
}

/// Creates one YAML manifest in a namespace (ignored for cluster-scoped kinds) and returns the
/// API server's answer: the created object, or its error.
pub async fn create_yaml(
    client: &Client,
    namespace: &str,
    yaml: &str,
) -> anyhow::Result<Result<DynamicObject, kube::core::Status>> {
    let obj: DynamicObject = serde_yaml::from_str(yaml)?;
    let (ar, namespaced) = resolve(client, &obj).await?;
    let api: Api<DynamicObject> = if namespaced {
        Api::namespaced_with(client.clone(), namespace, &ar)
    } else {
        Api::all_with(client.clone(), &ar)
    };
    match api.create(&PostParams::default(), &obj).await {
        Ok(o) => Ok(Ok(o)),
        Err(kube::Error::Api(status)) => Ok(Err(*status)),
        Err(e) => Err(e.into()),
    }
}

/// The API resource of an object's kind, and whether it is namespaced.
pub async fn resolve(client: &Client, obj: &DynamicObject) -> anyhow::Result<(ApiResource, bool)> {
    let types = obj
        .types
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("manifest without apiVersion/kind"))?;
    let gvk = kube::core::GroupVersionKind::try_from(types)?;
    let discovery = Discovery::new(client.clone()).run().await?;
    let (ar, caps) = discovery
        .resolve_gvk(&gvk)
        .ok_or_else(|| anyhow::anyhow!("kind {gvk:?} is not served"))?;
    Ok((ar, caps.scope == kube::discovery::Scope::Namespaced))
}
