#!/usr/bin/env bash
# Corral set-up: idempotent; a second run only checks and takes seconds.
# Installs the Debian packages, links the nearest kernel headers where the running kernel has
# none, mounts tracefs and bpffs, makes the venv, builds the launcher and the embedded image.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
VENV=${VENV:-$REPO/.venv}
CORRAL_ROOT=${CORRAL_ROOT:-/var/lib/corral}
say() { printf 'setup: %s\n' "$*"; }
warn() { printf '\033[1;33msetup: WARNING: %s\033[0m\n' "$*" >&2; }

if [ "$(id -u)" != 0 ]; then
  echo "setup: must run as root (installs packages, mounts tracefs/bpffs, builds under $CORRAL_ROOT)" >&2
  exit 1
fi

ARCH=$(dpkg --print-architecture)
PACKAGES=(
  python3 python3-venv python3-pip python3-setuptools python3-pytest
  python3-bpfcc bpftool "linux-headers-$ARCH"
  python3-prometheus-client python3-pyroute2 python3-psutil python3-yaml
  python3-seccomp python3-nftables nftables iproute2
  busybox-static gcc libc6-dev make
  prometheus prometheus-alertmanager
  docker-registry skopeo python3-bcrypt
)
source scripts/debian-packages.sh
ensure_debian_packages "${PACKAGES[@]}"
if [ "$INSTALLED_NOW" = 1 ]; then
  # Debian enables and starts these services on install; Corral's tests start their own.
  for svc in prometheus prometheus-alertmanager prometheus-node-exporter docker-registry; do
    systemctl disable --now "$svc" >/dev/null 2>&1 || true
  done
fi

# Kernel headers: BCC compiles against /lib/modules/$(uname -r)/build.
KVER=$(uname -r)
MODDIR=/lib/modules/$KVER
if [ ! -e "$MODDIR/build/include" ]; then
  if apt-get install -y -qq --no-install-recommends "linux-headers-$KVER" >/dev/null 2>&1; then
    say "installed linux-headers-$KVER"
  else
    NEAREST=$(ls -d /usr/src/linux-headers-*-"$ARCH" 2>/dev/null | sort -V | tail -n 1)
    COMMON=$(ls -d /usr/src/linux-headers-*-common 2>/dev/null | sort -V | tail -n 1)
    if [ -z "$NEAREST" ]; then
      echo "setup: no linux-headers package found under /usr/src; install linux-headers-$ARCH" >&2
      exit 1
    fi
    mkdir -p "$MODDIR"
    ln -sfn "$NEAREST" "$MODDIR/build"
    [ -n "$COMMON" ] && ln -sfn "$COMMON" "$MODDIR/source"
  fi
fi
if [ -L "$MODDIR/build" ] && [[ "$(readlink "$MODDIR/build")" != *"$KVER"* ]]; then
  warn "no headers exist for kernel $KVER; BCC uses the nearest, $(basename "$(readlink "$MODDIR/build")")."
  warn "Tracepoint arguments stay right (read from the running kernel); kernel struct layouts would not, so Corral's probes use none."
fi

# tracefs and bpffs: the probes need the first, pinning the second.
mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf

# The venv sees Debian's bcc, seccomp and nftables bindings (not on PyPI under those names).
if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV"
  /usr/bin/python3 -m venv --system-site-packages "$VENV"
fi
STAMP=$VENV/.corral-installed
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
  say "installing the corral package into $VENV"
  "$VENV/bin/pip" install -q --no-build-isolation --config-settings editable_mode=compat -e ".[test]" 2>&1 | grep -v '^WARNING: Location' || true
  "$VENV/bin/python" -c "import agent" && touch "$STAMP"
fi

# Bytecode for the CLI: where PYTHONDONTWRITEBYTECODE is set, Python would otherwise compile
# every module it imports on each `corral` run (~40 ms of a ~100 ms start). Stale files are
# only ignored, never wrong: Python checks each source's mtime.
"$VENV/bin/python" -m compileall -q agent >/dev/null

