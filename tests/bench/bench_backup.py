#!/usr/bin/env python3
"""Benchmark of the database backups (roles/mysql_backup): snapshot seconds and size for a
dataset of about 1 GB made by sysbench's prepare, and restore seconds.

1. a hostkit/db systemd container on network hostkit with the binary log on (a small drop-in
   file: server_id, log_bin, ROW format, GTID strict mode);
2. sysbench (Debian package, installed with apt in the container now, not baked in the image)
   `oltp_read_write prepare` with --tables x --table-size rows (default 4 x 1,000,000,
   about 1 GB of InnoDB data); untimed apart from a line of its own;
3. the mysql_backup role (binlog streaming off: only the snapshot is measured), then one
   snapshot through its systemd service (timed; size and the program's own seconds from the
   manifest);
4. playbooks/restore.yml into a new hostkit/db container (timed; the download, prepare,
   copy-back and replay seconds it prints), and the restored row count checked.

The bucket is this run's own on the sandbox's moto endpoint; containers and bucket are
removed at the end. Prints figures; asserts nothing about time.
Usage: tests/bench/bench_backup.py [--tables 4] [--table-size 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from scripts.sandbox import ensure_aws, ensure_bucket, ensure_network, s3_client  # noqa: E402
from tests.support import SYSTEMD_RUN_FLAGS, docker, wait_for_systemd  # noqa: E402

BIN = ROOT / ".venv" / "bin"
IMAGE = "hostkit/db:latest"

SERVER_CNF = """[mariadb]
server_id = 101
log_bin = mariadb-bin
binlog_format = ROW
gtid_strict_mode = ON
innodb_buffer_pool_size = 512M
"""

ROLE_PLAY = """
- name: Backups of the benchmark server
  hosts: role_db
  gather_facts: true
  become: true
  roles:
    - role: mysql_backup
