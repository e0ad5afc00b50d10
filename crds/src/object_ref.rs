//! A reference to an object in the pipeline's own namespace (a Secret, a ConfigMap), shared by
//! the pipeline's sections.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// A reference to an object in the pipeline's own namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct LocalObjectRef {
    /// The object's name.
    #[x_kube(validation = kube::core::Rule::new(crate::OBJECT_NAME_RULE).message(crate::OBJECT_NAME_MESSAGE))]
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}