# The docker CLI, a real client of Corral's Docker API (tests/integration/test_docker_cli.py).
# Debian's docker.io package holds it together with dockerd and containerd, which must not run
# on a Corral host (dockerd would take /var/run/docker.sock, iptables and cgroups): only the
# client binary is taken from the package, as /usr/local/bin/docker-debian (the older, second
# client the tests drive) and as /usr/local/bin/docker when no docker is on PATH.
if [ ! -x /usr/local/bin/docker-debian ]; then
  DEB_DIR=$(mktemp -d)
  if (cd "$DEB_DIR" && apt-get download -qq docker.io >/dev/null 2>&1) &&
     dpkg-deb -x "$DEB_DIR"/docker.io_*.deb "$DEB_DIR/root"; then
    install -m 0755 "$DEB_DIR/root/usr/bin/docker" /usr/local/bin/docker-debian
    say "installed the docker CLI from Debian's docker.io as docker-debian (the client only)"
  else
    warn "could not fetch Debian's docker.io for its docker CLI; the Docker API tests need one"
  fi
  rm -rf "$DEB_DIR"
fi
if ! command -v docker >/dev/null 2>&1 && [ -x /usr/local/bin/docker-debian ]; then
  ln -s docker-debian /usr/local/bin/docker
fi
# docker-compose 1.29.2 from PyPI in its own venv (tests/integration/test_compose.py).
bash scripts/compose-venv.sh

# The launcher: a small C program, so launching never forks the big daemon.
LAUNCHER=$VENV/bin/corral-launch
# Every launcher/*.c is one program; rebuilt when any source or header is newer than the binary.
if [ ! -x "$LAUNCHER" ] || [ -n "$(find launcher -name '*.[ch]' -newer "$LAUNCHER")" ]; then
  say "building $LAUNCHER"
  gcc -O2 -Wall -Wextra -Werror -o "$LAUNCHER" launcher/*.c
fi

# Grafana dashboard schema check (tests/unit/test_dashboards.py): @grafana/schema + TypeScript,
# pinned by the lock file; reinstalled only when the lock file changes. Node may come from
# another repository (nodesource's nodejs ships npm itself): install Debian's only when absent.
if ! command -v npm >/dev/null; then
  say "installing nodejs and npm"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
if command -v npm >/dev/null; then
  mkdir -p build/grafana-schema
  if ! cmp -s deploy/grafana/schema-check/package-lock.json build/grafana-schema/package-lock.json \
     || [ ! -d build/grafana-schema/node_modules/@grafana/schema ]; then
    say "installing @grafana/schema and typescript into build/grafana-schema"
    cp deploy/grafana/schema-check/package.json deploy/grafana/schema-check/package-lock.json build/grafana-schema/
    npm ci --prefix build/grafana-schema --no-audit --no-fund >/dev/null
  fi
fi

# User namespaces (`--userns auto`, docs/security.md): the system user `corral` owns the
# subordinate ids each container's range is taken from (65536 per container). Added only when
# /etc/subuid or /etc/subgid has no line for it, after the highest range already listed.
if ! getent passwd corral >/dev/null; then
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin corral
fi
for file in /etc/subuid /etc/subgid; do
  touch "$file"
  if ! grep -q '^corral:' "$file"; then
    start=$(awk -F: 'BEGIN { top = 1000000 } NF == 3 && $2 + $3 > top { top = $2 + $3 } END { print top }' "$file")
    echo "corral:$start:268435456" >> "$file"      # 4096 containers of 65536 ids
    say "added corral:$start:268435456 to $file"
  fi
done

# The embedded default image, from the host's busybox-static.
"$VENV/bin/python" -m agent.images build-busybox --root "$CORRAL_ROOT" >/dev/null
say "ready (venv $VENV, root $CORRAL_ROOT, kernel $KVER)"
