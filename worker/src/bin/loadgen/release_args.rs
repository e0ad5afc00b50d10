//! The client release knob of `loadgen produce`: flags that build a [`Release`] (a share of the
//! events sent by a new client that renames, retypes, drops or adds a field, or sends a new
//! event type), each checked with the flag named.

use impressions_worker::loadgen::release::Release;

#[derive(clap::Args, Debug, Default, Clone)]
pub struct ReleaseArgs {
    /// Share of the events sent by the new client release, in [0, 1]; with none of the
    /// changes below, only their `appVersion` changes.
    #[arg(long, default_value_t = 0.0)]
    pub release_share: f64,
    /// The new client's `appVersion`.
    #[arg(long, default_value = "16.0.0")]
    pub release_version: String,
    /// Rename a field: `PATH=NEWKEY` (e.g. `presentation.visibleMs=visibleMillis`).
    #[arg(long, value_name = "PATH=NEWKEY")]
    pub release_rename: Option<String>,
    /// Send a field with another type (a number as a string, a string as a number): `PATH`.
    #[arg(long, value_name = "PATH")]
    pub release_retype: Option<String>,
    /// Stop sending a field: `PATH`.
    #[arg(long, value_name = "PATH")]
    pub release_drop: Option<String>,
    /// Add a field: `PATH=JSON` (e.g. `clientHints={"lowData":true}`).
    #[arg(long, value_name = "PATH=JSON")]
    pub release_add: Option<String>,
    /// Send the events of other types than impression under this event type.
    #[arg(long, value_name = "NAME")]
    pub release_event_type: Option<String>,
}

impl ReleaseArgs {
    /// The release, `None` when no share is sent by it; an error names the flag at fault.
    pub fn release(&self) -> anyhow::Result<Option<Release>> {
        let share = self.release_share;
        anyhow::ensure!(
            (0.0..=1.0).contains(&share),
            "--release-share {share}: must be within [0, 1]"
        );
        let changes = self.release_rename.is_some()
            || self.release_retype.is_some()
            || self.release_drop.is_some()
            || self.release_add.is_some()
            || self.release_event_type.is_some();
        if share == 0.0 {
            anyhow::ensure!(
                !changes,
                "a --release-… change needs --release-share above 0"
            );
            return Ok(None);
        }
        let pair = |flag: &str, v: &str| -> anyhow::Result<(String, String)> {
            let (a, b) = v
                .split_once('=')
                .filter(|(a, b)| !a.is_empty() && !b.is_empty())
                .ok_or_else(|| anyhow::anyhow!("--{flag} {v:?}: expected PATH=VALUE"))?;
            Ok((a.to_owned(), b.to_owned()))
        };
        let rename = self
            .release_rename
            .as_deref()
            .map(|v| pair("release-rename", v))
            .transpose()?;
        let add = match self.release_add.as_deref() {
            None => None,
            Some(v) => {
                let (path, json) = pair("release-add", v)?;
                let value = serde_json::from_str(&json).map_err(|e| {
                    anyhow::anyhow!("--release-add {v:?}: the value is not JSON: {e}")
                })?;
                Some((path, value))
            }
        };
        let nonempty = |flag: &str, v: &Option<String>| -> anyhow::Result<Option<String>> {
            match v {
                Some(s) if s.trim().is_empty() => anyhow::bail!("--{flag}: must not be empty"),
                other => Ok(other.clone()),
            }
        };
        Ok(Some(Release {
            share,
            version: self.release_version.clone(),
            rename,
            retype: nonempty("release-retype", &self.release_retype)?,
            drop: nonempty("release-drop", &self.release_drop)?,
            add,
            event_type: nonempty("release-event-type", &self.release_event_type)?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use serde_json::json;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        r: ReleaseArgs,
    }

    fn parse(args: &[&str]) -> anyhow::Result<Option<Release>> {
        let cli = Cli::try_parse_from(std::iter::once("loadgen").chain(args.iter().copied()))?;
        cli.r.release()
    }

    #[test]
    fn no_share_no_release() {
        assert_eq!(parse(&[]).unwrap(), None);
    }

    #[test]
    fn every_change_maps_to_the_release() {
        let r = parse(&[
            "--release-share",
            "0.3",
            "--release-version",
            "17.0.0",
            "--release-rename",
            "presentation.visibleMs=visibleMillis",
            "--release-retype",
            "rowIndex",
            "--release-drop",
            "context.subtitleLang",
            "--release-add",
            r#"clientHints={"lowData":true}"#,
            "--release-event-type",
            "interaction_v2",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            r,
            Release {
                share: 0.3,
                version: "17.0.0".into(),
                rename: Some(("presentation.visibleMs".into(), "visibleMillis".into())),
                retype: Some("rowIndex".into()),
                drop: Some("context.subtitleLang".into()),
                add: Some(("clientHints".into(), json!({"lowData": true}))),
                event_type: Some("interaction_v2".into()),
            }
        );
    }

    #[test]
    fn bad_flags_are_named() {
        let e = |args: &[&str]| parse(args).unwrap_err().to_string();
        assert!(e(&["--release-share", "1.5"]).starts_with("--release-share 1.5"));
        assert!(e(&["--release-drop", "a"]).contains("needs --release-share"));
        assert!(
            e(&["--release-share", "0.1", "--release-rename", "a"]).starts_with("--release-rename")
        );
        assert!(e(&["--release-share", "0.1", "--release-add", "a={"]).contains("not JSON"));
        assert!(
            e(&["--release-share", "0.1", "--release-drop", " "]).starts_with("--release-drop")
        );
    }
}
