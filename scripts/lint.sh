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
# One ansible-doc call per plugin type renders every plugin of that type (about 2 s; one
# call per plugin took over a minute). Any warning or error fails the step: a plugin that
# is not found, or whose documentation does not parse or render, is named in it.
render() {  # type name...
    local type=$1 out
    shift
    [ $# -gt 0 ] || return 0
    if ! out=$("$BIN/ansible-doc" -t "$type" "$@" 2>&1 >/dev/null); then
        echo "ansible-doc -t $type failed: $out" >&2; return 1
    fi
    if grep -q '\[WARNING\]\|ERROR' <<<"$out"; then
        echo "ansible-doc -t $type warns: $out" >&2; return 1
    fi
    echo "  $type: $*"
}
names() {  # files... -> their names without directory and extension
    local f
    for f in "$@"; do f=${f##*/}; echo "${f%.*}"; done
}
shopt -s nullglob
# shellcheck disable=SC2046  # one name per word
render module $(names library/*.py)
# shellcheck disable=SC2046
render lookup $(names lookup_plugins/*.py)
# shellcheck disable=SC2046
render filter $(names filter_plugins/*.yml)
echo "lint: clean"
