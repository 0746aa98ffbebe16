#!/usr/bin/env bash
# Bench set-up: the anchors the benches compare Corral against, from Debian. Idempotent: it asks
# dpkg first and runs apt-get only for what is missing, so a second run takes a second.
#   runc, crun   OCI runtimes (launch anchors)
#   podman       the CLI anchor of `corral run`
#   hyperfine    not driven by the benches (they interleave their own runs), kept for hand checks
#   uidmap       podman warns without newuidmap/newgidmap
set -euo pipefail
say() { printf 'bench setup: %s\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
  echo "bench setup: must run as root (installs packages)" >&2
  exit 1
fi

PACKAGES=(runc crun podman hyperfine uidmap)
missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # --no-install-recommends: podman's recommends pull in a second runtime stack and services.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
say "anchors: $(runc --version | head -n 1); $(crun --version | head -n 1); $(podman --version); $(hyperfine --version)"
