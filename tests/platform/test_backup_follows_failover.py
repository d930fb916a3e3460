"""The binary log stream of the backups follows the master through a failover, on real
containers: the mysql_backup role on the backup replica (playbooks/failover_and_backups.yml,
mysql_backup_source_owner=global_config, the default with a global config), a snapshot, then
a fault on the master (kill -9: the stream's connection breaks and the service restarts,
reading the global config first; the master cut off the network: the connection hangs, and
the poll while streaming notices the new master). For each fault:

- the binlog source file on the backup replica names the new master (name and address) of
  the global config document the failover watcher published;
- the stream runs towards it in a new series (current.json), whose binary logs reach S3;
- the restore plan (`hostkit-mysql-backup plan`) from the snapshot taken before the fault
  reaches the new master's GTID position (restore across the failover, by GTID);

and after the site is put back in its initial positions (the old master re-seeded, planned
switchovers back), the stream follows back to the original master in a new stint of its
series (`<name>-sid<id>-<stamp>`), never into the files of its first series.

Site: as tests/platform/test_failover.py (the sandbox by default, `make up` first;
HOSTKIT_FAILOVER_SITE=own for an own cluster of hkfo-* containers with a backup bucket of
its own). Run: .venv/bin/python -m pytest -q -m platform -s
tests/platform/test_backup_follows_failover.py
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from host_programs.backup import core as mb
from tests.platform import failover_site as fs

pytestmark = [pytest.mark.platform, pytest.mark.sandbox]
SOURCE = "/etc/hostkit/mysql-binlog-source.json"
FIGURES: dict[str, Any] = {}


def backup_host(site: fs.Site) -> str:
    return site.canonical["backup"]


def read_json_in(container: str, path: str) -> dict[str, Any]:
    out = fs.sh("docker", "exec", container, "cat", path, check=False).stdout
    return json.loads(out) if out.strip() else {}


def program(site: fs.Site, *args: str) -> dict[str, Any]:
    out = fs.sh("docker", "exec", backup_host(site), "hostkit-mysql-backup", *args,
                timeout=300)
    return json.loads(out.stdout)


def stream_journal(site: fs.Site, since: float) -> str:
    since_text = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(since - 1))
    return fs.sh("docker", "exec", backup_host(site), "journalctl", "-u",
                 "hostkit-mysql-binlog-stream", "--utc", "--since", since_text, "--no-pager",
                 "-o", "cat", check=False).stdout


def series_keys(bucket: str, series: str) -> list[str]:
    client = fs.s3_client(fs.AWS_HOST_URL)
    reply = client.list_objects_v2(Bucket=bucket, Prefix=f"{fs.CLUSTER}/binlogs/{series}/")
    return [o["Key"] for o in reply.get("Contents", [])]


def base_series(site: fs.Site, server: str) -> str:
    return mb.binlog_series(server, int(site.sql(server, "SELECT @@server_id")))


def wait_following(site: fs.Site, bucket: str, master: str, timeout: float = 90
                   ) -> dict[str, Any]:
    """Until the backup replica streams `master` (source file, current series) and that
    series has binary logs in S3; returns the current series document."""
    address = site.address(master)
    base = base_series(site, master)

    def following() -> dict[str, Any] | None:
        source = read_json_in(backup_host(site), SOURCE)
        current = program(site, "status")["stream"]
        if source.get("name") != master or source.get("host") != address:
            return None
        if current.get("host") != address or not mb.is_series_of(current.get("series"), base):
            return None
        return current if series_keys(bucket, current["series"]) else None

    return fs.wait_for(following, timeout, f"the binlog stream to follow {master}", 1.0)


def newest_snapshot(site: fs.Site) -> str:
    """The manifest key of the newest complete snapshot."""
    manifests = program(site, "list")
    assert manifests, "no complete snapshot in S3"
    return str(manifests[-1]["manifest_key"])


def wait_plan_reaches(site: fs.Site, master: str, snapshot: str, timeout: float = 90
                      ) -> dict[str, Any]:
    """Until the restore plan from `snapshot` reaches the GTID position `master` has now.
    The snapshot is named: the role's timer (every 15 minutes) may take a newer one after
    the fault, whose plan then needs no binary log at all."""
    target = mb.parse_gtid_list(site.sql(master, "SELECT @@gtid_binlog_pos"))

    def reaches() -> dict[str, Any] | None:
        plan = program(site, "plan", "--snapshot", snapshot)
        return plan if mb.gtid_covers(mb.parse_gtid_list(plan["reaches_gtid"]), target) \
            else None

    return fs.wait_for(reaches, timeout, f"a restore plan reaching {mb.format_gtid_list(target)}"
                       f" of {master}", 2.0)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory,
         request: pytest.FixtureRequest) -> Iterator[fs.Site]:
    with fs.module_site(tmp_path_factory.mktemp, lambda: request.getfixturevalue("sandbox_up"),
                        "backup-failover") as site_:
        yield site_
    print(f"\nbackup stream across failovers: {json.dumps(FIGURES, indent=2)}")


@pytest.fixture(scope="module")
def bucket(site: fs.Site) -> Iterator[str]:
    """The backups of the site: the sandbox's own bucket (the role's default), or one of
    the own cluster's, removed at the end. The role applied, a first snapshot taken."""
    own = f"{site.run}-backups" if site.own else ""
    name = fs.ensure_bucket(own) if own else "hostkit-sandbox-backups"
    extra = ["-e", f"mysql_backup_bucket={name}"] if own else []
    result = fs.playbook(site, "playbooks/failover_and_backups.yml", *extra)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    config = read_json_in(backup_host(site), "/etc/hostkit/mysql-backup.json")
    assert config["global_config_bucket"] == site.bucket
    assert config["global_config_key"] == site.key
    first = wait_following(site, name, str(site.positions()["master"]))
    FIGURES["before"] = {"master": first["master"], "series": first["series"]}
    snapshot = fs.playbook(site, "playbooks/backup_now.yml", "-e", f"cluster={fs.CLUSTER}", *extra)
    assert snapshot.returncode == 0, snapshot.stdout[-6000:] + snapshot.stderr[-2000:]
    FIGURES["first_snapshot"] = newest_snapshot(site)
    yield name
    if own:
        client = fs.s3_client(fs.AWS_HOST_URL)
        for page in client.get_paginator("list_object_versions").paginate(Bucket=name):
            doomed = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                      for v in (page.get("Versions") or []) + (page.get("DeleteMarkers") or [])]
            if doomed:
                client.delete_objects(Bucket=name, Delete={"Objects": doomed, "Quiet": True})
        client.delete_bucket(Bucket=name)


