#!/usr/bin/env bash
# Run the Molecule scenarios of the roles (all, or those named): converge, idempotence,
# verify. Fails on the first role that fails, naming it.
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
# vanilla debootstrap (common, mysql: a host configured from scratch) or the role's baked
# image (a new server as launched; its package lists removed).
.venv/bin/python -m image_builders build base web db memcached monitor
for role in "${roles[@]}"; do
    [ -d "roles/$role/molecule" ] || { echo "molecule: role '$role' has no scenario" >&2; exit 1; }
    echo "=== molecule: $role"
    start=$(date +%s)
    (cd "roles/$role" && molecule --base-config "$ROOT/molecule/shared/base.yml" test --all) || { echo "molecule: role '$role' FAILED" >&2; exit 1; }
    echo "=== molecule: $role passed in $(( $(date +%s) - start ))s"
done
