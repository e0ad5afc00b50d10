//! What the operator last applied to each child and the version each child has now (from the
//! children's watches): a child whose desired form is unchanged and that nobody changed since
//! the operator's own apply is not applied again, so an evaluation that changes nothing sends
//! no PATCH.

use std::{
    collections::HashMap,
    hash::{Hash, Hasher},
    sync::Mutex,
};

/// A child: (kind, namespace, name).
pub type ChildKey = (&'static str, String, String);

#[derive(Debug, Clone)]
struct Applied {
    hash: u64,
    resource_version: String,
    /// The object the API server returned, as JSON text without its managed fields (the
    /// Deployment's status is read from it). Text, not a `serde_json::Value`: a tree of maps
    /// costs several times its text, and with four children per pipeline the cache was most
    /// of the operator's heap at 1,000 pipelines.
    object: Box<str>,
}

/// The last apply of each child and the live versions the watches saw.
#[derive(Debug, Default)]
pub struct AppliedChildren {
    applied: Mutex<HashMap<ChildKey, Applied>>,
    live: Mutex<HashMap<ChildKey, String>>,
}

/// The kind of a child type, as the keys name it.
pub fn kind_of<K: kube::Resource<DynamicType = ()>>() -> &'static str {
    match K::kind(&()) {
        std::borrow::Cow::Borrowed(k) => k,
        std::borrow::Cow::Owned(_) => "child",
    }
}

/// A hash of a desired object's JSON.
pub fn desired_hash(desired: &serde_json::Value) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    desired.to_string().hash(&mut h);
    h.finish()
}

impl AppliedChildren {
    /// The object of the last apply, when applying `desired` again would change nothing: its
    /// form is the one last applied and the child's live version is the one that apply
    /// returned (nobody changed it since, it was not deleted).
    pub fn unchanged(&self, key: &ChildKey, desired: u64) -> Option<Box<str>> {
        let applied = self.applied.lock().expect("applied lock");
        let a = applied.get(key)?;
        let live = self.live.lock().expect("live lock");
        (a.hash == desired && live.get(key) == Some(&a.resource_version)).then(|| a.object.clone())
    }

    /// Records an apply and what the API server returned: its resource version and the
    /// object as JSON text.
    pub fn record(&self, key: ChildKey, desired: u64, resource_version: String, object: String) {
        // The watch may not have seen this version yet: it is the live one now.
        self.live
            .lock()
            .expect("live lock")
            .insert(key.clone(), resource_version.clone());
        self.applied.lock().expect("applied lock").insert(
            key,
            Applied {
                hash: desired,
                resource_version,
                object: object.into_boxed_str(),
            },
        );
    }

    /// A child's version as its watch saw it (`None`: deleted).
    pub fn observe(&self, key: ChildKey, resource_version: Option<String>) {
        let mut live = self.live.lock().expect("live lock");
        match resource_version {
            Some(rv) => {
                live.insert(key, rv);
            }
            None => {
                live.remove(&key);
            }
        }
    }

    /// Whether a child exists as its watch last saw it (or the operator's own apply).
    pub fn is_live(&self, key: &ChildKey) -> bool {
        self.live.lock().expect("live lock").contains_key(key)
    }

    /// Forgets the children of a deleted pipeline (by namespace and child name).
    pub fn forget(&self, namespace: &str, name: &str) {
        let keep = |k: &ChildKey| !(k.1 == namespace && k.2 == name);
        self.applied
            .lock()
            .expect("applied lock")
            .retain(|k, _| keep(k));
        self.live.lock().expect("live lock").retain(|k, _| keep(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_an_unchanged_child_nobody_touched_is_skipped() {
        let c = AppliedChildren::default();
        let key: ChildKey = ("Deployment", "ns".into(), "p-worker".into());
        let desired = desired_hash(&json!({"spec": {"replicas": 2}}));
        assert!(c.unchanged(&key, desired).is_none(), "never applied");
        c.record(key.clone(), desired, "7".into(), "{}".into());
        assert_eq!(c.unchanged(&key, desired).as_deref(), Some("{}"));
        let other = desired_hash(&json!({"spec": {"replicas": 3}}));
        assert!(
            c.unchanged(&key, other).is_none(),
            "the desired form changed"
        );
        c.observe(key.clone(), Some("8".into()));
        assert!(
            c.unchanged(&key, desired).is_none(),
            "someone changed the child"
        );
        c.record(key.clone(), desired, "9".into(), "{}".into());
        c.observe(key.clone(), None);
        assert!(
            c.unchanged(&key, desired).is_none(),
            "the child was deleted"
        );
    }
}
