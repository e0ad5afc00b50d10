#!/usr/bin/env bash
# `make images`: builds the worker, operator and archiver images of images/Containerfile here, where no
# registry can be reached. The Containerfile's `binaries` stage runs on the host
# (images/binaries.sh), its `base` stage too (images/base.sh, cached by the script's hash in
# ~/.cache/impressions-images); podman builds the final stages from them. The images are tagged
# in podman's local storage and saved as OCI archives in out/; out/images.json has their sizes.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || revision="$revision-dirty"
created=$(git log -1 --format=%ct 2>/dev/null || date +%s)
registry=${IMAGE_REGISTRY:-ghcr.io/impressions}
cache=${IMPRESSIONS_IMAGES_CACHE:-$HOME/.cache/impressions-images}
out=out
stage=$out/images

log() { echo "[images $(date +%H:%M:%S)] $*" >&2; }
if ! command -v podman >/dev/null || ! command -v runc >/dev/null; then
  log "installing podman and runc from Debian's packages"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc >/dev/null
fi
for tool in podman runc dpkg-deb apt-get strip; do
  command -v "$tool" >/dev/null || { echo "images: $tool is missing (Debian: apt-get install podman runc binutils)" >&2; exit 1; }
done

log "binaries (release) and SBOMs"
rm -rf "$stage" && mkdir -p "$stage"
images/binaries.sh "$stage/dist"

base=$cache/base-$(sha256sum images/base.sh | cut -c1-16)
if [ ! -d "$base/rootfs" ]; then
  log "runtime base from Debian packages into $base"
  images/base.sh "$base"
fi

entries=()
for target in worker operator archiver; do
  image=$registry/$target:$version
  log "building $image"
  podman build -q -f images/Containerfile --target "$target" \
    --build-context binaries="$stage" --build-context base="$base" \
    --build-arg VERSION="$version" --build-arg REVISION="$revision" \
    --timestamp "$created" -t "$image" "$stage" >/dev/null
  archive=$out/$target-$version.oci.tar
  rm -f "$archive"
  podman save -q --format oci-archive -o "$archive" "$image"
  size=$(podman image inspect --format '{{.Size}}' "$image")
  bytes=$(stat -c %s "$archive")
  log "$image: $((size / 1024 / 1024)) MiB unpacked, $archive $((bytes / 1024 / 1024)) MiB (compressed layers)"
  entries+=("$(printf '{"image": "%s", "revision": "%s", "size_bytes": %s, "archive": "%s", "archive_bytes": %s}' \
    "$image" "$revision" "$size" "$archive" "$bytes")")
done
{
  printf '{\n  "date": "%s",\n  "command": "make images",\n  "images": [\n    ' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  (IFS=$'\n'; echo "${entries[*]}") | paste -sd, | sed 's/},{/},\n    {/g'
  printf '  ]\n}\n'
} > "$out/images.json"
log "done: $out/images.json"
