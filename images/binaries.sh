#!/usr/bin/env bash
# The images' binaries: release builds of worker, loadgen, operator and archiver, stripped of their debug
# info (the symbols stay, for backtraces), and a CycloneDX SBOM per image (the crate of its
# binaries with every dependency).
#
# Usage: images/binaries.sh DEST — writes DEST/{worker,loadgen,operator,archiver} and
# DEST/{worker,operator,archiver}.cdx.json. Needs cargo-cyclonedx (installed when missing).
set -euo pipefail
dest=${1:?usage: images/binaries.sh DEST}
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)
cd "$(dirname "$0")/.."
cargo=${CARGO:-cargo}

$cargo build --release --locked -p impressions-worker -p impressions-operator \
  -p impressions-archiver --bin worker --bin loadgen --bin operator --bin archiver
release=${CARGO_TARGET_DIR:-target}/release
for bin in worker loadgen operator archiver; do
  strip --strip-debug -o "$dest/$bin" "$release/$bin"
done

# cargo-cyclonedx writes one SBOM next to each workspace member's Cargo.toml: the worker's, the
# operator's and the archiver's are kept, the others removed.
command -v cargo-cyclonedx >/dev/null || $cargo install --locked cargo-cyclonedx@0.5.9
sbom=impressions-image.sbom
trap 'find . -name "$sbom.json" -not -path "./target/*" -delete' EXIT
$cargo cyclonedx -q --format json --spec-version 1.5 --no-build-deps --override-filename "$sbom"
for pkg in worker operator archiver; do
  mv "$pkg/$sbom.json" "$dest/$pkg.cdx.json"
done
