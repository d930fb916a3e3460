"""Backups and point-in-time restore for real, on the sandbox (hostkit/db containers, the moto
endpoint `aws` on network hostkit, a bucket of this run's own):

 1. playbooks/db.yml makes a master and its backup replica of database cluster `hello`
    (product `hello`'s own); the mysql_backup role on the backup replica converges;
 2. rows are written on the master without pause (one every ~50 ms, each acknowledged row
    recorded with its commit time) while playbooks/backup_now.yml takes a snapshot on the backup
    replica and the master's binary logs stream to S3;
 3. a failed snapshot (bucket missing, then S3 unreachable) leaves "latest" and the snapshots
    as they were, marks the systemd unit failed and records the error in the state file, and
    playbooks/backup_now.yml fails naming it;
 4. the cluster is destroyed (docker rm -f, writes still going);
 5. playbooks/restore.yml to a second chosen while the writes went on, into a NEW server:
    exactly the rows committed up to that second are there (count, ids and a content
    checksum), and the table written before the snapshot has the master's CHECKSUM TABLE;
 6. playbooks/restore.yml of "latest" into another new server: the rows there are a gap-free
    prefix of the acknowledged ones; the recovery point (seconds of acknowledged writes lost)
    is measured and printed, and must be under 60 s;
 7. a restore onto a server that holds data is refused unless forced.

Figures (converge, backup and restore seconds, snapshot size, recovery point) are printed.
Containers and the bucket are removed at the end.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts.sandbox import ensure_aws, ensure_bucket, ensure_network, s3_client
from tests.support import SYSTEMD_RUN_FLAGS, docker, wait_for_systemd

pytestmark = pytest.mark.platform
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
IMAGE = "hostkit/db:latest"
PRODUCT = "hello"
CLUSTER = "hello"  # the product's own cluster (no database.cluster): the S3 prefix of its backups
UTC = timezone.utc  # noqa: UP017 (one spelling with the module under test)

# Runs in the master: one row at a time, printing "<id> <created_at>" once it is committed
# (autocommit: the INSERT has returned), until the container goes away.
WRITER = r"""
set -u
i=0
while true; do
  i=$((i+1))
  ts=$(mariadb -N -B -e "INSERT INTO hello.bk_rows (id, payload, created_at)
       VALUES ($i, CONCAT('row-', $i), UTC_TIMESTAMP(6));
       SELECT created_at FROM hello.bk_rows WHERE id = $i") || exit 1
  echo "$i $ts"
  sleep 0.05
done
"""

BACKUP_PLAY = """
- name: Learn the database servers' addresses
  hosts: role_db
  gather_facts: true
  tasks: []

- name: Backups on the backup replica
  hosts: dbrole_backup
  gather_facts: true
  become: true
  roles:
    - role: mysql_backup
"""


def sh(*args: str, check: bool = True, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), text=True, capture_output=True, check=check, **kw)




def content_sum(rows: list[tuple[int, str]]) -> int:
    """The same sum MariaDB computes with SUM(CRC32(CONCAT(id, '|', payload)))."""
    return sum(zlib.crc32(f"{i}|{payload}".encode()) for i, payload in rows)


@dataclass
class Writer:
    """The writer's `docker exec`, and the rows it saw committed: {id: commit time}."""
    proc: subprocess.Popen[str]
    rows: dict[int, datetime] = field(default_factory=dict)
    thread: threading.Thread | None = None

    def follow(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            parts = line.split(maxsplit=1)
            if len(parts) == 2 and parts[0].isdigit():
                moment = datetime.strptime(parts[1].strip(), "%Y-%m-%d %H:%M:%S.%f")
                self.rows[int(parts[0])] = moment.replace(tzinfo=UTC)

    def last(self) -> tuple[int, datetime]:
        ident = max(self.rows)
        return ident, self.rows[ident]


@dataclass
class Sandbox:
    run: str
    work: Path
    bucket: str
    master: str
    backup: str
    timings: dict[str, float] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)

    def sql(self, container: str, query: str, check: bool = True) -> str:
        proc = sh("docker", "exec", container, "mariadb", "-N", "-B", "-e", query, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"{container}: {query.strip()[:200]}: {proc.stderr.strip()}")
        return proc.stdout.strip()

    def playbook(self, playbook: str, *extra: str, step: str
                 ) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                   ANSIBLE_FORCE_COLOR="0", PATH=f"{BIN}:{os.environ.get('PATH', '')}")
        start = time.monotonic()
        # A global config key of this run's own: the sandbox's document describes the
        # sandbox's cluster, whose live positions would name servers outside this inventory.
        proc = sh(str(BIN / "ansible-playbook"), "-i", str(self.work / "hkbak.docker.yml"),
                  playbook, "-e", f"mysql_backup_bucket={self.bucket}",
                  "-e", f"hostkit_global_config_key={self.run}.json", *extra,
                  check=False, cwd=ROOT, env=env)
        self.timings[step] = round(time.monotonic() - start, 1)
        (self.work / f"{step}.log").write_text(proc.stdout + proc.stderr)
        return proc

    def s3_keys(self, prefix: str = "") -> list[str]:
        client = s3_client()
        found = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                       Prefix=prefix):
            found += [o["Key"] for o in page.get("Contents", [])]
        return sorted(found)

    def s3_json(self, key: str) -> dict[str, Any]:
        return json.loads(s3_client().get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def status(self) -> dict[str, Any]:
        out = sh("docker", "exec", self.backup, "hostkit-mysql-backup", "status").stdout
        return json.loads(out)


def start_db(name: str, run: str, labels: dict[str, str]) -> None:
    label_args = [a for k, v in {"io.hostkit.managed": "true", "io.hostkit.az": "us-east-1a",
                                 "io.hostkit.test": run, **labels}.items()
                  for a in ("--label", f"{k}={v}")]
    docker("run", "-d", "--name", name, "--hostname", name, "--network", "hostkit", *label_args,
           *SYSTEMD_RUN_FLAGS, IMAGE, "/lib/systemd/systemd")


def write_inventory(work: Path, run: str) -> None:
    """The sandbox's docker inventory narrowed to this run's containers, with the sandbox
    group_vars (products, the AWS endpoint, the backup keys) beside it."""
    config = yaml.safe_load((ROOT / "inventory/sandbox/docker.yml").read_text())
    config["filters"] = [
        {"include": "docker_state.Running | default(false) and (docker_config.Labels | "
                    f"default({{}}, true)).get('io.hostkit.test', '') == '{run}'"},
        {"exclude": True},
    ]
    (work / "hkbak.docker.yml").write_text(yaml.safe_dump(config))
    (work / "group_vars").symlink_to(ROOT / "inventory/sandbox/group_vars")
    (work / "backup-role.yml").write_text(BACKUP_PLAY)


def remove_bucket(bucket: str) -> None:
    client = s3_client()
    paginator = client.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=bucket):
        doomed = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                  for v in (page.get("Versions") or []) + (page.get("DeleteMarkers") or [])]
        if doomed:
            client.delete_objects(Bucket=bucket, Delete={"Objects": doomed, "Quiet": True})
    client.delete_bucket(Bucket=bucket)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    ensure_network()
    ensure_aws()
    run = f"hkbak-t{uuid.uuid4().hex[:6]}"
    bucket = ensure_bucket(f"{run}-backups")
    work = tmp_path_factory.mktemp("backup")
    box = Sandbox(run, work, bucket, master=f"{run}-db1", backup=f"{run}-db2")
    try:
        for name, position in ((box.master, "master"), (box.backup, "backup")):
            start_db(name, run, {"io.hostkit.role": "db", "io.hostkit.products": PRODUCT,
                                 "io.hostkit.db_role": position})
        for name in (box.master, box.backup):
            wait_for_systemd(name, timeout=180)
        write_inventory(work, run)
        yield box
    finally:
        print(f"\nbackup/restore figures: {json.dumps(box.figures, indent=2)}\n"
              f"playbook seconds: {json.dumps(box.timings)}")
        names = sh("docker", "ps", "-aq", "--filter", f"label=io.hostkit.test={run}").stdout
        for container in names.split():
            docker("rm", "-f", container, check=False)
        remove_bucket(bucket)


