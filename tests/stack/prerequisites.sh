#!/usr/bin/env bash
# Checks for the toolchains the project and its local stack are built with, and installs the
# Debian packages it can. Everything else (etcd, Kubernetes, helm, Kafka, Prometheus) is
# provisioned by provision.sh on first use.
set -euo pipefail
missing=()
for tool in cargo go java mvn python3 openssl curl make cc cmake; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
  echo "missing prerequisites: ${missing[*]}" >&2
  echo "needed: Rust (cargo), Go >= 1.26, Java >= 17 with Maven, Python 3, OpenSSL, curl, a C toolchain and cmake" >&2
  exit 1
fi
if ! pkg-config --exists openssl 2>/dev/null; then
  # rdkafka is built with OpenSSL (SASL_SSL, SCRAM) against the system's library.
  echo "the OpenSSL development files are missing (Debian: apt-get install libssl-dev pkg-config)" >&2
  exit 1
fi
go_minor="$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')"
if ((go_minor < 26)); then
  echo "Go >= 1.26 is needed to build Kubernetes v1.36 (found $(go env GOVERSION))" >&2
  exit 1
fi
