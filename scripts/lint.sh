#!/usr/bin/env bash
# The lint tier: ruff, vermin, yamllint, ansible-lint (production profile), shell syntax, and
# ansible-doc rendering every custom module and plugin without a warning.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export ANSIBLE_CONFIG="$ROOT/ansible.cfg"
BIN="$ROOT/.venv/bin"
export PATH="$BIN:$PATH"

step() { printf '=== lint: %s\n' "$*"; }

step "ruff"
"$BIN/ruff" check .

step "vermin: code that runs on managed hosts needs no more than Python 3.9 (EL 9)"
"$BIN/vermin" -q --no-tips --violations -t=3.9- --backport dataclasses --backport typing \
    module_utils library roles/*/files

step "yamllint"
"$BIN/yamllint" -s .

step "ansible-lint (production profile)"
"$BIN/ansible-lint" --offline -q

step "shell syntax"
for f in scripts/*.sh .ci/run; do bash -n "$f"; done

step "ansible-doc renders every custom module and plugin"
render() {  # type name
    local out
    if ! out=$("$BIN/ansible-doc" -t "$1" "$2" 2>&1 >/dev/null); then
        echo "ansible-doc -t $1 $2 failed: $out" >&2; return 1
    fi
    if grep -q '\[WARNING\]\|ERROR' <<<"$out"; then
        echo "ansible-doc -t $1 $2 warns: $out" >&2; return 1
    fi
    echo "  $1 $2"
}
shopt -s nullglob
for f in library/*.py; do render module "$(basename "$f" .py)"; done
for f in lookup_plugins/*.py; do render lookup "$(basename "$f" .py)"; done
for f in filter_plugins/*.yml; do render filter "$(basename "$f" .yml)"; done
echo "lint: clean"
