#!/usr/bin/env bash
# Run named commands at once: scripts/parallel.sh NAME 'COMMAND' [NAME 'COMMAND']...
# Each command's output is kept in a log and printed, whole, when it ends (the lines of two
# commands never interleave), with its exit status and time. Fails when any command fails,
# naming it, after all have ended.
#
# `make test` runs the lint and unit tiers this way: ansible-lint uses about one core and
# the unit tests' two workers wait on subprocesses and moto servers, so on the 2-core CI
# machine the two together take less than one after the other.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[ $(( $# % 2 )) -eq 0 ] && [ $# -gt 0 ] || { echo "usage: $0 NAME 'COMMAND' [NAME 'COMMAND']..." >&2; exit 2; }
mkdir -p "$ROOT/.state"

one() {
    local name=$1 command=$2 log start status=0
    log=$(mktemp "${TMPDIR:-/tmp}/parallel-$name.XXXXXX")
    start=$(date +%s)
    bash -c "$command" >"$log" 2>&1 || status=$?
    {
        echo "=== $name"
        cat "$log"
        echo "=== $name: exit $status after $(( $(date +%s) - start ))s"
    } | flock "$ROOT/.state/parallel.lock" cat
    rm -f "$log"
    return "$status"
}

names=() pids=()
while [ $# -gt 0 ]; do
    one "$1" "$2" & pids+=($!); names+=("$1")
    shift 2
done
failed=()
for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || failed+=("${names[$i]}")
done
if [ "${#failed[@]}" -gt 0 ]; then
    echo "FAILED: ${failed[*]}" >&2
    exit 1
fi
