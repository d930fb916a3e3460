#!/usr/bin/env bash
# Run the Molecule scenarios of the roles (all, or those named): converge, idempotence,
# verify, two roles at a time. Fails when a role fails, naming it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$ROOT/.venv/bin:$PATH"
export ANSIBLE_ROLES_PATH="$ROOT/roles"
export ANSIBLE_CONFIG="$ROOT/ansible.cfg"

roles=("$@")
if [ "${#roles[@]}" -eq 0 ]; then
    for dir in roles/*/molecule; do
        [ -d "$dir" ] && roles+=("$(basename "$(dirname "$dir")")")
    done
fi
if [ "${#roles[@]}" -eq 0 ]; then
    echo "molecule: no role has a Molecule scenario yet"
    exit 0
fi
# Role scenarios start from the local Debian 12 images (nothing can be pulled here): the
# vanilla mmdebstrap minbase (common, mysql: a host configured from scratch) or the role's baked
# image (a new server as launched; its package lists removed).
.venv/bin/python -m image_builders build base web db memcached monitor
for role in "${roles[@]}"; do
    [ -d "roles/$role/molecule" ] || { echo "molecule: role '$role' has no scenario" >&2; exit 1; }
done

# One role's scenario, its output kept in a log that is printed when it ends (so that two
# scenarios running at once do not interleave their lines).
run_role() {
    local role=$1 log start status=0
    log=$(mktemp "${TMPDIR:-/tmp}/molecule-$role.XXXXXX")
    start=$(date +%s)
    (cd "roles/$role" && molecule --base-config "$ROOT/molecule/shared/base.yml" test --all) \
        >"$log" 2>&1 || status=$?
    {
        echo "=== molecule: $role"
        cat "$log"
        if [ "$status" -eq 0 ]; then
            echo "=== molecule: $role passed in $(( $(date +%s) - start ))s"
        else
            echo "molecule: role '$role' FAILED" >&2
        fi
    } | flock "$ROOT/.state/molecule.lock" cat
    rm -f "$log"
    return "$status"
}
export -f run_role
export ROOT

# Scenarios run MOLECULE_JOBS at a time (default 2: one per core of the CI machine; each
# scenario's containers have names of their own). The longest first, so the lanes end
# together.
mkdir -p "$ROOT/.state"
jobs=${MOLECULE_JOBS:-2}
order=(mysql_backup mysql product common memcached apache php failover_watcher)
sorted=()
for role in "${order[@]}"; do
    for wanted in "${roles[@]}"; do [ "$wanted" = "$role" ] && sorted+=("$role"); done
done
for wanted in "${roles[@]}"; do
    [[ " ${order[*]} " == *" $wanted "* ]] || sorted+=("$wanted")
done
started=$(date +%s)
if ! printf '%s\n' "${sorted[@]}" | xargs -P "$jobs" -I{} bash -c 'run_role "$1"' _ {}; then
    echo "molecule: a role FAILED (its output above)" >&2
    exit 1
fi
echo "=== molecule: ${#sorted[@]} roles passed in $(( $(date +%s) - started ))s ($jobs at a time)"