def test_cluster_and_backup_role_converge(sandbox: Sandbox) -> None:
    """The cluster, then the backup role, converge. (A second run of the role changing
    nothing is Molecule's idempotence step for mysql_backup, and the sandbox's re-run covers
    the role on its backup replica: running it twice here checked that a third time.)"""
    db = sandbox.playbook("playbooks/db.yml", step="db_converge")
    assert db.returncode == 0, db.stdout[-6000:] + db.stderr[-2000:]
    first = sandbox.playbook(str(sandbox.work / "backup-role.yml"), step="backup_role_first")
    assert first.returncode == 0, first.stdout[-6000:] + first.stderr[-2000:]
    for unit in ("hostkit-mysql-backup.timer", "hostkit-mysql-binlog-stream.service",
                 "hostkit-mysql-binlog-ship.service"):
        active = sh("docker", "exec", sandbox.backup, "systemctl", "is-active", unit,
                    check=False).stdout.strip()
        assert active == "active", unit
    timer = sh("docker", "exec", sandbox.backup, "systemctl", "show", "-p", "TimersCalendar",
               "hostkit-mysql-backup.timer").stdout
    assert "*:0/15" in timer or "*-*-* *:00/15:00" in timer, timer
    source = json.loads(sh("docker", "exec", sandbox.backup, "cat",
                           "/etc/hostkit/mysql-binlog-source.json").stdout)
    assert source["name"] == sandbox.master and source["port"] == 3306
    # The replica follows the master; the stream account exists on both, made without a GTID.
    assert sandbox.sql(sandbox.backup, "SELECT COUNT(*) FROM mysql.user "
                                       "WHERE user = 'hostkit_binlog'") == "1"
    assert sandbox.sql(sandbox.master, "SELECT COUNT(*) FROM mysql.user "
                                       "WHERE user = 'hostkit_binlog'") == "1"


