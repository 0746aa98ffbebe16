#!/usr/bin/env bash
# Bench set-up: the anchors the benches compare Corral against, from Debian. Idempotent: it asks
# dpkg first and runs apt-get only for what is missing, so a second run takes a second.
#   runc, crun   OCI runtimes (launch anchors)
#   podman       the CLI anchor of `corral run`
#   hyperfine    not driven by the benches (they interleave their own runs), kept for hand checks
#   uidmap       podman warns without newuidmap/newgidmap
#   mmdebstrap   builds the ~170 MB Debian image of the pull bench (once, cached in /var/tmp)
#   skopeo, docker-registry   the pull bench's fetch-only anchor and its local registry
set -euo pipefail
say() { printf 'bench setup: %s\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
  echo "bench setup: must run as root (installs packages)" >&2
  exit 1
fi

source "$(dirname "$0")/../scripts/debian-packages.sh"
ensure_debian_packages runc crun podman hyperfine uidmap mmdebstrap skopeo docker-registry
say "anchors: $(runc --version | head -n 1); $(crun --version | head -n 1); $(podman --version); $(hyperfine --version)"
