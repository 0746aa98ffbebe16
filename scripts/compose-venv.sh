#!/usr/bin/env bash
# docker-compose 1.29.2 from PyPI in a venv of its own, a real Compose client of Corral's Docker
# API (tests/integration/test_compose.py, docs/docker-api.md "Compose"). Idempotent: a second
# run only asks the venv's docker-compose its version.
#
# Why PyPI and its own venv: 1.29.2 is the last Python Compose; it pins docker<7 (docker-py 7
# dropped what it imports) and its requests must stay <2.32 (2.32 refuses the http+docker://
# scheme docker-py 6 uses). Those pins would clash with Corral's own venv (docker-py 7 for
# test_docker_py.py). PyYAML 5.4.1 (compose wants <6) does not build with Cython 3, so it is
# built first with Cython 0.29 and no build isolation. Debian's docker-compose package is the
# same 1.29.2 but pulls python3-docker and friends into the system Python that Corral's venv sees.
set -euo pipefail
COMPOSE_VENV=${COMPOSE_VENV:-/opt/corral-test/compose-venv}
PINS=(docker-compose==1.29.2 docker==6.1.3 "requests<2.32" "urllib3<2" PyYAML==5.4.1)
STAMP=$COMPOSE_VENV/.corral-pins

if [ -x "$COMPOSE_VENV/bin/docker-compose" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "${PINS[*]}" ]; then
  exit 0
fi
printf 'setup: installing %s into %s\n' "${PINS[0]}" "$COMPOSE_VENV"
rm -rf "$COMPOSE_VENV"
mkdir -p "$(dirname "$COMPOSE_VENV")"
/usr/bin/python3 -m venv "$COMPOSE_VENV"
pip() {   # quiet unless it fails
  local log
  log=$("$COMPOSE_VENV/bin/pip" -q --disable-pip-version-check "$@" 2>&1) || { echo "$log" >&2; exit 1; }
}
pip install "cython<3" wheel
pip install --no-build-isolation PyYAML==5.4.1
pip install "${PINS[@]}"
"$COMPOSE_VENV/bin/docker-compose" version >/dev/null
echo "${PINS[*]}" > "$STAMP"
