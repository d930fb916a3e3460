#!/usr/bin/env bash
# Bring a Debian 12 machine (as root) to the point where the kit runs:
#   - apt packages: docker.io, mmdebstrap, python3-venv, git (only those missing)
#   - the docker engine answering (started by systemd when there is one, else in the
#     background, logging to /var/log/dockerd.log)
#   - .venv with the pinned requirements (their dependencies at requirements.lock's
#     versions) and the repository as an editable package (reinstalled only when
#     requirements.txt, requirements.lock or pyproject.toml changes)
# Idempotent: with everything in place it only checks, and says so.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
STAMP="$VENV/.requirements.sha256"
# The installer of the requirements (pinned like them).
UV_VERSION=0.9.30
started=$(date +%s%N)

say() { printf 'bootstrap: %s\n' "$*"; }
die() { printf 'bootstrap: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (apt-get and dockerd need it)"

need_apt=()
command -v dockerd >/dev/null 2>&1 || need_apt+=(docker.io)
command -v docker >/dev/null 2>&1 || need_apt+=(docker.io)
command -v mmdebstrap >/dev/null 2>&1 || need_apt+=(mmdebstrap)
command -v git >/dev/null 2>&1 || need_apt+=(git)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need_apt+=(python3-venv)
if [ "${#need_apt[@]}" -gt 0 ]; then
    mapfile -t need_apt < <(printf '%s\n' "${need_apt[@]}" | sort -u)
    say "installing with apt: ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need_apt[@]}" >/dev/null
else
    say "apt packages present (docker.io, mmdebstrap, git, python3-venv)"
fi

if docker info >/dev/null 2>&1; then
    say "docker engine answering"
else
    if pgrep -x dockerd >/dev/null 2>&1; then
        # A daemon is starting up or shutting down: wait for it rather than start a second
        # one, which would refuse to run beside it.
        say "dockerd is running but not answering yet: waiting for it"
        for _ in $(seq 30); do
            docker info >/dev/null 2>&1 && break
            pgrep -x dockerd >/dev/null 2>&1 || break
            sleep 1
        done
    fi
    if docker info >/dev/null 2>&1; then
        :
    elif [ -d /run/systemd/system ] && systemctl start docker 2>/dev/null; then
        say "started docker with systemd"
    else
        say "starting dockerd in the background (log: /var/log/dockerd.log)"
        setsid nohup dockerd >/var/log/dockerd.log 2>&1 < /dev/null &
    fi
    for _ in $(seq 60); do
        docker info >/dev/null 2>&1 && break
        sleep 1
    done
    docker info >/dev/null 2>&1 || die "docker engine did not answer within 60s (see /var/log/dockerd.log)"
    say "docker engine answering"
fi

want=$( (cat "$ROOT/requirements.txt" "$ROOT/requirements.lock" "$ROOT/pyproject.toml"
        echo "uv $UV_VERSION") | sha256sum | cut -d' ' -f1)
if [ -x "$VENV/bin/python" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$want" ]; then
    say ".venv up to date with requirements.txt, requirements.lock and pyproject.toml"
else
    say "installing Python requirements into .venv"
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    # uv installs the pinned requirements: on a 2-core machine pip took 140 s (most of it
    # unpacking the ansible bundle's tens of thousands of files), uv 13 s with an empty cache.
    "$VENV/bin/pip" install -q --disable-pip-version-check "uv==$UV_VERSION" \
        2> >(grep -v "^WARNING: Location" >&2)
    "$VENV/bin/uv" pip install -q --python "$VENV/bin/python" -r "$ROOT/requirements.txt" \
        -c "$ROOT/requirements.lock"
    # The repository itself, editable: the plugins import plugin_utils/, module_utils/ and
    # image_builders/ from the working tree (pyproject.toml).
    "$VENV/bin/uv" pip install -q --python "$VENV/bin/python" --no-deps \
        --config-setting editable_mode=compat -e "$ROOT"
    echo "$want" > "$STAMP"
    say ".venv ready"
fi

ms=$(( ($(date +%s%N) - started) / 1000000 ))
say "done in $((ms / 1000)).$(printf '%03d' $((ms % 1000)))s"
