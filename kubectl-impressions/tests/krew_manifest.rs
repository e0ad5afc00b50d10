//! The krew manifest (`plugins/impressions.yaml`) agrees with the crate: the plugin's name is
//! the binary's without `kubectl-`, its version is the crate's, every platform installs the
//! binary this crate builds, and each `sha256` has the shape krew requires.

use std::path::PathBuf;

fn manifest() -> serde_yaml::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins/impressions.yaml");
    let text = std::fs::read_to_string(&path).expect("plugins/impressions.yaml");
    serde_yaml::from_str(&text).expect("the manifest is YAML")
}

#[test]
fn the_krew_manifest_installs_this_binary_at_this_version() {
    let m = manifest();
    assert_eq!(
        m["apiVersion"].as_str(),
        Some("krew.googlecontainertools.github.com/v1alpha2")
    );
    assert_eq!(m["kind"].as_str(), Some("Plugin"));
    assert_eq!(m["metadata"]["name"].as_str(), Some("impressions"));
    let spec = &m["spec"];
    assert_eq!(
        spec["version"].as_str(),
        Some(format!("v{}", env!("CARGO_PKG_VERSION")).as_str())
    );
    let short = spec["shortDescription"].as_str().unwrap();
    assert!(short.len() <= 60, "krew lists a short description: {short}");
    let platforms = spec["platforms"].as_sequence().expect("platforms");
    assert!(!platforms.is_empty());
    for p in platforms {
        let labels = &p["selector"]["matchLabels"];
        let (os, arch) = (
            labels["os"].as_str().unwrap(),
            labels["arch"].as_str().unwrap(),
        );
        assert_eq!(
            p["bin"].as_str(),
            Some("kubectl-impressions"),
            "{os}/{arch}"
        );
        let uri = p["uri"].as_str().unwrap();
        assert!(
            uri.ends_with(&format!("kubectl-impressions-{os}-{arch}.tar.gz"))
                && uri.contains(&format!("/v{}/", env!("CARGO_PKG_VERSION"))),
            "{uri}"
        );
        let sha = p["sha256"].as_str().unwrap();
        assert!(
            sha.len() == 64 && sha.chars().all(|c| c.is_ascii_hexdigit()),
            "{os}/{arch}: {sha}"
        );
        let files = p["files"].as_sequence().unwrap();
        assert!(
            files
                .iter()
                .any(|f| f["from"].as_str() == Some("kubectl-impressions")),
            "{os}/{arch} installs the binary"
        );
    }
}
