#!/usr/bin/env bash
# The local stack: etcd, kube-apiserver (RBAC enforced), kube-controller-manager, Apache Kafka
# (KRaft, one node) and Prometheus, all on 127.0.0.1 with free ports chosen at start. Kafka has a
# PLAINTEXT listener and a SASL_SSL one (SCRAM-SHA-512, a certificate of the stack's CA) with one
# SCRAM user created when the storage is formatted.
#
#   stack.sh up        provision (first use only) and start everything; idempotent
#   stack.sh down      stop everything and remove the stack's state
#   stack.sh status    say which components run
#   stack.sh token NS SA [SECONDS]   mint a token for a ServiceAccount (TokenRequest API)
#   stack.sh stop COMPONENT [--kill] / start COMPONENT   fault injection (the chaos suite): the
#                      component comes back on its port with its data
#   stack.sh stop COMPONENT --hang / start COMPONENT [--hang]   a hung component: SIGSTOP to its
#                      process group (its port still accepts connections, nothing answers), then
#                      SIGCONT (`start` resumes a hung component with or without --hang)
#
# `up` writes $IMPRESSIONS_STACK_DIR/stack.env (ports, URLs, paths) and an admin kubeconfig that
# tests, the demo and the operator read. A component that fails to start is reported with the
# tail of its log.
set -euo pipefail
shopt -s nullglob
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/versions.env"
cache="${STACK_CACHE:-$HOME/.cache/impressions-stack}"
dir="${IMPRESSIONS_STACK_DIR:-/tmp/impressions-stack}"
bin="$cache/bin"
export PATH="$bin:$PATH"