@pytest.mark.parametrize("fault", ["kill9", "netcut"])
def test_binlog_stream_follows_the_new_master(site: fs.Site, bucket: str, fault: str) -> None:
    fs.restore(site)
    old = str(site.positions()["master"])
    wait_following(site, bucket, old)
    before = newest_snapshot(site)
    outcome = fs.run_fault(site, fault)
    new = outcome.new_master
    assert new and new != old
    current = wait_following(site, bucket, new)
    followed_at = time.time()
    log = stream_journal(site, outcome.fault_at)
    epoch = site.doc()["epoch"]
    assert f"names master {new} ({site.address(new)}:3306)" in log, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    source = read_json_in(backup_host(site), SOURCE)
    assert source["epoch"] <= epoch and source["port"] == 3306
    state = program(site, "status")["source"]
    assert state["master"] == new and state["epoch"] >= source["epoch"]
    plan = wait_plan_reaches(site, new, before)
    assert plan["snapshot"]["manifest_key"] == before, plan["snapshot"]
    assert plan["steps"], plan
    assert mb.is_series_of(plan["steps"][-1]["series"], base_series(site, new)), plan["steps"]
    FIGURES[fault] = {"old_master": old, "new_master": new, "series": current["series"],
                      "start_file": current["start_file"],
                      "fault_to_following_s": round(followed_at - outcome.fault_at, 1),
                      "plan_steps": [(s["series"], len(s["files"])) for s in plan["steps"]]}
    print(f"\n{fault}: {json.dumps(FIGURES[fault])}")


def test_binlog_stream_follows_back_in_a_new_stint(site: fs.Site, bucket: str) -> None:
    """After the faults, the site back in its initial positions: the original master is
    followed again in a new stint of its series (never into the files streamed from it
    before the faults), and the plan from the first snapshot, taken before every fault,
    still reaches its position across every change of master."""
    assert "kill9" in FIGURES or "netcut" in FIGURES, "no fault ran"
    fs.restore(site)
    master = site.canonical["master"]
    assert FIGURES["before"]["master"] == master
    current = wait_following(site, bucket, master)
    assert current["series"] != FIGURES["before"]["series"], current
    assert current["series"].startswith(f"{base_series(site, master)}-"), current
    plan = wait_plan_reaches(site, master, FIGURES["first_snapshot"])
    FIGURES["back"] = {"master": master, "series": current["series"],
                       "start_file": current["start_file"],
                       "plan_steps": [(s["series"], len(s["files"])) for s in plan["steps"]]}
    print(f"\nback: {json.dumps(FIGURES['back'])}")
