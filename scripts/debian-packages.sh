# Sourced by scripts/setup.sh and bench/setup.sh: install the Debian packages dpkg says are
# missing, so a second run asks dpkg only and takes a second. Prints what it installs via `say`.
# Usage: ensure_debian_packages PKG...   (sets INSTALLED_NOW=1 when it installed anything)
ensure_debian_packages() {
  local pkg missing=()
  INSTALLED_NOW=0
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # --no-install-recommends: recommends pull in services and second runtime stacks.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  INSTALLED_NOW=1
}
