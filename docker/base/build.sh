#!/usr/bin/env bash
# CI only: make the base images locally, since no registry is reachable from CI.
#   amsw-ci/debian:bookworm   a minimal Debian bookworm (debootstrap --variant=minbase), imported
#   amsw-ci/python:3.11       the same plus Debian's python3 (3.11) in a venv, with pip: the
#                             stand-in for python:3.11-slim (docker/base/python.Dockerfile)
# The debootstrap tarball is cached under $AMSW_DOCKER_CACHE (default /var/cache/amsw-docker), so
# a warm run only imports it when the engine lacks the image. Needs DOCKER_HOST set, and root.
set -euo pipefail
cd "$(dirname "$0")/../.."
cache=${AMSW_DOCKER_CACHE:-/var/cache/amsw-docker}
mirror=${DEBIAN_MIRROR:-$(sed -n 's/^URIs: *\(http[^ ]*\/debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)}
mirror=${mirror:-http://deb.debian.org/debian}
# A change to this script makes a new tarball and a new import.
recipe=$(sha256sum "$0" | cut -c1-12)
tarball="$cache/debian-bookworm-minbase-$recipe.tar"
docker_=${DOCKER:-docker}
imported=$($docker_ image inspect -f '{{index .Config.Labels "amsw.recipe"}}' amsw-ci/debian:bookworm 2>/dev/null || true)

if [ "$imported" != "$recipe" ]; then
  if [ ! -s "$tarball" ]; then
    echo "debootstrap: Debian bookworm (minbase) from $mirror"
    root=$(mktemp -d "$cache/rootfs.XXXXXX")
    debootstrap --variant=minbase --include=ca-certificates bookworm "$root" "$mirror" \
      >"$cache/debootstrap.log" 2>&1 || { tail -n 20 "$cache/debootstrap.log"; exit 1; }
    # This machine reaches PyPI through an egress proxy with its own CA: trust the host's extra
    # CAs (those missing from Debian's bundle) inside the CI base, as a site's base image would.
    python3 - "$root" <<'PY'
import re, sys
from pathlib import Path
root = Path(sys.argv[1])
pem = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)
ours = set(pem.findall(Path("/etc/ssl/certs/ca-certificates.crt").read_text()))
theirs = set(pem.findall((root / "etc/ssl/certs/ca-certificates.crt").read_text()))
for i, cert in enumerate(sorted(ours - theirs)):
    (root / f"usr/local/share/ca-certificates/ci-host-{i}.crt").write_text(cert + "\n")
print(f"host CAs added to the base: {len(ours - theirs)}")
PY
    chroot "$root" update-ca-certificates >/dev/null
    # A container's apt needs no docs, no caches and no recommends.
    printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
      >"$root/etc/apt/apt.conf.d/90amsw-minimal"
    printf 'path-exclude /usr/share/doc/*\npath-exclude /usr/share/man/*\npath-exclude /usr/share/locale/*\n' \
      >"$root/etc/dpkg/dpkg.cfg.d/90amsw-nodoc"
    # As in Debian's official images: apt keeps no package caches in a layer.
    clean='"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"'
    printf 'DPkg::Post-Invoke { %s; };\nAPT::Update::Post-Invoke { %s; };\nDir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\n' \
      "$clean" "$clean" >"$root/etc/apt/apt.conf.d/docker-clean"
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/* \
      "$root"/usr/share/doc/* "$root"/usr/share/man/*
    tar -C "$root" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$root"
  fi
  find "$cache" -maxdepth 1 -name 'debian-bookworm-minbase*.tar' ! -name "${tarball##*/}" -delete
  $docker_ import --change 'CMD ["/bin/bash"]' --change "LABEL amsw.recipe=$recipe" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "$tarball" amsw-ci/debian:bookworm >/dev/null
  echo "imported amsw-ci/debian:bookworm"
fi
$docker_ build --quiet --network host -t amsw-ci/python:3.11 \
  -f docker/base/python.Dockerfile docker/base >/dev/null
echo "built amsw-ci/python:3.11"
