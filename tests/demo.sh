#!/usr/bin/env bash
# `make demo`: on the local stack (already up), installs the CRDs, the example ScalingPolicy and
# ImpressionPipeline, runs the operator for the "local" region until the pipeline is reconciled,
# and shows it as `kubectl get ipl` does. (Worker pods stay Pending here: running them as local
# processes is the node agent's job, see the issue tracker.)
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

echo "== starting the operator for region local"
log="$IMPRESSIONS_STACK_DIR/logs/demo-operator.log"
target/debug/operator run --region local --namespace demo --prometheus-url "$PROMETHEUS_URL" \
  --metrics-listen 127.0.0.1:0 >"$log" 2>&1 &
op=$!
trap 'kill $op 2>/dev/null || true' EXIT
kubectl wait --for condition=Ready --timeout=60s -n demo ipl/impressions \
  || { tail -n 30 "$log"; exit 1; }
# One evaluation of lag and throughput (the policy evaluates every 15 s).
kubectl wait --for condition=MetricsAvailable=false --timeout=40s -n demo ipl/impressions >/dev/null 2>&1 \
  || kubectl wait --for condition=MetricsAvailable --timeout=5s -n demo ipl/impressions >/dev/null 2>&1 || true

echo "== kubectl get scalingpolicies,ipl -A"
kubectl get scalingpolicies
kubectl get ipl -A
echo
echo "== the pipeline's conditions and last decision"
kubectl get ipl -n demo impressions -o jsonpath='{range .status.conditions[*]}{.type}={.status} ({.reason}): {.message}{"\n"}{end}{"lastDecision: "}{.status.lastDecision.reason}{": "}{.status.lastDecision.message}{"\n"}'
echo
echo "== the worker Deployment the operator applied"
kubectl get deploy,cm,svc,pdb -n demo -l impressions.dev/pipeline=impressions
