"""The backup program of the database servers: `hostkit-mysql-backup COMMAND`.

Commands (the role installs this as /usr/local/sbin/hostkit-mysql-backup, with its
configuration in /etc/hostkit/mysql-backup.json):

  backup          one snapshot: mariabackup | zstd -> S3 multipart upload, verified, then
                  its manifest, then the "latest" pointer, then retention (systemd timer)
  stream-binlogs  follow the master named in the binlog source file with
                  `mariadb-binlog --read-from-remote-server --raw --stop-never` (service);
                  with a global config configured, keep that file in line with the
                  cluster's master in the global config document (a failover moves it)
  ship-binlogs    upload closed binary logs whole and the growing one in segments, every
                  few seconds (service); --once for a single pass
  list            the snapshots in S3 (JSON)
  plan            the restore plan for a time (JSON): snapshot, binary logs, GTID positions
  fetch-snapshot  download a planned snapshot, verify its SHA-256, unpack it (mbstream -x)
  replay          replay a plan's binary logs into the local server up to the restore time
  verify          CHECKSUM TABLE and row counts of every user table (JSON)
  status          the state files (last success, last error) as JSON
  check-config    check the settings file (every problem named) and exit; the role writes
                  the file only when this passes

Every failure ends with exit status 1 and one line `hostkit-mysql-backup: <command> failed:
<reason>` on stderr (the journal), and is recorded in the state file of the command.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from host_programs.backup.config import DEFAULT_CONFIG, PROGRAM, Config, load_config, load_env_file
from host_programs.backup.core import BackupError, iso, parse_time
from host_programs.backup.follow import follower_for, source_state_path
from host_programs.backup.helpers import (
    exclusive_lock,
    log,
    now_utc,
    read_json,
    record_state,
    store_for,
)
from host_programs.backup.restore import build_plan, fetch_snapshot, replay, verify
from host_programs.backup.retention import list_manifests
from host_programs.backup.ship import Shipper
from host_programs.backup.snapshot import run_backup
from host_programs.backup.stream import current_series_path, run_stream
from host_programs.common.atomic_files import write_json_atomic

# --------------------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROGRAM, description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=DEFAULT_CONFIG)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("backup", help="take one snapshot now")
    sub.add_parser("stream-binlogs", help="follow the master's binary logs (service)")
    ship = sub.add_parser("ship-binlogs", help="upload binary logs (service)")
    ship.add_argument("--once", action="store_true")
    sub.add_parser("list", help="complete snapshots in S3")
    plan = sub.add_parser("plan", help="restore plan (JSON)")
    plan.add_argument("--time", default="", help="restore point (ISO 8601, UTC by default)")
    plan.add_argument("--snapshot", default="", help="restore this snapshot key")
    plan.add_argument("--output", default="", help="also write the plan to this file")
    fetch = sub.add_parser("fetch-snapshot", help="download and unpack a planned snapshot")
    fetch.add_argument("--plan", required=True)
    fetch.add_argument("--dest", required=True)
    rep = sub.add_parser("replay", help="replay a plan's binary logs into the local server")
    rep.add_argument("--plan", required=True)
    rep.add_argument("--work", required=True)
    sub.add_parser("verify", help="checksums and row counts of the local server (JSON)")
    sub.add_parser("status", help="state files (JSON)")
    sub.add_parser("check-config", help="check the settings file and exit (0: valid)")
    return parser


def main(argv: Sequence[str] | None = None, client: Any | None = None) -> int:
    """Run one command; 0 on success, 1 with one log line on failure (and, for `backup`,
    status "failed" and the error in the state file)."""
    args = _parser().parse_args(argv)
    config: Config | None = None
    try:
        config = load_config(args.config)
        if args.command == "check-config":
            print(f"{args.config}: valid settings for cluster {config.cluster}")
            return 0
        if config.env_file:
            load_env_file(config.env_file)
        return _dispatch(args, config, client)
    except Exception as exc:  # every failure: one line, a status, no traceback
        message = " ".join(str(exc).split()) or type(exc).__name__
        if not isinstance(exc, (BackupError, OSError)):
            message = f"{type(exc).__name__}: {message}"
        log(f"{args.command} failed: {message}")
        if args.command == "backup" and config is not None:
            with contextlib.suppress(Exception):
                record_state(str(Path(config.state_dir, "backup-state.json")), "backup",
                             status="failed",
                             last_error={"at": iso(now_utc()), "message": message})
        return 1


def _dispatch(args: argparse.Namespace, config: Config, client: Any | None) -> int:
    state_path = str(Path(config.state_dir, "backup-state.json"))
    if args.command == "backup":
        with exclusive_lock(str(Path(config.state_dir, "backup.lock"))):
            record_state(state_path, "backup", last_attempt_at=iso(now_utc()))
            result = run_backup(config, store_for(config, client))
        manifest = result.manifest
        record_state(state_path, "backup", status="ok", last_error=None, last_success={
            "at": manifest["finished_at"], "data_key": manifest["data_key"],
            "size": manifest["size"], "sha256": manifest["sha256"], "gtid": manifest["gtid"],
            "seconds": result.seconds, "latest_updated": result.latest_updated},
            retention=result.retention)
        log(f"backup ok: {manifest['data_key']} {manifest['size']} bytes in {result.seconds}s, "
            f"GTID {manifest['gtid'] or '(none)'}, sha256 {manifest['sha256'][:16]}...")
        print(json.dumps({"manifest": manifest, "latest_updated": result.latest_updated,
                          "retention": result.retention, "seconds": result.seconds}))
        return 0
    if args.command == "stream-binlogs":
        return run_stream(config, store_for(config, client), follower=follower_for(config, client))
    if args.command == "ship-binlogs":
        shipper = Shipper(config, store_for(config, client))
        if args.once:
            print(json.dumps({"uploaded": shipper.ship_once()}))
            return 0
        stopping = {"stop": False}

        def stop(_signum: int, _frame: Any) -> None:
            stopping["stop"] = True

        signal.signal(signal.SIGTERM, stop)
        shipper.run_forever(config.ship_interval, lambda: stopping["stop"])
        return 0
    if args.command == "list":
        manifests, _ = list_manifests(store_for(config, client), config.cluster)
        print(json.dumps(sorted(manifests, key=lambda m: m["finished_at"]), indent=2))
        return 0
    if args.command == "plan":
        moment = parse_time(args.time) if args.time else None
        plan = build_plan(config, store_for(config, client), moment, args.snapshot or None)
        if args.output:
            write_json_atomic(args.output, plan, mode=0o600)
        print(json.dumps(plan, indent=2))
        return 0
    if args.command == "fetch-snapshot":
        plan = _read_plan(args.plan)
        print(json.dumps(fetch_snapshot(config, store_for(config, client), plan, args.dest)))
        return 0
    if args.command == "replay":
        plan = _read_plan(args.plan)
        print(json.dumps(replay(config, store_for(config, client), plan, args.work)))
        return 0
    if args.command == "verify":
        print(json.dumps(verify(config), indent=2, sort_keys=True))
        return 0
    if args.command == "status":
        print(json.dumps({"backup": read_json(state_path, {}),
                          "binlogs": read_json(Path(config.state_dir, "binlog-state.json"), {}),
                          "stream": read_json(current_series_path(config), {}),
                          "source": read_json(source_state_path(config), {})}, indent=2))
        return 0
    raise BackupError(f"unknown command {args.command}")


def _read_plan(path: str) -> dict[str, Any]:
    plan = read_json(path)
    if not isinstance(plan, dict) or "snapshot" not in plan or "steps" not in plan:
        raise BackupError(f"{path} is not a restore plan (run `{PROGRAM} plan --output`)")
    return plan


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
