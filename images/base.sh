#!/usr/bin/env bash
# The images' runtime base, assembled from Debian packages: the shared libraries the binaries
# link (glibc, libgcc, OpenSSL, zlib) and the CA certificates, with a non-root user. No shell, no
# package manager. Each package's control fields go to /var/lib/dpkg/status.d/ (where image
# scanners look for the packages of a distroless image).
#
# Usage: images/base.sh DEST   — writes DEST/rootfs; needs apt-get with package lists (the
# Containerfile's base stage runs `apt-get update` first) and dpkg-deb.
set -euo pipefail
dest=${1:?usage: images/base.sh DEST}
PACKAGES=(libc6 libgcc-s1 libssl3 zlib1g ca-certificates)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/debs"
(cd "$work/debs" && apt-get download -q -o APT::Sandbox::User=root "${PACKAGES[@]}" >/dev/null)

root=$work/rootfs
mkdir -p "$root/var/lib/dpkg/status.d"
for deb in "$work"/debs/*.deb; do
  dpkg-deb -x "$deb" "$root"
  dpkg-deb -f "$deb" > "$root/var/lib/dpkg/status.d/$(dpkg-deb -f "$deb" Package)"
done

# Documentation but the licences, what only runs with a shell or a package manager, and glibc's
# iconv modules (8 MB; nothing here converts character sets).
find "$root/usr/share/doc" -type f ! -name copyright -delete
find "$root/usr/share/doc" -type l -delete
rm -rf "$root/usr/share/man" "$root/usr/share/lintian" "$root/usr/share/locale" \
  "$root/usr/share/bug" "$root/usr/share/info" "$root/usr/sbin" "$root/etc/ca-certificates" \
  "$root/usr/share/ca-certificates-"* "$root/var/lib/dpkg/info" \
  "$root"/usr/lib/*/gconv

# The CA bundle (what update-ca-certificates would write).
mkdir -p "$root/etc/ssl/certs"
find "$root/usr/share/ca-certificates" -name '*.crt' | sort | xargs cat > "$root/etc/ssl/certs/ca-certificates.crt"

# The loader's cache, so that every library directory of the packages is searched.
ldconfig -r "$root"

# Users: root and nonroot (65532, the uid the chart's and the operator's pods run as).
printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
  'nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin' > "$root/etc/passwd"
printf '%s\n' 'root:x:0:' 'nonroot:x:65532:' > "$root/etc/group"
mkdir -p "$root/tmp" && chmod 1777 "$root/tmp"

rm -rf "$dest/rootfs"
mkdir -p "$dest"
mv "$root" "$dest/rootfs"
