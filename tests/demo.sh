#!/usr/bin/env bash
# `make demo`: the closed loop on the local stack (already up). Installs the CRDs, the demo
# ScalingPolicy and ImpressionPipeline, starts the operator, the node agent (worker pods as local
# processes) and loadgen on a traffic trace, and shows a live view of the pipeline. At the end of
# the trace or at Ctrl-C it writes a plot of the run and stops everything it started.
#
#   DEMO_TRACE    loadgen trace (default diurnal:300:3600:240: a 4-minute "day", 300 → 3,600/s)
#   DEMO_SECONDS  how long loadgen runs (default 240); the view runs 60 s longer
set -euo pipefail
cd "$(dirname "$0")/.."
source "${IMPRESSIONS_STACK_DIR:-/tmp/impressions-stack}/stack.env"
export KUBECONFIG PROMETHEUS_FILE_SD_DIR
kubectl() { "$STACK_BIN/kubectl" "$@"; }
trace="${DEMO_TRACE:-diurnal:300:3600:240}"
seconds="${DEMO_SECONDS:-240}"
logs="$IMPRESSIONS_STACK_DIR/logs"
mkdir -p "$logs" out
pids=()
stop() {
  echo "== stopping the demo's processes"
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  echo "logs: $logs/demo-*.log; the stack keeps running (make stack-down stops it)"
}
trap stop EXIT

echo "== installing the CRDs"
kubectl apply --server-side -f crds/yaml/ >/dev/null
kubectl wait --for condition=Established --timeout=60s \
  crd/impressionpipelines.impressions.dev crd/scalingpolicies.impressions.dev >/dev/null

echo "== a fresh demo namespace, the demo ScalingPolicy and ImpressionPipeline"
kubectl delete namespace demo --ignore-not-found --wait=true >/dev/null
kubectl create namespace demo >/dev/null
kubectl apply --server-side -f tests/demo/policy.yaml
sed "s/KAFKA_BOOTSTRAP/$KAFKA_BOOTSTRAP/" tests/demo/pipeline.yaml | kubectl apply --server-side -n demo -f -

echo "== topics and the title catalog (Kafka at $KAFKA_BOOTSTRAP)"
target/debug/loadgen topics --bootstrap "$KAFKA_BOOTSTRAP" --partitions 8 \
  demo-raw-events demo-impressions demo-impressions-dlq --compacted demo-titles
target/debug/loadgen catalog --bootstrap "$KAFKA_BOOTSTRAP" --topic demo-titles --titles 1000

echo "== starting the node agent, the operator and loadgen ($trace for ${seconds}s)"
target/debug/node_agent --node demo-node --namespace demo --bin-dir target/debug \
  --state-dir "$IMPRESSIONS_STACK_DIR/demo-node" >"$logs/demo-node-agent.log" 2>&1 &
pids+=($!)
target/debug/operator run --region local --namespace demo --prometheus-url "$PROMETHEUS_URL" \
  --worker-image impressions/worker:local --metrics-listen 127.0.0.1:0 >"$logs/demo-operator.log" 2>&1 &
pids+=($!)
kubectl wait --for condition=Available --timeout=90s -n demo deploy/impressions-worker >/dev/null \
  || { tail -n 20 "$logs/demo-operator.log" "$logs/demo-node-agent.log"; exit 1; }
target/debug/loadgen produce --bootstrap "$KAFKA_BOOTSTRAP" --topic demo-raw-events \
  --trace "$trace" --duration "$seconds" --report "$logs/demo-loadgen.json" >/dev/null 2>"$logs/demo-loadgen.log" &
pids+=($!)

plot="out/demo-$(date +%Y%m%d-%H%M%S).svg"
target/debug/operator top --namespace demo --duration $((seconds + 60)) --plot "$plot" \
  2>>"$logs/demo-top.log" || true
echo
echo "== kubectl get ipl -n demo"
kubectl get ipl -n demo
echo "plot of the run: $plot"
