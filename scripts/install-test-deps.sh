#!/usr/bin/env bash
# Installs the system packages `npm test` needs beyond `npm ci` (the list: test/system-deps.json;
# today chromium, redis-server, nginx), from Debian's/Ubuntu's own archive, in one apt-get run,
# only those missing. As root directly; otherwise through sudo when there is one.
# Used by .ci/run; `npm test` names it when it skips suites.
#   --dry-run   print the packages that would be installed, install nothing
set -euo pipefail
cd "$(dirname "$0")/.."

dry_run=0
[[ "${1:-}" == "--dry-run" ]] && dry_run=1

# "<package> <default path> <command name> <override variable>" per line.
mapfile -t DEPS < <(
  node -e 'for (const d of require(process.argv[1])) console.log([d.package, d.path, d.name, d.env].join(" "))' \
    "$PWD/test/system-deps.json"
)
((${#DEPS[@]})) || {
  echo "cannot read test/system-deps.json" >&2
  exit 1
}

# Found as test/system-deps.ts finds it: the override variable's path (or command) when set, else
# the Debian path, else the command on PATH.
found() {
  local path=$1 name=$2 env=$3
  if [[ -n "${!env:-}" ]]; then
    command -v "${!env}" >/dev/null
    return
  fi
  [[ -x "$path" ]] || command -v "$name" >/dev/null
}

missing_packages() {
  local pkg path name env
  for entry in "${DEPS[@]}"; do
    read -r pkg path name env <<<"$entry"
    found "$path" "$name" "$env" || echo "$pkg"
  done
}

mapfile -t missing < <(missing_packages)
if ((dry_run)); then
  ((${#missing[@]})) && printf '%s\n' "${missing[@]}"
  exit 0
fi
((${#missing[@]})) || exit 0

command -v apt-get >/dev/null || {
  echo "no apt-get here: install ${missing[*]} with your package manager" >&2
  exit 1
}
as_root=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || {
    echo "need root or sudo to install: ${missing[*]}" >&2
    exit 1
  }
  as_root=(sudo)
fi
echo "apt-get install ${missing[*]}"
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
mapfile -t still < <(missing_packages)
((${#still[@]} == 0)) || {
  echo "installed, but still not found: ${still[*]}" >&2
  exit 1
}
