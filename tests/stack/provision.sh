#!/usr/bin/env bash
# Provisions the local stack's components from the package registries into the stack cache
# (outside the work tree). Each step is skipped when its output is already cached.
#   etcd, kube-apiserver, kube-controller-manager, kubectl: built from Go modules (wrappers in go/)
#   helm: go install at a pinned version
#   Apache Kafka (KRaft): jars from Maven Central (kafka/pom.xml)
#   Prometheus + promtool: Debian's package
#   pyiceberg (the archive tests' independent reader of the Iceberg tables): a venv from PyPI
#   Apache Iceberg's REST catalog server (the archive tests' REST catalog): jars from Maven
#   Central (iceberg-rest/pom.xml), run by iceberg-rest/run.sh with the machine's Java
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/versions.env"
cache="${STACK_CACHE:-$HOME/.cache/impressions-stack}"
mkdir -p "$cache/bin"
export CGO_ENABLED=0 GOFLAGS=-mod=mod

step() { printf '[provision %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

build_kubernetes() {
  local out="$cache/kubernetes-$K8S_VERSION"
  if [[ -x "$out/kube-apiserver" && -x "$out/kube-controller-manager" && -x "$out/kubectl" ]]; then
    return
  fi
  local minor; minor="$(echo "$K8S_VERSION" | cut -d. -f2)"
  local ld="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION"
  ld+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
  ld+=" -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
  ld+=" -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  ld+=" -X k8s.io/component-base/version.gitTreeState=clean"
  mkdir -p "$out.tmp"
  for cmd in kube-apiserver kube-controller-manager kubectl; do
    step "building $cmd $K8S_VERSION (cold: several minutes on 2 cores)"
    (cd "$here/go/kubernetes" && go build -trimpath -ldflags "$ld" -o "$out.tmp/$cmd" "k8s.io/kubernetes/cmd/$cmd")
  done
  rm -rf "$out" && mv "$out.tmp" "$out"
}

build_etcd() {
  local out="$cache/etcd-$ETCD_VERSION"
  [[ -x "$out/etcd" ]] && return
  step "building etcd $ETCD_VERSION"
  mkdir -p "$out.tmp"
  (cd "$here/go/etcd" && go build -trimpath -ldflags "-s -w" -o "$out.tmp/etcd" go.etcd.io/etcd/server/v3)
  rm -rf "$out" && mv "$out.tmp" "$out"
}

install_helm() {
  local out="$cache/helm-$HELM_VERSION"
  [[ -x "$out/helm" ]] && return
  step "installing helm $HELM_VERSION"
  local minor; minor="$(echo "$K8S_VERSION" | cut -d. -f2)"
  local ld="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  ld+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor"
  GOBIN="$out.tmp" go install -trimpath -ldflags "$ld" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  rm -rf "$out" && mv "$out.tmp" "$out"
}

fetch_kafka() {
  local out="$cache/kafka-$KAFKA_VERSION"
  [[ -f "$out/libs/.complete" ]] && return
  step "resolving Apache Kafka $KAFKA_VERSION from Maven Central"
  rm -rf "$out" && mkdir -p "$out/libs"
  mvn -q -B -f "$here/kafka/pom.xml" -Dkafka.version="$KAFKA_VERSION" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$out/libs"
  touch "$out/libs/.complete"
}

install_prometheus() {
  command -v prometheus >/dev/null && command -v promtool >/dev/null && return
  step "installing prometheus from Debian's packages"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  # The package's service is not wanted: the stack runs Prometheus itself on a loopback port.
  (systemctl stop prometheus prometheus-node-exporter 2>/dev/null || true)
}

install_pyiceberg() {
  local out="$cache/pyiceberg-$PYICEBERG_VERSION"
  [[ -x "$out/bin/python" && -f "$out/.complete" ]] && return
  step "installing pyiceberg $PYICEBERG_VERSION (sql-sqlite, pyarrow) into a venv from PyPI"
  rm -rf "$out" && python3 -m venv "$out"
  "$out/bin/pip" install -q --disable-pip-version-check "pyiceberg[sql-sqlite,pyarrow]==$PYICEBERG_VERSION"
  touch "$out/.complete"
}

fetch_iceberg_rest() {
  local out="$cache/iceberg-rest-$ICEBERG_REST_VERSION"
  [[ -f "$out/lib/.complete" ]] && return
  step "resolving Apache Iceberg's REST catalog server $ICEBERG_REST_VERSION from Maven Central"
  rm -rf "$out" && mkdir -p "$out/lib"
  mvn -q -B -f "$here/iceberg-rest/pom.xml" -Diceberg.version="$ICEBERG_REST_VERSION" \
    dependency:copy-dependencies -DoutputDirectory="$out/lib"
  touch "$out/lib/.complete"
}

# Links the pinned binaries into one folder on the stack's PATH.
link_bin() {
  ln -sf "$cache/kubernetes-$K8S_VERSION"/* "$cache/bin/"
  ln -sf "$cache/etcd-$ETCD_VERSION/etcd" "$cache/bin/etcd"
  ln -sf "$cache/helm-$HELM_VERSION/helm" "$cache/bin/helm"
  ln -sfn "$cache/kafka-$KAFKA_VERSION" "$cache/kafka"
  # a wrapper, not a link: a venv's python finds its packages from the path it is started by
  rm -f "$cache/bin/pyiceberg-python"
  printf '#!/bin/sh\nexec "%s" "$@"\n' "$cache/pyiceberg-$PYICEBERG_VERSION/bin/python" >"$cache/bin/pyiceberg-python"
  chmod +x "$cache/bin/pyiceberg-python"
  local rest="$cache/iceberg-rest-$ICEBERG_REST_VERSION"
  if [[ -d "$rest/lib" ]]; then
    # the script is copied (the cache outlives this work tree), its jars named by a wrapper
    cp "$here/iceberg-rest/run.sh" "$rest/run.sh"
    rm -f "$cache/bin/iceberg-rest-catalog"
    printf '#!/bin/sh\nICEBERG_REST_LIB="%s" exec "%s" "$@"\n' "$rest/lib" "$rest/run.sh" >"$cache/bin/iceberg-rest-catalog"
    chmod +x "$cache/bin/iceberg-rest-catalog"
  fi
}

what="${1:-all}"
case "$what" in
  all) install_prometheus; fetch_kafka; build_etcd; build_kubernetes; install_helm; install_pyiceberg; fetch_iceberg_rest; link_bin ;;
  prometheus) install_prometheus ;;
  kafka) fetch_kafka ;;
  etcd) build_etcd ;;
  kubernetes) build_kubernetes ;;
  helm) install_helm ;;
  pyiceberg) install_pyiceberg; link_bin ;;
  iceberg-rest) fetch_iceberg_rest; link_bin ;;
  *) echo "usage: $0 [all|prometheus|kafka|etcd|kubernetes|helm|pyiceberg|iceberg-rest]" >&2; exit 2 ;;
esac
step "done ($what) in $cache"
