//! Writes the CRD YAML of every resource in this crate, one file per CRD.
//!
//! `crdgen` prints all of them to stdout; `crdgen --out DIR` writes `DIR/<name>.yaml`.

use std::{env, fs, path::PathBuf};

fn main() -> std::io::Result<()> {
    let args: Vec<String> = env::args().skip(1).collect();
    let out = match args.as_slice() {
        [] => None,
        [flag, dir] if flag == "--out" => Some(PathBuf::from(dir)),
        _ => {
            eprintln!("usage: crdgen [--out DIR]");
            std::process::exit(2);
        }
    };
    for crd in impressions_crds::crds() {
        let yaml = impressions_crds::crd_yaml(&crd);
        match &out {
            Some(dir) => {
                fs::create_dir_all(dir)?;
                let path = dir.join(impressions_crds::crd_file_name(&crd));
                fs::write(&path, yaml)?;
                eprintln!("wrote {}", path.display());
            }
            None => print!("{yaml}"),
        }
    }
    Ok(())
}