"""


def sh(*args: str, check: bool = True, **kw: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(args), text=True, capture_output=True, **kw)
    if check and proc.returncode != 0:
        raise SystemExit(f"{' '.join(args[:6])} failed ({proc.returncode}):\n"
                         f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def container_exec(name: str, script: str) -> subprocess.CompletedProcess[str]:
    return sh("docker", "exec", name, "bash", "-c", script)


def start(name: str, run: str, labels: dict[str, str]) -> None:
    label_args = [a for k, v in {"io.hostkit.managed": "true", "io.hostkit.test": run,
                                 "io.hostkit.az": "us-east-1a", **labels}.items()
                  for a in ("--label", f"{k}={v}")]
    docker("run", "-d", "--name", name, "--hostname", name, "--network", "hostkit",
           *label_args, *SYSTEMD_RUN_FLAGS, IMAGE, "/lib/systemd/systemd")
    wait_for_systemd(name, timeout=180)


def playbook(work: Path, book: str, *extra: str) -> tuple[float, str]:
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               PATH=f"{BIN}:{os.environ.get('PATH', '')}")
    began = time.monotonic()
    proc = sh(str(BIN / "ansible-playbook"), "-i", str(work / "bench.docker.yml"), book, *extra,
              cwd=str(ROOT), env=env, check=False)
    seconds = time.monotonic() - began
    if proc.returncode != 0:
        raise SystemExit(f"{book} failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}")
    return seconds, proc.stdout


def write_inventory(work: Path, run: str) -> None:
    config = yaml.safe_load((ROOT / "inventory/sandbox/docker.yml").read_text())
    config["filters"] = [
        {"include": "docker_state.Running | default(false) and (docker_config.Labels | "
                    f"default({{}}, true)).get('io.hostkit.test', '') == '{run}'"},
        {"exclude": True},
    ]
    (work / "bench.docker.yml").write_text(yaml.safe_dump(config))
    (work / "group_vars").symlink_to(ROOT / "inventory/sandbox/group_vars")
    (work / "role.yml").write_text(ROLE_PLAY)


def remove_bucket(bucket: str) -> None:
    client = s3_client()
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
        doomed = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                  for v in (page.get("Versions") or []) + (page.get("DeleteMarkers") or [])]
        if doomed:
            client.delete_objects(Bucket=bucket, Delete={"Objects": doomed, "Quiet": True})
    client.delete_bucket(Bucket=bucket)


def mib(n: float) -> float:
    return round(n / 1024 / 1024, 1)


def bench(tables: int, table_size: int) -> dict[str, object]:
    ensure_network()
    ensure_aws()
    run = f"hkbak-b{uuid.uuid4().hex[:6]}"
    bucket = ensure_bucket(f"{run}-backups")
    source, target = f"{run}-db", f"{run}-new"
    figures: dict[str, object] = {"tables": tables, "table_size": table_size}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-backup-") as tmp:
            work = Path(tmp)
            write_inventory(work, run)
            start(source, run, {"io.hostkit.role": "db", "io.hostkit.products": "hello",
                                "io.hostkit.db_role": "master"})
            sh("docker", "exec", "-i", source, "sh", "-c",
               "cat > /etc/mysql/mariadb.conf.d/70-bench.cnf", input=SERVER_CNF)
            container_exec(source, "systemctl restart mariadb")
            began = time.monotonic()
            container_exec(source, "apt-get update -qq && DEBIAN_FRONTEND=noninteractive "
                                   "apt-get install -y -qq sysbench >/dev/null")
            figures["sysbench_install_seconds"] = round(time.monotonic() - began, 1)
            container_exec(source, "mariadb -e 'CREATE DATABASE sbtest'")
            began = time.monotonic()
            container_exec(source, f"sysbench oltp_read_write --db-driver=mysql "
                                   f"--mysql-socket=/run/mysqld/mysqld.sock --mysql-user=root "
                                   f"--mysql-db=sbtest --tables={tables} "
                                   f"--table-size={table_size} prepare >/dev/null")
            figures["sysbench_prepare_seconds"] = round(time.monotonic() - began, 1)
            sizes = container_exec(source, "mariadb -N -B -e \"SELECT SUM(data_length + "
                                           "index_length) FROM information_schema.tables "
                                           "WHERE table_schema = 'sbtest'\"; "
                                           "du -sb --exclude='mariadb-bin.*' /var/lib/mysql "
                                           "| cut -f1").stdout.split()
            figures["dataset_innodb_mib"] = mib(int(sizes[0]))
            figures["datadir_without_binlogs_mib"] = mib(int(sizes[1]))

            seconds, _ = playbook(work, str(work / "role.yml"),
                                  "-e", f"mysql_backup_bucket={bucket}",
                                  "-e", "mysql_backup_binlog_streaming=false")
            figures["role_converge_seconds"] = round(seconds, 1)

            began = time.monotonic()
            container_exec(source, "systemctl start hostkit-mysql-backup.service")
            figures["backup_seconds"] = round(time.monotonic() - began, 1)
            state = json.loads(container_exec(source, "hostkit-mysql-backup status").stdout)
            success = state["backup"]["backup"]["last_success"]
            figures["backup_program_seconds"] = success["seconds"]
            figures["snapshot_mib"] = mib(success["size"])
            figures["dataset_to_snapshot_ratio"] = round(int(sizes[0]) / success["size"], 2)

            start(target, run, {"io.hostkit.role": "restore"})
            seconds, out = playbook(work, "playbooks/restore.yml", "-e", f"target={target}",
                                    "-e", "cluster=hello", "-e", f"mysql_backup_bucket={bucket}")
            figures["restore_playbook_seconds"] = round(seconds, 1)
            for step in ("download", "prepare", "copy_back", "replay"):
                match = re.search(rf"{step}: '?([0-9:.]+)'?", out)
                if match:
                    value = match.group(1)
                    if ":" in value:
                        h, m, s = value.split(":")
                        value = str(round(int(h) * 3600 + int(m) * 60 + float(s), 1))
                    figures[f"restore_{step}_seconds"] = float(value)
            rows = container_exec(target, "mariadb -N -B -e \"SELECT SUM(table_rows) FROM "
                                          "information_schema.tables WHERE table_schema = "
                                          "'sbtest'\"; mariadb -N -B -e 'SELECT COUNT(*) FROM "
                                          "sbtest.sbtest1'").stdout.split()
            figures["restored_rows_sbtest1"] = int(rows[-1])
            if int(rows[-1]) != table_size:
                raise SystemExit(f"restored sbtest1 has {rows[-1]} rows, expected {table_size}")
    finally:
        for name in sh("docker", "ps", "-aq", "--filter", f"label=io.hostkit.test={run}",
                       check=False).stdout.split():
            docker("rm", "-f", name, check=False)
        remove_bucket(bucket)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", type=int, default=4)
    parser.add_argument("--table-size", type=int, default=1_000_000)
    args = parser.parse_args()
    figures = bench(args.tables, args.table_size)
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
