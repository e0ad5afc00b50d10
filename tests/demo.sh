#!/usr/bin/env bash
# `make demo`: installs the CRDs, the example ScalingPolicy and ImpressionPipeline on the local
# stack (already up), and shows the pipeline as `kubectl get ipl` does.
set -euo pipefail
cd "$(dirname "$0")/.."
source "${IMPRESSIONS_STACK_DIR:-/tmp/impressions-stack}/stack.env"
export KUBECONFIG
kubectl() { "$STACK_BIN/kubectl" "$@"; }

echo "== installing the CRDs"
kubectl apply --server-side -f crds/yaml/
kubectl wait --for condition=Established --timeout=60s crd/impressionpipelines.impressions.dev crd/scalingpolicies.impressions.dev

echo "== applying the example ScalingPolicy and ImpressionPipeline (Kafka at $KAFKA_BOOTSTRAP)"
kubectl create namespace demo --dry-run=client -o yaml | kubectl apply -f -
kubectl apply --server-side -f examples/scaling-policy.yaml
sed "s/bootstrapServers: .*/bootstrapServers: $KAFKA_BOOTSTRAP/" examples/pipeline.yaml \
  | kubectl apply --server-side -n demo -f -

echo "== kubectl get scalingpolicies,ipl -A"
kubectl get scalingpolicies
kubectl get ipl -A
