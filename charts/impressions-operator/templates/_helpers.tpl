{{/* The chart's name. */}}
{{- define "impressions-operator.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: the release name, prefixed with the chart name unless it holds it. */}}
{{- define "impressions-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "impressions-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "impressions-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "impressions-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "impressions-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
impressions.dev/region: {{ .Values.region | quote }}
{{- end }}

{{- define "impressions-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "impressions-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The name of the leader Lease: the operator derives it from the region (operator/src/main.rs). */}}
{{- define "impressions-operator.leaseName" -}}
impressions-operator-{{ .Values.region }}
{{- end }}

{{/*
The namespaced permissions of the operator, granted cluster-wide (ClusterRole) or per watched
namespace (Role). Each rule is exactly what operator/src calls; nothing here deletes anything:
children are removed by the garbage collector through their owner references.
*/}}
{{- define "impressions-operator.namespacedRules" -}}
# The controller's pipeline watch (list + watch); the pipelines are never read one by one.
- apiGroups: [impressions.dev]
  resources: [impressionpipelines]
  verbs: [list, watch]
# Status is written by server-side apply to the status subresource (reconcile.rs).
- apiGroups: [impressions.dev]
  resources: [impressionpipelines/status]
  verbs: [patch]
# Children carry a controller owner reference with blockOwnerDeletion, which clusters running
# the OwnerReferencesPermissionEnforcement admission plugin only allow with this.
- apiGroups: [impressions.dev]
  resources: [impressionpipelines/finalizers]
  verbs: [update]
# Children: metadata-only watches (list + watch) and server-side apply (patch; create when the
# apply creates the object). Deployments and ConfigMaps also delete: the archiver's Deployment
# and ConfigMap go when a pipeline's spec.archive is removed (reconcile/archiver.rs); RBAC cannot
# narrow a delete to them (their names are the pipelines').
- apiGroups: [apps]
  resources: [deployments]
  verbs: [list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [services]
  verbs: [list, watch, create, patch]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [list, watch, create, patch]
# ConfigMaps: the worker and archiver config children (list, watch, create, patch; delete, see
# above) and the catalog ConfigMap a pipeline may name (get, resolve.rs).
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch, create, patch, delete]
# Secrets: only get. resolve.rs reads a pipeline's source secretRef whole (its librdkafka
# settings are the lag client's: SASL/TLS, docs/kafka-security.md) and checks that the sink
# secretRef exists. No list or watch: the operator cannot enumerate Secrets. The names are chosen
# by pipeline owners, so resourceNames cannot narrow it; set watchNamespaces to confine it to the
# pipelines' namespaces.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
# RawEventSchemas (reconcile/raw_schema.rs): one per pipeline, read (get), created or taken
# over by server-side apply (create, patch), its status written (patch); a metadata-only watch
# (list, watch) for the accept annotation. Never deleted: the pipeline owns it.
- apiGroups: [impressions.dev]
  resources: [raweventschemas]
  verbs: [get, list, watch, create, patch]
- apiGroups: [impressions.dev]
  resources: [raweventschemas/status]
  verbs: [patch]
# EndpointSlices: list only, of a pipeline's worker Service, for the ready worker pods' IPs
# and metrics port where their schema windows are read (schema/source.rs). Nothing on pods.
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list]
# Events on pipelines (kube-runtime's Recorder creates, then patches a repeated event's series).
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end }}