@pytest.fixture(scope="module")
def writes(sandbox: Sandbox) -> Iterator[Writer]:
    """The tables, then the writer, running until the cluster is destroyed."""
    sandbox.sql(sandbox.master, """
        CREATE TABLE hello.bk_rows (id INT PRIMARY KEY, payload VARCHAR(64) NOT NULL,
                                    created_at DATETIME(6) NOT NULL);
        CREATE TABLE hello.bk_static (id INT PRIMARY KEY, body VARCHAR(200) NOT NULL);
        INSERT INTO hello.bk_static
          SELECT seq, REPEAT(MD5(seq), 6) FROM hello.seq_1_to_5000;""")
    sandbox.state["static_checksum"] = sandbox.sql(
        sandbox.master, "CHECKSUM TABLE hello.bk_static").split("\t")[1]
    proc = subprocess.Popen(["docker", "exec", sandbox.master, "bash", "-c", WRITER],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    writer = Writer(proc)
    writer.thread = threading.Thread(target=writer.follow, daemon=True)
    writer.thread.start()
    deadline = time.monotonic() + 60
    while len(writer.rows) < 20 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(writer.rows) >= 20, "the writer does not get rows in"
    yield writer
    proc.kill()
    proc.wait()


def test_backup_now_on_the_backup_replica(sandbox: Sandbox, writes: Writer) -> None:
    proc = sandbox.playbook("playbooks/backup_now.yml", "-e", f"cluster={CLUSTER}",
                            step="backup_now")
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    success = sandbox.status()["backup"]["backup"]["last_success"]
    latest = sandbox.s3_json(f"{CLUSTER}/latest.json")
    assert latest["data_key"] == success["data_key"]
    assert latest["server"] == sandbox.backup
    manifest = sandbox.s3_json(latest["manifest_key"])
    assert re.fullmatch(r"0-\d+-\d+", manifest["gtid"]), manifest
    assert manifest["sha256"] == success["sha256"] and manifest["size"] == success["size"]
    sandbox.state["snapshot"] = manifest
    sandbox.figures["snapshot_seconds"] = manifest["seconds"]
    sandbox.figures["snapshot_bytes"] = manifest["size"]
    sandbox.figures["backup_playbook_seconds"] = sandbox.timings["backup_now"]


def set_config(sandbox: Sandbox, **changes: Any) -> None:
    path = "/etc/hostkit/mysql-backup.json"
    doc = json.loads(sh("docker", "exec", sandbox.backup, "cat", path).stdout)
    doc.update(changes)
    sh("docker", "exec", "-i", sandbox.backup, "sh", "-c",
       f"cat > {path}.new && mv {path}.new {path}", input=json.dumps(doc))


@pytest.mark.parametrize(("change", "message"), [
    ({"bucket": "hkbak-no-such-bucket"}, "bucket hkbak-no-such-bucket does not exist"),
    ({"endpoint_url": "http://aws:5999"}, "is not reachable"),
])
def test_failed_backup_changes_nothing_and_says_so(sandbox: Sandbox, writes: Writer,
                                                   change: dict, message: str) -> None:
    assert "snapshot" in sandbox.state, "needs the first snapshot"
    original = json.loads(sh("docker", "exec", sandbox.backup, "cat",
                             "/etc/hostkit/mysql-backup.json").stdout)
    latest_before = sandbox.s3_json(f"{CLUSTER}/latest.json")
    snapshots_before = sandbox.s3_keys(f"{CLUSTER}/snapshots/")
    set_config(sandbox, **change)
    try:
        run = sh("docker", "exec", sandbox.backup, "systemctl", "start",
                 "hostkit-mysql-backup.service", check=False)
        assert run.returncode != 0
        assert sh("docker", "exec", sandbox.backup, "systemctl", "is-failed",
                  "hostkit-mysql-backup.service", check=False).stdout.strip() == "failed"
        journal = sh("docker", "exec", sandbox.backup, "journalctl", "-u",
                     "hostkit-mysql-backup.service", "-n", "20", "--no-pager").stdout
        assert f"backup failed: {message}" in journal or message in journal, journal
        state = sandbox.status()["backup"]["backup"]
        assert state["status"] == "failed" and message in state["last_error"]["message"]
        assert state["last_success"]["data_key"] == latest_before["data_key"]
        playbook = sandbox.playbook("playbooks/backup_now.yml", step=f"backup_fails_{len(message)}")
        assert playbook.returncode != 0
        assert message in " ".join(playbook.stdout.split()), playbook.stdout[-3000:]
    finally:
        set_config(sandbox, **{k: original[k] for k in change})
    assert sandbox.s3_json(f"{CLUSTER}/latest.json") == latest_before
    assert sandbox.s3_keys(f"{CLUSTER}/snapshots/") == snapshots_before
    uploads = s3_client().list_multipart_uploads(Bucket=sandbox.bucket).get("Uploads", [])
    assert uploads == []


@pytest.fixture(scope="module")
def destroyed(sandbox: Sandbox, writes: Writer) -> dict[str, Any]:
    """Writes go on past the restore point, then the whole cluster goes at once."""
    assert "snapshot" in sandbox.state, "needs the snapshot"
    snapshot_done = datetime.strptime(sandbox.state["snapshot"]["finished_at"],
                                      "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    # The restore point: a second well after the snapshot finished, with writes before and
    # after it; then more writes, and a few shipping intervals for the stream.
    while datetime.now(UTC) < snapshot_done + timedelta(seconds=12):
        time.sleep(0.5)
    point = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=3)
    time.sleep(25)
    assert writes.proc.poll() is None, "the writer stopped before the cluster was destroyed"
    docker("rm", "-f", sandbox.master, sandbox.backup)
    destroyed_at = datetime.now(UTC)
    writes.proc.wait(timeout=30)
    if writes.thread:
        writes.thread.join(timeout=30)
    last_id, last_at = writes.last()
    return {"point": point, "destroyed_at": destroyed_at, "last_id": last_id,
            "last_at": last_at}


def new_server(sandbox: Sandbox, suffix: str) -> str:
    name = f"{sandbox.run}-{suffix}"
    start_db(name, sandbox.run, {"io.hostkit.role": "restore"})
    wait_for_systemd(name, timeout=180)
    return name


def restored_rows(sandbox: Sandbox, name: str) -> list[tuple[int, str]]:
    out = sandbox.sql(name, "SELECT id, payload FROM hello.bk_rows ORDER BY id")
    return [(int(i), p) for i, p in (line.split("\t") for line in out.splitlines())]


def restore(sandbox: Sandbox, target: str, *extra: str, step: str
            ) -> subprocess.CompletedProcess[str]:
    return sandbox.playbook("playbooks/restore.yml", "-e", f"target={target}",
                            "-e", f"cluster={CLUSTER}", *extra, step=step)


def test_restore_to_a_point_in_time_has_every_row_before_it(
        sandbox: Sandbox, writes: Writer, destroyed: dict[str, Any]) -> None:
    point: datetime = destroyed["point"]
    target = new_server(sandbox, "pit")
    stamp = point.strftime("%Y-%m-%dT%H:%M:%SZ")
    proc = restore(sandbox, target, "-e", f"restore_time={stamp}", step="restore_point")
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-2000:]
    sandbox.figures["restore_point_playbook_seconds"] = sandbox.timings["restore_point"]
    # Every row committed in or before the restore second, and none after it.
    limit = point + timedelta(seconds=1)
    expected = sorted((i, f"row-{i}") for i, at in writes.rows.items() if at < limit)
    later = [i for i, at in writes.rows.items() if at >= limit]
    assert expected and later, "the writes must straddle the restore point"
    rows = restored_rows(sandbox, target)
    assert len(rows) == len(expected)
    assert rows == expected
    total = sandbox.sql(target, "SELECT SUM(CRC32(CONCAT(id, '|', payload))) "
                                "FROM hello.bk_rows")
    assert int(total) == content_sum(expected)
    assert sandbox.sql(target, "CHECKSUM TABLE hello.bk_static").split("\t")[1] == \
        sandbox.state["static_checksum"]
    # The playbook printed the checksums and counts it verified.
    text = " ".join(proc.stdout.split())
    assert "hello.bk_static:" in text and f"rows: {len(expected)}" in text, proc.stdout[-3000:]
    sandbox.figures["restore_point"] = stamp
    sandbox.figures["rows_at_restore_point"] = len(expected)
    sandbox.state["pit_target"] = target


