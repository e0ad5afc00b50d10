#!/usr/bin/env bash
# The images' binaries: release builds of worker, loadgen and operator, stripped of their debug
# info (the symbols stay, for backtraces), and a CycloneDX SBOM per image (the crate of its
# binaries with every dependency).
#
# Usage: images/binaries.sh DEST — writes DEST/{worker,loadgen,operator} and
# DEST/{worker,operator}.cdx.json. Needs cargo-cyclonedx (installed when missing).
set -euo pipefail
dest=${1:?usage: images/binaries.sh DEST}
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)
cd "$(dirname "$0")/.."
cargo=${CARGO:-cargo}

$cargo build --release --locked -p impressions-worker -p impressions-operator \
  --bin worker --bin loadgen --bin operator
release=${CARGO_TARGET_DIR:-target}/release
for bin in worker loadgen operator; do
  strip --strip-debug -o "$dest/$bin" "$release/$bin"
done

# cargo-cyclonedx writes one SBOM next to each workspace member's Cargo.toml: the worker's and
# the operator's are kept, the others removed.
command -v cargo-cyclonedx >/dev/null || $cargo install --locked cargo-cyclonedx@0.5.9
sbom=impressions-image.sbom
trap 'find . -name "$sbom.json" -not -path "./target/*" -delete' EXIT
$cargo cyclonedx -q --format json --spec-version 1.5 --no-build-deps --override-filename "$sbom"
for pkg in worker operator; do
  mv "$pkg/$sbom.json" "$dest/$pkg.cdx.json"
done
