#!/usr/bin/env bash
# `make demo`: the closed loop on the local stack (already up). Installs the CRDs, the demo
# ScalingPolicy and ImpressionPipeline, starts the operator, the node agent (worker pods as
# containers from the worker image through runc, with their CPU and memory limits as cgroup
# limits; `make images` builds the image) and loadgen on a traffic trace, and shows a live view of the pipeline. At the end of
# the trace or at Ctrl-C it writes a plot of the run and stops everything it started.
#
#   DEMO_SECONDS  how long loadgen runs (default 240); the view runs 60 s longer
#   DEMO_TRACE    loadgen trace (default diurnal:300:3600:DEMO_SECONDS: one compressed "day",
#                 300 → 3,600/s)
#
# The demo fails (exit 1) unless the operator scaled the pipeline and the plot was written, and
# when a process it started does not stop within 15 s of SIGTERM.
set -euo pipefail
cd "$(dirname "$0")/../.."
source "${IMPRESSIONS_STACK_DIR:-/tmp/impressions-stack}/stack.env"
export KUBECONFIG PROMETHEUS_FILE_SD_DIR
kubectl() { "$STACK_BIN/kubectl" "$@"; }
seconds="${DEMO_SECONDS:-240}"
trace="${DEMO_TRACE:-diurnal:300:3600:$seconds}"
logs="$IMPRESSIONS_STACK_DIR/logs"
mkdir -p "$logs" out
pids=()
names=()

start_bg() { # NAME LOG COMMAND...: runs COMMAND in the background, its output in LOG
  local name="$1" log="$2"
  shift 2
  "$@" >"$log" 2>&1 &
  pids+=($!)
  names+=("$name")
}

show_logs() {
  local f
  for f in "$logs"/demo-operator.log "$logs"/demo-node-agent.log "$logs"/demo-loadgen.log; do
    if [[ -f "$f" ]]; then
      echo "--- last lines of $f"
      tail -n 20 "$f"
    fi
  done
}

# wait_for WHAT TIMEOUT_S COMMAND...: retries COMMAND every second until it succeeds; on timeout
# says what was awaited, shows the logs and fails.
wait_for() {
  local what="$1" timeout="$2"
  shift 2
  echo "   waiting for $what (at most ${timeout}s)"
  local until=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= until)); then
      echo "demo: $what did not happen within ${timeout}s" >&2
      show_logs >&2
      exit 1
    fi
    sleep 1
  done
}

stop() {
  local rc=$? i p t0
  echo "== stopping the demo's processes (SIGTERM)"
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  t0=$SECONDS
  for i in "${!pids[@]}"; do
    p=${pids[$i]}
    while kill -0 "$p" 2>/dev/null && ((SECONDS - t0 < 15)); do sleep 0.2; done
    if kill -0 "$p" 2>/dev/null; then
      echo "demo: ${names[$i]} did not stop within 15 s of SIGTERM; killed" >&2
      kill -KILL "$p" 2>/dev/null || true
      rc=1
    else
      wait "$p" 2>/dev/null || true
      echo "   ${names[$i]} stopped within $((SECONDS - t0)) s"
    fi
  done
  echo "logs: $logs/demo-*.log; the stack keeps running (make stack-down stops it)"
  exit "$rc"
}
trap stop EXIT

echo "== installing the CRDs"
# The CRDs of this checkout win over whatever an earlier run (tests, another checkout) applied.
kubectl apply --server-side --force-conflicts -f crds/yaml/ >/dev/null
kubectl wait --for condition=Established --timeout=60s \
  crd/impressionpipelines.impressions.dev crd/scalingpolicies.impressions.dev >/dev/null

echo "== a fresh demo namespace, the demo ScalingPolicy and ImpressionPipeline"
kubectl delete namespace demo --ignore-not-found --wait=true --timeout=120s >/dev/null
kubectl create namespace demo >/dev/null
kubectl apply --server-side -f tests/stack/demo/policy.yaml
sed "s/KAFKA_BOOTSTRAP/$KAFKA_BOOTSTRAP/" tests/stack/demo/pipeline.yaml | kubectl apply --server-side -n demo -f -

echo "== topics and the title catalog (Kafka at $KAFKA_BOOTSTRAP)"
target/debug/loadgen topics --bootstrap "$KAFKA_BOOTSTRAP" --partitions 8 \
  demo-raw-events demo-impressions demo-impressions-dlq --compacted demo-titles
target/debug/loadgen catalog --bootstrap "$KAFKA_BOOTSTRAP" --topic demo-titles --titles 1000

echo "== starting the node agent and the operator"
start_bg "node agent" "$logs/demo-node-agent.log" target/debug/node_agent --node demo-node \
  --namespace demo --runtime runc --state-dir "$IMPRESSIONS_STACK_DIR/demo-node"
# The operator's default worker image is the one `make images` built (ghcr.io/impressions/worker).
start_bg operator "$logs/demo-operator.log" target/debug/operator run --region local \
  --namespace demo --prometheus-url "$PROMETHEUS_URL" --metrics-listen 127.0.0.1:0
wait_for "the operator to create the worker Deployment" 60 \
  "$STACK_BIN/kubectl" get -n demo deploy/impressions-worker
wait_for "the worker Deployment to be Available (pods run by the node agent)" 120 \
  "$STACK_BIN/kubectl" wait --for condition=Available --timeout=5s -n demo deploy/impressions-worker

echo "== loadgen: $trace for ${seconds}s"
start_bg loadgen "$logs/demo-loadgen.log" target/debug/loadgen produce \
  --bootstrap "$KAFKA_BOOTSTRAP" --topic demo-raw-events --trace "$trace" \
  --duration "$seconds" --report "$logs/demo-loadgen.json"

stamp="$(date +%Y%m%d-%H%M%S)"
plot="out/demo-$stamp.svg"
observed="out/demo-$stamp.json"
target/debug/operator top --namespace demo --duration $((seconds + 60)) --plot "$plot" \
  --json "$observed" 2>>"$logs/demo-top.log" || true
echo
echo "== kubectl get ipl -n demo"
kubectl get ipl -n demo
if [[ ! -s "$plot" ]]; then
  echo "demo: no plot was written ($plot); see $logs/demo-top.log" >&2
  exit 1
fi
echo "plot of the run: $plot"
python3 - "$observed" <<'PY'
import json, sys
seen = json.load(open(sys.argv[1]))
p = seen.get("demo/impressions")
if not p or not p["desired"]:
    sys.exit("demo: top observed nothing of demo/impressions")
desired = [t["replicas"] for t in p["desired"]]
path = [desired[0]] + [b for a, b in zip(desired, desired[1:]) if a != b]
print("desired replicas over the run: " + " -> ".join(map(str, path)))
if len(path) < 2:
    sys.exit("demo: the operator never scaled the pipeline")
PY