def test_restore_latest_and_measure_the_recovery_point(
        sandbox: Sandbox, writes: Writer, destroyed: dict[str, Any]) -> None:
    target = new_server(sandbox, "latest")
    proc = restore(sandbox, target, step="restore_latest")
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-2000:]
    rows = restored_rows(sandbox, target)
    assert rows, "nothing restored"
    last_restored = rows[-1][0]
    # A prefix of what was acknowledged, without holes.
    assert rows == [(i, f"row-{i}") for i in range(1, last_restored + 1)]
    assert last_restored <= destroyed["last_id"]
    lost_rows = destroyed["last_id"] - last_restored
    lost_seconds = (destroyed["last_at"] - writes.rows[last_restored]).total_seconds()
    sandbox.figures.update({
        "rows_acknowledged": destroyed["last_id"],
        "rows_restored_latest": last_restored,
        "rows_lost": lost_rows,
        "recovery_point_seconds": round(lost_seconds, 1),
        "restore_latest_playbook_seconds": sandbox.timings["restore_latest"],
    })
    print(f"\nrecovery point: {lost_seconds:.1f} s of acknowledged writes lost "
          f"({lost_rows} rows of {destroyed['last_id']})")
    assert lost_seconds < 60


def test_restore_refuses_a_server_with_data(sandbox: Sandbox, destroyed: dict[str, Any]
                                            ) -> None:
    target = sandbox.state.get("pit_target")
    assert target, "needs the point-in-time restore"
    before = sandbox.sql(target, "SELECT COUNT(*) FROM hello.bk_rows")
    proc = restore(sandbox, target, step="restore_refused")
    assert proc.returncode != 0
    text = " ".join(proc.stdout.split())
    assert f"{target} is not a fresh server" in text, proc.stdout[-3000:]
    assert sandbox.sql(target, "SELECT COUNT(*) FROM hello.bk_rows") == before
