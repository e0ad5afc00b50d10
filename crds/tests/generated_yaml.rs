//! The checked-in CRD YAML is exactly what the types generate (`make crds` regenerates it).

#[test]
fn checked_in_crd_yaml_matches_the_types() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("yaml");
    let crds = impressions_crds::crds();
    let mut stale = Vec::new();
    for crd in &crds {
        let path = dir.join(impressions_crds::crd_file_name(crd));
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        if on_disk != impressions_crds::crd_yaml(crd) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "stale CRD YAML, run `make crds`: {stale:?}"
    );
    let files = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(
        files,
        crds.len(),
        "crds/yaml holds files that no type generates"
    );
}