say() { printf '[stack %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { printf '[stack] ERROR: %s\n' "$*" >&2; exit 1; }

free_ports() { # N → N free loopback ports, one per line
  python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print("\n".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# start NAME CMD...: runs CMD detached, its output in logs/NAME.log, its pid in pids/NAME.
# The pid recorded is the forked shell's until it has exec'd the command, so this waits (≤ 10 s)
# for the exec: a check in between would read the parent script's command line and take the
# component for dead.
start() {
  local name="$1"; shift
  setsid nohup "$@" >"$dir/logs/$name.log" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$dir/pids/$name"
  local deadline=$((SECONDS + 10))
  until alive "$name"; do
    kill -0 "$pid" 2>/dev/null || return 0 # exited at once: wait_for reports it with the log
    ((SECONDS <= deadline)) || die "$name (pid $pid) did not exec within 10s"
    sleep 0.05
  done
}

# alive NAME: the recorded process still runs and is still that component (a pid left over from
# an earlier boot may belong to something else by now).
alive() {
  [[ -f "$dir/pids/$1" ]] || return 1
  local pid; pid="$(cat "$dir/pids/$1")"
  kill -0 "$pid" 2>/dev/null || return 1
  local want="$1"; [[ "$1" == kafka ]] && want="kafka.Kafka"
  local cmd; cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
  [[ "$cmd" == *"$want"* ]]
}

# wait_for NAME SECONDS CHECK...: polls CHECK until it succeeds; on timeout or death of NAME,
# reports the tail of NAME's log and fails.
wait_for() {
  local name="$1" secs="$2"; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    local why=""
    if ! alive "$name"; then why="exited before it was ready"; elif ((SECONDS > deadline)); then why="not ready within ${secs}s"; fi
    if [[ -n "$why" ]]; then
      echo "[stack] $name failed to start ($why); last lines of $dir/logs/$name.log:" >&2
      tail -n 40 "$dir/logs/$name.log" >&2 || true
      exit_report "$name" >&2
      exit 1
    fi
    sleep 0.3
  done
}

# exit_report NAME: how a component that died ended (its exit status, or the signal that killed
# it; an empty log and a SIGKILL point at the OOM killer or something outside the stack) and the
# room the machine had left, so that a failed start says more than an empty log.
exit_report() {
  local pid rc=0; pid="$(cat "$dir/pids/$1" 2>/dev/null)" || { echo "[stack] $1: its pid file is gone ($dir removed while starting?)"; return; }
  if ! kill -0 "$pid" 2>/dev/null; then
    wait "$pid" 2>/dev/null || rc=$?
    if ((rc > 128)); then echo "[stack] $1 (pid $pid) was killed by signal $((rc - 128)) ($(kill -l $((rc - 128)) 2>/dev/null))"
    elif ((rc == 127)); then echo "[stack] $1 (pid $pid): exit status unknown (not a child of this shell)"
    else echo "[stack] $1 (pid $pid) exited with status $rc"; fi
  fi
  echo "[stack] disk at $dir: $(df -h --output=avail,pcent "$dir" 2>/dev/null | tail -1 | xargs) free/used; memory available: $(awk '/MemAvailable/ {printf "%d MiB", $2/1024}' /proc/meminfo)"
}

gen_certs() {
  local c="$dir/certs"; mkdir -p "$c"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=impressions-stack-ca" \
    -keyout "$c/ca.key" -out "$c/ca.crt" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout "$c/apiserver.key" \
    -out "$c/apiserver.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n' >"$c/ext"
  openssl x509 -req -in "$c/apiserver.csr" -CA "$c/ca.crt" -CAkey "$c/ca.key" -CAcreateserial \
    -days 3650 -extfile "$c/ext" -out "$c/apiserver.crt" 2>/dev/null
  openssl genrsa -out "$c/sa.key" 2048 2>/dev/null
  openssl rsa -in "$c/sa.key" -pubout -out "$c/sa.pub" 2>/dev/null
  # Kafka's SASL_SSL listener: a PEM keystore (unencrypted PKCS#8 key, then the certificate).
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$c/kafka.key" \
    -out "$c/kafka.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$c/kafka.ext"
  openssl x509 -req -in "$c/kafka.csr" -CA "$c/ca.crt" -CAkey "$c/ca.key" -CAcreateserial \
    -days 3650 -extfile "$c/kafka.ext" -out "$c/kafka.crt" 2>/dev/null
  cat "$c/kafka.key" "$c/kafka.crt" >"$c/kafka-keystore.pem"
  chmod 600 "$c/kafka.key" "$c/kafka-keystore.pem"
}

kubeconfig() { # FILE USER TOKEN
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: impressions-stack
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority: $dir/certs/ca.crt
users:
- name: $2
  user:
    token: $3
contexts:
- name: $2@impressions-stack
  context: {cluster: impressions-stack, user: $2}
current-context: $2@impressions-stack
EOF
}

start_etcd() {
  say "starting etcd $ETCD_VERSION"
  start etcd etcd --name stack --data-dir "$dir/etcd" --unsafe-no-fsync \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "stack=http://127.0.0.1:$ETCD_PEER_PORT" --log-level warn
  wait_for etcd 30 curl -sf "http://127.0.0.1:$ETCD_PORT/health"
}

start_apiserver() {
  say "starting kube-apiserver $K8S_VERSION (RBAC)"
  start kube-apiserver kube-apiserver --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$APISERVER_PORT" \
    --tls-cert-file "$dir/certs/apiserver.crt" --tls-private-key-file "$dir/certs/apiserver.key" \
    --client-ca-file "$dir/certs/ca.crt" --token-auth-file "$dir/tokens.csv" \
    --authorization-mode RBAC --service-cluster-ip-range 10.96.0.0/16 \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$dir/certs/sa.pub" --service-account-signing-key-file "$dir/certs/sa.key" \
    --enable-priority-and-fairness=false --endpoint-reconciler-type none \
    --cert-dir "$dir/certs/generated" -v 1
  wait_for kube-apiserver 90 curl -sf --cacert "$dir/certs/ca.crt" \
    -H "Authorization: Bearer $ADMIN_TOKEN" "https://127.0.0.1:$APISERVER_PORT/readyz"
}

start_controller_manager() {
  say "starting kube-controller-manager $K8S_VERSION"
  start kube-controller-manager kube-controller-manager --kubeconfig "$dir/kcm.kubeconfig" \
    --leader-elect=false --use-service-account-credentials \
    --service-account-private-key-file "$dir/certs/sa.key" --root-ca-file "$dir/certs/ca.crt" \
    --bind-address 127.0.0.1 --secure-port "$KCM_PORT" \
    --authentication-skip-lookup --authorization-always-allow-paths /healthz,/readyz,/livez \
    --controllers '*,-nodeipam,-service,-route,-cloud-node-lifecycle,-persistentvolume-binder,-attachdetach' \
    --node-monitor-grace-period 60s -v 1
  wait_for kube-controller-manager 60 curl -sfk "https://127.0.0.1:$KCM_PORT/healthz"
}

start_kafka() {
  say "starting Apache Kafka $KAFKA_VERSION (KRaft)"
  local k="$dir/kafka"; mkdir -p "$k"
  local listeners="PLAINTEXT://127.0.0.1:$KAFKA_PORT" sasl=""
  # A stack started before the SASL_SSL listener existed (no port for it in ports.env) is
  # restarted (stack.sh start kafka) as it was.
  if [[ -n "${KAFKA_SASL_PORT:-}" ]]; then
    listeners+=",SASL_SSL://127.0.0.1:$KAFKA_SASL_PORT"
    sasl="sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location=$dir/certs/kafka-keystore.pem"
  fi
  cat >"$k/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=$listeners,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=$listeners
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
$sasl
log.dirs=$k/data
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# Consumer groups of the KIP-848 protocol (the workers' default, source.groupProtocol: Consumer)
# get their session timeout and heartbeat interval from the broker: 45 s and 5 s by default, and
# those are also the minimums. A member learns at its next heartbeat which partitions to give up
# or take, so the heartbeat interval bounds the pause of a scaling action (docs/benchmarks.md,
# bench-rebalance). 1 s and 10 s are what the workers set themselves under the classic protocol;
# production brokers need the same settings (docs/autoscaling.md, the actuator). The bench
# compares with the broker's defaults through KAFKA_CONSUMER_HEARTBEAT_MS=5000
# KAFKA_CONSUMER_SESSION_MS=45000.
group.consumer.heartbeat.interval.ms=${KAFKA_CONSUMER_HEARTBEAT_MS:-1000}
group.consumer.min.heartbeat.interval.ms=500
group.consumer.session.timeout.ms=${KAFKA_CONSUMER_SESSION_MS:-10000}
group.consumer.min.session.timeout.ms=6000
auto.create.topics.enable=false
log.flush.interval.messages=9223372036854775807
log.retention.hours=4
log.segment.bytes=268435456
EOF
  cat >"$k/log4j2.properties" <<'EOF'
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.kafka.request.name = kafka.request.logger
logger.kafka.request.level = WARN
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
logger.started.name = kafka.server.KafkaRaftServer
logger.started.level = INFO
logger.groups.name = org.apache.kafka.coordinator.group
logger.groups.level = INFO
EOF
  local cp="$cache/kafka/libs/*"
  # The JVM's temporary files (lz4's native library, extracted at each start) stay in the stack.
  mkdir -p "$k/tmp"
  local jvm=(-Xms256m -Xmx1g -XX:+UseG1GC -XX:-UsePerfData -Djava.io.tmpdir="$k/tmp"
    -Dlog4j2.configurationFile="$k/log4j2.properties")
  # A restart (stack.sh start kafka) keeps the formatted storage and its data.
  [[ -f "$k/data/meta.properties" ]] || java -cp "$cp" "${jvm[@]}" kafka.tools.StorageTool format \
    -t "$(java -cp "$cp" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)" \
    -c "$k/server.properties" \
    --add-scram "SCRAM-SHA-512=[name=$KAFKA_SASL_USERNAME,password=$KAFKA_SASL_PASSWORD]" \
    >"$dir/logs/kafka-format.log" 2>&1 \
    || { tail -n 20 "$dir/logs/kafka-format.log" >&2; die "formatting Kafka storage failed"; }
  start kafka java -cp "$cp" "${jvm[@]}" kafka.Kafka "$k/server.properties"
}

start_prometheus() {
  say "starting Prometheus $(prometheus --version 2>&1 | head -1 | awk '{print $3}')"
  local p="$dir/prometheus"; mkdir -p "$p/targets" "$p/data" "$p/rules"
  cat >"$p/prometheus.yml" <<EOF
global:
  scrape_interval: 2s
  evaluation_interval: 5s
rule_files:
  - $p/rules/*.yml
scrape_configs:
  - job_name: file-sd
    file_sd_configs:
      - files: ['$p/targets/*.json']
        refresh_interval: 2s
EOF
  start prometheus prometheus --config.file "$p/prometheus.yml" --storage.tsdb.path "$p/data" \
    --web.listen-address "127.0.0.1:$PROMETHEUS_PORT" --web.enable-lifecycle --log.level warn
}

write_env() {
  cat >"$dir/stack.env" <<EOF
# Written by tests/stack/stack.sh up. Read by tests, the demo and the Makefile.
IMPRESSIONS_STACK_DIR=$dir
STACK_BIN=$bin
KUBECONFIG=$dir/kubeconfig
KUBE_APISERVER=https://127.0.0.1:$APISERVER_PORT
KAFKA_BOOTSTRAP=127.0.0.1:$KAFKA_PORT
KAFKA_SASL_BOOTSTRAP=127.0.0.1:$KAFKA_SASL_PORT
KAFKA_SASL_MECHANISM=SCRAM-SHA-512
KAFKA_SASL_USERNAME=$KAFKA_SASL_USERNAME
KAFKA_SASL_PASSWORD=$KAFKA_SASL_PASSWORD
KAFKA_CA_FILE=$dir/certs/ca.crt
PROMETHEUS_URL=http://127.0.0.1:$PROMETHEUS_PORT
PROMETHEUS_FILE_SD_DIR=$dir/prometheus/targets
PROMETHEUS_RULES_DIR=$dir/prometheus/rules
K8S_VERSION=$K8S_VERSION
KAFKA_VERSION=$KAFKA_VERSION
EOF
}

all_alive() {
  for c in etcd kube-apiserver kube-controller-manager kafka prometheus; do alive "$c" || return 1; done
}

up() {
  if [[ -f "$dir/stack.env" ]] && all_alive; then
    say "already up: $dir/stack.env"
    grep -q '^KAFKA_SASL_BOOTSTRAP=' "$dir/stack.env" \
      || say "WARNING: started by an older stack.sh, without Kafka's SASL_SSL listener (tests/tests/kafka_security.rs needs it): restart with stack.sh down && stack.sh up"
    return
  fi
  [[ -d "$dir" ]] && down
  local t0=$SECONDS
  "$here/provision.sh" all
  mkdir -p "$dir/logs" "$dir/pids"
  read -r ETCD_PORT ETCD_PEER_PORT APISERVER_PORT KCM_PORT KAFKA_PORT KAFKA_SASL_PORT \
    KAFKA_CONTROLLER_PORT PROMETHEUS_PORT <<<"$(free_ports 8 | tr '\n' ' ')"
  KAFKA_SASL_USERNAME=impressions
  KAFKA_SASL_PASSWORD="$(openssl rand -hex 16)"
  declare -p ETCD_PORT ETCD_PEER_PORT APISERVER_PORT KCM_PORT KAFKA_PORT KAFKA_CONTROLLER_PORT \
    PROMETHEUS_PORT KAFKA_SASL_PORT KAFKA_SASL_USERNAME KAFKA_SASL_PASSWORD >"$dir/ports.env"
  ADMIN_TOKEN="$(openssl rand -hex 24)"
  gen_certs
  printf '%s,admin,admin,"system:masters"\n%s,system:kube-controller-manager,kcm\n' \
    "$ADMIN_TOKEN" "$(openssl rand -hex 24)" >"$dir/tokens.csv"
  chmod 600 "$dir/tokens.csv"
  kubeconfig "$dir/kubeconfig" admin "$ADMIN_TOKEN"
  kubeconfig "$dir/kcm.kubeconfig" system:kube-controller-manager "$(sed -n 2p "$dir/tokens.csv" | cut -d, -f1)"
  # Kafka and Prometheus start while the control plane comes up.
  start_kafka
  start_prometheus
  start_etcd
  start_apiserver
  start_controller_manager
  wait_for kafka 90 grep -q "Kafka Server started" "$dir/logs/kafka.log"
  wait_for prometheus 30 curl -sf "http://127.0.0.1:$PROMETHEUS_PORT/-/ready"
  write_env
  say "up in $((SECONDS - t0))s: source $dir/stack.env"
}

down() {
  [[ -d "$dir/pids" ]] || { rm -rf "$dir"; return; }
  local running=()
  for c in prometheus kafka kube-controller-manager kube-apiserver etcd; do
    alive "$c" || continue
    running+=("$c")
    local pid; pid="$(cat "$dir/pids/$c")"
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    kill -CONT -- "-$pid" 2>/dev/null || true # a hung component handles SIGTERM once resumed
  done
  for _ in $(seq 1 50); do
    local any=0
    for c in "${running[@]}"; do alive "$c" && any=1; done
    ((any)) || break
    sleep 0.2
  done
  for c in "${running[@]}"; do
    alive "$c" && { kill -KILL -- "-$(cat "$dir/pids/$c")" 2>/dev/null || true; }
  done
  rm -rf "$dir"
  say "down"
}

status() {
  [[ -f "$dir/stack.env" ]] || { echo "stack is down ($dir/stack.env missing)"; return 1; }
  local rc=0
  for c in etcd kube-apiserver kube-controller-manager kafka prometheus; do
    if hung "$c"; then echo "$c: hung (SIGSTOP; pid $(cat "$dir/pids/$c"))"; rc=1
    elif alive "$c"; then echo "$c: running (pid $(cat "$dir/pids/$c"))"; else echo "$c: NOT running"; rc=1; fi
  done
  return $rc
}

# stop COMPONENT [--kill|--hang] / start COMPONENT [--hang]: fault injection for the chaos suite.
# The component comes back on the same port with its data (Kafka's log, etcd's keys, Prometheus's
# TSDB). --hang stops the process group with SIGSTOP instead: the kernel still accepts
# connections on its port, nothing reads or answers them, until `start` sends SIGCONT.
components="etcd kube-apiserver kube-controller-manager kafka prometheus"

# hung NAME: the component's process is stopped (SIGSTOP).
hung() {
  alive "$1" || return 1
  [[ "$(ps -o state= -p "$(cat "$dir/pids/$1")" 2>/dev/null | tr -d ' ')" == T* ]]
}

stop_component() {
  local c="$1" sig="${2:-}"
  [[ " $components " == *" $c "* ]] || die "unknown component $c (one of: $components)"
  [[ -z "$sig" || "$sig" == --kill || "$sig" == --hang ]] || die "unknown option $sig (--kill or --hang)"
  alive "$c" || { say "$c is not running"; return; }
  local pid; pid="$(cat "$dir/pids/$c")"
  if [[ "$sig" == --hang ]]; then
    kill -STOP -- "-$pid" 2>/dev/null || kill -STOP "$pid"
    for _ in $(seq 1 25); do hung "$c" && break; sleep 0.2; done
    hung "$c" || die "$c (pid $pid) did not stop on SIGSTOP"
    say "hung $c (SIGSTOP; its port accepts connections, nothing answers)"
    return
  fi
  if [[ "$sig" == --kill ]]; then kill -KILL -- "-$pid" 2>/dev/null || true; else kill -TERM -- "-$pid" 2>/dev/null || true; fi
  # A hung process handles its SIGTERM only once it runs again.
  kill -CONT -- "-$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do alive "$c" || break; sleep 0.2; done
  alive "$c" && { kill -KILL -- "-$pid" 2>/dev/null || true; sleep 0.5; }
  say "stopped $c${sig:+ ($sig)}"
}

start_component() {
  local c="$1" opt="${2:-}"
  [[ -z "$opt" || "$opt" == --hang ]] || die "unknown option $opt (--hang)"
  [[ -f "$dir/ports.env" ]] || die "the stack is not up"
  source "$dir/ports.env"
  ADMIN_TOKEN="$(head -1 "$dir/tokens.csv" | cut -d, -f1)"
  if hung "$c"; then
    local pid; pid="$(cat "$dir/pids/$c")"
    kill -CONT -- "-$pid" 2>/dev/null || kill -CONT "$pid"
    for _ in $(seq 1 25); do hung "$c" || break; sleep 0.2; done
    hung "$c" && die "$c (pid $pid) did not resume on SIGCONT"
    say "resumed $c (SIGCONT)"
    return
  fi
  [[ "$opt" == --hang ]] && { alive "$c" || die "$c is not running: nothing to resume"; say "$c was not hung"; return; }
  alive "$c" && { say "$c is already running"; return; }
  case "$c" in
    etcd) start_etcd ;;
    kube-apiserver) start_apiserver ;;
    kube-controller-manager) start_controller_manager ;;
    kafka) start_kafka; wait_for kafka 90 grep -q "Kafka Server started" "$dir/logs/kafka.log" ;;
    prometheus) start_prometheus; wait_for prometheus 30 curl -sf "http://127.0.0.1:$PROMETHEUS_PORT/-/ready" ;;
    *) die "unknown component $c (one of: $components)" ;;
  esac
  say "started $c"
}

token() {
  [[ $# -ge 2 ]] || die "usage: stack.sh token NAMESPACE SERVICEACCOUNT [SECONDS]"
  KUBECONFIG="$dir/kubeconfig" kubectl create token "$2" -n "$1" --duration "${3:-3600}s"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  token) shift; token "$@" ;;
  stop) shift; stop_component "$@" ;;
  start) shift; start_component "$@" ;;
  *) echo "usage: $0 up|down|status|token NS SA [SECONDS]|stop COMPONENT [--kill|--hang]|start COMPONENT [--hang]" >&2; exit 2 ;;
esac
