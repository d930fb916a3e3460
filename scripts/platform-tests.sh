#!/usr/bin/env bash
# The platform tests in two lanes at once (PLATFORM_LANES=2, the default) or in one:
#   sandbox  the modules on the shared sandbox (pytest.mark.sandbox), one after another, then
#            those marked first_lane (sites of their own, moved here to even out the lanes);
#   own      the other modules, which build sites, containers and buckets of their own.
# The lanes share the engine but no container, bucket key or name. Each lane's output is kept
# in a log and printed when the lane ends (lines of two lanes never interleave); the exit
# status fails when a lane fails, naming it. Extra arguments go to both pytest runs.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="$ROOT/.venv/bin/python"
lanes=${PLATFORM_LANES:-2}
common=(-q --durations=15 "$@" tests/platform)
if [ "$lanes" -le 1 ]; then
    exec "$PY" -m pytest -m platform "${common[@]}"
fi
mkdir -p "$ROOT/.state"

lane() {
    local name=$1 marks=$2 log start status=0
    log=$(mktemp "${TMPDIR:-/tmp}/platform-$name.XXXXXX")
    start=$(date +%s)
    "$PY" -m pytest -m "$marks" "${common[@]}" >"$log" 2>&1 || status=$?
    {
        echo "=== platform lane $name ($marks)"
        cat "$log"
        echo "=== platform lane $name: exit $status after $(( $(date +%s) - start ))s"
    } | flock "$ROOT/.state/platform.lock" cat
    rm -f "$log"
    return "$status"
}

start=$(date +%s)
lane sandbox "platform and (sandbox or first_lane)" & sandbox=$!
lane own "platform and not sandbox and not first_lane" & own=$!
failed=()
wait "$sandbox" || failed+=(sandbox)
wait "$own" || failed+=(own)
echo "=== platform: both lanes done in $(( $(date +%s) - start ))s"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "platform: lane(s) FAILED: ${failed[*]}" >&2
    exit 1
fi
