//! A Kafka cluster's client settings from a pipeline's Secret: read by the dereference step,
//! rendered into the worker's environment, and used by the operator's own lag client.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;

/// librdkafka settings from a pipeline's Secret (`security.protocol`, `sasl.mechanism`,
/// `sasl.username`, `sasl.password`, `ssl.ca.pem`, …). Debug shows the keys only: the values
/// are credentials.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct KafkaSettings(BTreeMap<String, String>);

impl std::fmt::Debug for KafkaSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl KafkaSettings {
    /// The Secret's keys as the worker reads them. The worker gets each key as the environment
    /// variable `WORKER__SOURCE__KAFKA__<key>` and takes the property name as the key lowercased
    /// with `_` read as `.`, so `sasl.password` and `SASL_PASSWORD` are the same setting.
    pub fn from_secret(secret: &Secret) -> Self {
        Self::from_pairs(
            secret
                .data
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned())),
        )
    }

    /// Settings from (key, value) pairs, keys read as [`KafkaSettings::from_secret`] does.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        KafkaSettings(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase().replace('_', "."), v))
                .collect(),
        )
    }

    /// A setting's value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// No settings (a cluster without authentication).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every (property, value).
    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter()
    }
}
