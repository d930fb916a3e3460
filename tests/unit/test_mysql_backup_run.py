"""host_programs/backup/ (program.py, the modules of its commands, s3.py) against moto
(in-process S3): a backup end to end with stand-in commands (mariabackup, zstd, mbstream,
mariadb, mariadb-binlog are small scripts here), failures that must leave "latest" alone
and no upload behind, retention over versioned objects, binary log shipping in segments and
whole files, the restore plan from what was shipped, download verification, the replay
commands and the stream supervisor."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import asdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from jinja2 import Environment, StrictUndefined, meta
from jinja2.nativetypes import NativeEnvironment
from moto import mock_aws

from host_programs.backup import core as mb
from host_programs.backup import program
from host_programs.backup.config import (
    Config,
    load_config,
    load_env_file,
    parse_config,
    read_source,
)
from host_programs.backup.restore import build_plan, fetch_snapshot, replay
from host_programs.backup.retention import apply_retention, list_binlog_objects, list_manifests
from host_programs.backup.s3 import S3Store
from host_programs.backup.ship import Shipper
from host_programs.backup.snapshot import run_backup
from host_programs.backup.stream import current_series_path, prepare_stream, run_stream
from host_programs.common.atomic_files import write_json_atomic
from tests.unit.binlog_fixtures import binlog
from tests.unit.role_settings import ROOT, SANDBOX_BACKUP_HOST, sandbox_settings

BUCKET = "hostkit-test-backups"
MB = 1024 * 1024

FAKE_MARIABACKUP = """
import os, sys
args = dict(a.split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
lsn = args["--extra-lsndir"]
size = int(os.environ.get("FAKE_SIZE", "1000"))
with open(os.path.join(lsn, "xtrabackup_info"), "w") as f:
    f.write("tool_version = 10.11.18-MariaDB\\n"
            "binlog_pos = filename 'mariadb-bin.000002', position '777', "
            "GTID of the last change '%s'\\n" % os.environ.get("FAKE_GTID", "0-11-42"))
out = sys.stdout.buffer
block = bytes(range(256)) * 4096
written = 0
while written < size:
    chunk = block[: min(len(block), size - written)]
    out.write(chunk)
    written += len(chunk)
out.flush()
if os.environ.get("FAKE_FAIL"):
    sys.stderr.write("[00] FATAL ERROR: cannot read ./ibdata1\\n")
    sys.exit(1)
sys.stderr.write("[00] 2026-11-28 09:18:52 completed OK!\\n")
"""

# zstd stand-in: passes bytes through (compression is not what is under test).
FAKE_ZSTD = """
import shutil, sys
shutil.copyfileobj(sys.stdin.buffer, sys.stdout.buffer)
"""

FAKE_MBSTREAM = """
import shutil, sys
dest = sys.argv[sys.argv.index("-C") + 1]
with open(dest + "/stream.bin", "wb") as f:
    shutil.copyfileobj(sys.stdin.buffer, f)
"""

# mariadb stand-in: records each statement (or the bytes piped in) and answers the queries
# the program asks.
FAKE_MARIADB = """
import os, sys
log = os.environ["FAKE_LOG"]
if "-e" in sys.argv:
    sql = sys.argv[sys.argv.index("-e") + 1]
    with open(log, "a") as f:
        f.write("SQL " + sql + "\\n")
    answers = {"SELECT @@log_bin": "1", "SELECT @@gtid_binlog_pos": "0-11-99"}
    print(answers.get(sql, ""))
else:
    data = sys.stdin.buffer.read()
    with open(log, "a") as f:
        f.write("PIPED %d %s %s\\n" % (len(data), os.environ.get("TZ"), " ".join(sys.argv[1:])))
"""

FAKE_MARIADB_BINLOG = """
import os, sys
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write("BINLOG " + " ".join(a if not a.startswith("/") else os.path.basename(a)
                                 for a in sys.argv[1:]) + "\\n")
if "--stop-never" in sys.argv:
    import time
    time.sleep(60)
for a in sys.argv[1:]:
    if a.startswith("/"):
        sys.stdout.buffer.write(open(a, "rb").read())
"""


def script(directory: Path, name: str, body: str) -> str:
    path = directory / name
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        client.put_bucket_versioning(Bucket=BUCKET,
                                     VersioningConfiguration={"Status": "Enabled"})
        yield client


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "calls.log"))
    commands = {
        "mariabackup": script(bin_dir, "mariabackup", FAKE_MARIABACKUP),
        "zstd": script(bin_dir, "zstd", FAKE_ZSTD),
        "mbstream": script(bin_dir, "mbstream", FAKE_MBSTREAM),
        "mariadb": script(bin_dir, "mariadb", FAKE_MARIADB),
        "mariadb_binlog": script(bin_dir, "mariadb-binlog", FAKE_MARIADB_BINLOG),
    }
    cfg = Config(cluster="hello", bucket=BUCKET, server="db-4", region="us-east-1",
                 part_size_mb=5, keep_recent=3, keep_daily=2,
                 mariabackup_options_file="", binlog_options_file="",
                 source_file=str(tmp_path / "source.json"),
                 state_dir=str(tmp_path / "state"), binlog_dir=str(tmp_path / "binlogs"),
                 work_dir=str(tmp_path / "work"), commands=commands, compact_segments=3,
                 env_file="")
    path = tmp_path / "mysql-backup.json"
    path.write_text(json.dumps(asdict(cfg)))
    return cfg


def config_file(cfg: Config) -> str:
    return str(Path(cfg.source_file).parent / "mysql-backup.json")


def keys(s3: Any, prefix: str = "") -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
                  .get("Contents", []))


def body(s3: Any, key: str) -> bytes:
    return s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()


def state(cfg: Config) -> dict:
    return json.loads(Path(cfg.state_dir, "backup-state.json").read_text())


# ----------------------------------------------------------------------------- backup

def test_backup_uploads_in_parts_then_manifest_then_latest(
        s3: Any, config: Config, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FAKE_SIZE", str(12 * MB))
    assert program.main(["--config", config_file(config), "backup"], client=s3) == 0
    out = json.loads(capsys.readouterr().out)
    manifest = out["manifest"]
    data = body(s3, manifest["data_key"])
    assert len(data) == 12 * MB == manifest["size"]
    assert hashlib.sha256(data).hexdigest() == manifest["sha256"]
    assert manifest["parts"] == 3 and manifest["gtid"] == "0-11-42"
    assert manifest["binlog_file"] == "mariadb-bin.000002"
    assert json.loads(body(s3, manifest["manifest_key"])) == manifest
    latest = json.loads(body(s3, "hello/latest.json"))
    assert latest["data_key"] == manifest["data_key"] and latest["sha256"] == manifest["sha256"]
    head = s3.head_object(Bucket=BUCKET, Key=manifest["data_key"])
    assert head["Metadata"]["cluster"] == "hello" and head["Metadata"]["server"] == "db-4"
    tags = {t["Key"]: t["Value"] for t in
            s3.get_object_tagging(Bucket=BUCKET, Key=manifest["data_key"])["TagSet"]}
    assert tags == {"cluster": "hello", "server": "db-4", "sha256": manifest["sha256"],
                    "size": str(12 * MB), "gtid": "0-11-42"}
    saved = state(config)["backup"]
    assert saved["status"] == "ok" and saved["last_error"] is None
    assert saved["last_success"]["data_key"] == manifest["data_key"]


def test_failed_mariabackup_leaves_latest_and_no_upload(
        s3: Any, config: Config, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FAKE_SIZE", str(7 * MB))
    assert program.main(["--config", config_file(config), "backup"], client=s3) == 0
    before = body(s3, "hello/latest.json")
    objects = keys(s3)
    capsys.readouterr()
    monkeypatch.setenv("FAKE_FAIL", "1")
    time.sleep(1.1)  # a new second: a new key
    assert program.main(["--config", config_file(config), "backup"], client=s3) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("hostkit-mysql-backup: backup failed: mariabackup exited with "
                             "status 1")
    assert "FATAL ERROR: cannot read ./ibdata1" in err[0]
    assert body(s3, "hello/latest.json") == before
    assert keys(s3) == objects
    assert S3Store(BUCKET, client=s3).open_uploads("hello/") == []
    saved = state(config)["backup"]
    assert saved["status"] == "failed"
    assert "mariabackup exited with status 1" in saved["last_error"]["message"]
    assert saved["last_success"]["data_key"] == json.loads(before)["data_key"]


def test_upload_error_midway_aborts_the_multipart_upload(
        s3: Any, config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_SIZE", str(12 * MB))
    real = s3.upload_part
    calls = {"n": 0}

    def flaky(**kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise ConnectionError("connection reset by peer")
        return real(**kwargs)

    monkeypatch.setattr(s3, "upload_part", flaky)
    assert program.main(["--config", config_file(config), "backup"], client=s3) == 1
    assert keys(s3) == []
    assert S3Store(BUCKET, client=s3).open_uploads("hello/") == []
    assert "connection reset by peer" in state(config)["backup"]["last_error"]["message"]


def test_missing_bucket_is_named(s3: Any, config: Config,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    cfg = json.loads(Path(config_file(config)).read_text())
    cfg["bucket"] = "no-such-bucket"
    Path(config_file(config)).write_text(json.dumps(cfg))
    assert program.main(["--config", config_file(config), "backup"], client=s3) == 1
    assert "bucket no-such-bucket does not exist" in capsys.readouterr().err
    assert state(config)["backup"]["status"] == "failed"


def test_bad_configuration_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.json"
    assert program.main(["--config", str(path), "backup"]) == 1
    assert (f"configuration {path}: no such file (apply the mysql_backup role)"
            in capsys.readouterr().err)
    path.write_text(json.dumps({"cluster": "hello", "bucket": "b", "colour": "red"}))
    assert program.main(["--config", str(path), "status"]) == 1
    assert (f"configuration {path}: (top level): Additional properties are not allowed "
            "('colour' was unexpected)" in capsys.readouterr().err)
    path.write_text(json.dumps({"bucket": "b"}))
    assert program.main(["--config", str(path), "status"]) == 1
    assert (f"configuration {path}: (top level): 'cluster' is a required property"
            in capsys.readouterr().err)
    path.write_text(json.dumps({"cluster": "Main", "bucket": "b"}))
    assert program.main(["--config", str(path), "status"]) == 1
    assert ("cluster: must be a lower-case id (letters, digits, '_' or '-', starting with a "
            "letter), got 'Main'" in capsys.readouterr().err)
    path.write_text("{")
    assert program.main(["--config", str(path), "status"]) == 1
    assert f"configuration {path}: not JSON" in capsys.readouterr().err


GOOD = {"cluster": "hello", "bucket": "b"}


@pytest.mark.parametrize(("changes", "expected"), [
    ({"cluster": ""}, "cluster: must be a lower-case id (letters, digits, '_' or '-', "
                      "starting with a letter), got ''"),
    ({"bucket": ""}, "bucket: must be an S3 bucket name, got ''"),
    ({"server": "db 4"}, "server: must be a host name (letters, digits, '.', '_' or '-'), "
                         "got 'db 4'"),
    ({"keep_recent": 0}, "keep_recent: must be a whole number >= 1, got 0"),
    ({"keep_daily": -1}, "keep_daily: must be a whole number >= 0, got -1"),
    ({"master_port": 0}, "master_port: must be a whole number from 1 to 65535 (a port "
                         "number), got 0"),
    ({"master_port": 65536}, "master_port: must be a whole number from 1 to 65535"),
    ({"global_config_bucket": "g", "global_config_interval": 0.05},
     "global_config_interval: must be a number >= 0.1 (seconds) when global_config_bucket "
     "is set, got 0.05"),
    ({"part_size_mb": 4}, "part_size_mb: must be a whole number >= 5 (MiB: S3's smallest "
                          "part is 5 MiB), got 4"),
    ({"compression_level": 20}, "compression_level: must be a whole number from 1 to 19"),
    ({"ship_interval": 0}, "ship_interval: must be a number of seconds above 0, got 0"),
    ({"mariabackup_extra_args": "--parallel=2"},
     "mariabackup_extra_args: must be a list of mariabackup options, got '--parallel=2'"),
    ({"commands": {"zstdd": "/bin/zstd"}},
     "commands: Additional properties are not allowed ('zstdd' was unexpected)"),
    ({"product": "main"}, "cluster 'hello' and the older field product 'main' differ "
                          "(remove product)"),
])
def test_each_bad_setting_is_named(changes: dict[str, Any], expected: str) -> None:
    with pytest.raises(mb.BackupError) as err:
        parse_config({**GOOD, **changes}, "configuration c.json")
    assert str(err.value).startswith("configuration c.json: ")
    assert expected in str(err.value) and ";" not in str(err.value)  # that one only


def test_every_bad_setting_is_named_at_once() -> None:
    with pytest.raises(mb.BackupError) as err:
        parse_config({"product": "x", "cluster": "y", "keep_recent": 0, "master_port": "3306",
                      "colour": 1}, "configuration c.json")
    message = str(err.value)
    for part in ("cluster 'y' and the older field product 'x' differ",
                 "'bucket' is a required property", "('colour' was unexpected)",
                 "keep_recent: must be", "master_port: must be"):
        assert part in message, message
    assert message.count(";") == 4


def test_settings_the_old_reader_accepted_still_pass() -> None:
    # Empty paths (no options file, no env file), the interval unchecked without a
    # global config, whole floats where whole numbers are due, zero daily snapshots.
    loaded = parse_config({**GOOD, "mariabackup_options_file": "", "env_file": "",
                           "global_config_interval": 0, "keep_daily": 0, "keep_recent": 1.0,
                           "ship_interval": 0.5, "server": "hostkit-db-4"})
    assert loaded.keep_daily == 0 and loaded.server == "hostkit-db-4"
    assert parse_config({"product": "hello", "bucket": "b"}).cluster == "hello"




def role_settings_file(context: dict[str, Any]) -> str:
    """roles/mysql_backup/templates/mysql-backup.json.j2 rendered as the template module
    does (text), with the role's internal paths of vars/main.yml that it names."""
    role = ROOT / "roles" / "mysql_backup"
    role_vars = yaml.safe_load((role / "vars" / "main.yml").read_text())
    native = NativeEnvironment(undefined=StrictUndefined)
    env = Environment(undefined=StrictUndefined, keep_trailing_newline=True)
    env.filters["to_nice_json"] = lambda v, indent=4: json.dumps(v, indent=indent,
                                                                 sort_keys=True)
    source = (role / "templates" / "mysql-backup.json.j2").read_text()
    context = dict(context, inventory_hostname="hostkit-db-4")
    for name in sorted(meta.find_undeclared_variables(env.parse(source))):
        if name.startswith("__mysql_backup_"):
            context[name] = native.from_string(str(role_vars[name])).render(context)
    return env.from_string(source).render(context)


def test_the_file_the_role_writes_for_the_sandbox_passes(tmp_path: Path) -> None:
    context = sandbox_settings("mysql_backup", SANDBOX_BACKUP_HOST)
    path = tmp_path / "mysql-backup.json"
    path.write_text(role_settings_file(context))
    loaded = load_config(str(path))
    assert (loaded.cluster, loaded.server, loaded.bucket) == (
        "hello", "hostkit-db-4", "hostkit-sandbox-backups")
    assert loaded.global_config_bucket == "hostkit-sandbox-config"
    assert loaded.work_dir == "/var/lib/hostkit/mysql-backup/work"
    assert loaded.endpoint_url == "http://aws:5000" and loaded.master_port == 3306
    # Production's shape: AWS's own endpoints, the inventory owning the source file.
    context.update(mysql_backup_s3_endpoint_url="", mysql_backup_global_config_endpoint_url="",
                   mysql_backup_source_owner="inventory",
                   mysql_backup_mariabackup_extra_args=["--parallel=2"])
    production = parse_config(json.loads(role_settings_file(context)))
    assert production.global_config_bucket == "" and production.endpoint_url == ""


def test_a_legacy_configuration_with_product_is_read_as_the_cluster(
        s3: Any, config: Config, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A file the previous version of the role wrote names `product`: it is the cluster of
    that name (the same S3 prefix), without an error."""
    raw = json.loads(Path(config_file(config)).read_text())
    raw["product"] = raw.pop("cluster")
    Path(config_file(config)).write_text(json.dumps(raw))
    loaded = load_config(config_file(config))
    assert loaded.cluster == "hello" and loaded == config
    assert program.main(["--config", config_file(config), "backup"], client=s3) == 0
    manifest = json.loads(capsys.readouterr().out)["manifest"]
    assert manifest["cluster"] == "hello" and manifest["data_key"].startswith("hello/snapshots/")
    # Both fields: the same name is fine, two names are refused, naming both.
    raw["cluster"] = "hello"
    Path(config_file(config)).write_text(json.dumps(raw))
    assert load_config(config_file(config)).cluster == "hello"
    raw["cluster"] = "main"
    Path(config_file(config)).write_text(json.dumps(raw))
    with pytest.raises(mb.BackupError, match="cluster 'main' and the older field product "
                                             "'hello' differ"):
        load_config(config_file(config))


def test_latest_does_not_move_back(s3: Any, config: Config) -> None:
    store = S3Store(BUCKET, client=s3)
    t1 = datetime(2026, 11, 28, 9, 0, tzinfo=mb.UTC)
    newer = run_backup(config, store, clock=lambda: t1 + timedelta(hours=1))
    older = run_backup(config, store, clock=lambda: t1)
    assert newer.latest_updated and not older.latest_updated
    assert json.loads(body(s3, "hello/latest.json"))["data_key"] == newer.manifest["data_key"]


# ----------------------------------------------------------------------------- retention

def test_retention_deletes_every_version_of_expired_snapshots(s3: Any, config: Config
                                                              ) -> None:
    store = S3Store(BUCKET, client=s3)
    base = datetime(2026, 11, 20, 12, 0, tzinfo=mb.UTC)
    moments = [base + timedelta(days=d, minutes=15 * i) for d in range(4) for i in range(3)]
    results = [run_backup(config, store, clock=lambda m=m: m) for m in moments]
    # keep_recent 3 (the last day's three) + keep_daily 2 (the newest of the last two days).
    expected = sorted(r.manifest["data_key"] for r in results[8:])
    listing = keys(s3, "hello/snapshots/")
    assert sorted(k for k in listing if k.endswith(".xbstream.zst")) == expected
    assert sorted(k for k in listing if k.endswith(".json")) == sorted(
        r.manifest["manifest_key"] for r in results[8:])
    assert results[-1].retention["kept"] == 4
    for result in results[:8]:
        for key in (result.manifest["data_key"], result.manifest["manifest_key"]):
            versions = s3.list_object_versions(Bucket=BUCKET, Prefix=key)
            assert not versions.get("Versions") and not versions.get("DeleteMarkers"), key


def test_retention_sweeps_orphans_and_old_binlogs(s3: Any, config: Config) -> None:
    store = S3Store(BUCKET, client=s3)
    now = datetime.now(mb.UTC)
    orphan = mb.snapshot_keys("hello", "db-4", now - timedelta(hours=10)).data
    s3.put_object(Bucket=BUCKET, Key=orphan, Body=b"half")  # LastModified is "now" in moto
    prefix = "hello/binlogs/m-sid11/"
    s3.put_object(Bucket=BUCKET, Key=prefix + "b.000001", Body=b"x",
                  Metadata={"gtid-start": "", "gtid-end": "0-11-10", "first-ts": "1",
                            "last-ts": "2"})
    s3.put_object(Bucket=BUCKET, Key=prefix + "b.000002", Body=b"y",
                  Metadata={"gtid-start": "0-11-10", "gtid-end": "0-11-60", "first-ts": "3",
                            "last-ts": str(int(now.timestamp()) + 99)})
    result = run_backup(config, store)  # fake GTID 0-11-42
    assert result.retention["binlogs_deleted"] == ["m-sid11/b.000001"]
    assert keys(s3, prefix) == [prefix + "b.000002"]
    # The orphan is younger than the grace period by S3's clock: kept for now.
    assert orphan in keys(s3)
    swept = apply_retention(config, store, now + timedelta(hours=7))
    assert swept["orphans"] == [orphan] and orphan not in keys(s3)


# ----------------------------------------------------------------------------- shipping

def write_series(cfg: Config, series: str, files: dict[str, bytes],
                 current: bool = True) -> Path:
    directory = Path(cfg.binlog_dir, series)
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (directory / name).write_bytes(data)
    if current:
        write_json_atomic(current_series_path(cfg), {"series": series})
    return directory


def test_shipper_segments_then_whole_file_then_clean_up(s3: Any, config: Config) -> None:
    store = S3Store(BUCKET, client=s3)
    shipper = Shipper(config, store)
    first = binlog([(100, 0, 11, 1), (101, 0, 11, 2)], {}, created=99,
                   rotate_to="mariadb-bin.000002")
    second = binlog([(102, 0, 11, 3), (103, 0, 11, 4), (104, 0, 11, 5)], {0: (11, 2)},
                    created=102)
    directory = write_series(config, "m-sid11", {"mariadb-bin.000001": first,
                                                 "mariadb-bin.000002": second[:150]})
    assert shipper.ship_once() == ["final:m-sid11/mariadb-bin.000001",
                                   "segment:m-sid11/mariadb-bin.000002"]
    prefix = "hello/binlogs/m-sid11/"
    assert body(s3, prefix + "mariadb-bin.000001") == first
    meta = s3.head_object(Bucket=BUCKET, Key=prefix + "mariadb-bin.000001")["Metadata"]
    assert meta["gtid-start"] == "" and meta["gtid-end"] == "0-11-2"
    assert meta["sha256"] == hashlib.sha256(first).hexdigest()
    segs = keys(s3, prefix + "mariadb-bin.000002.seg-")
    assert len(segs) == 1
    shipped = body(s3, segs[0])
    assert second.startswith(shipped) and len(shipped) <= 150  # whole events only
    # Nothing new: nothing shipped.
    assert shipper.ship_once() == []
    # The file grows: only the new bytes go, as the next segment.
    (directory / "mariadb-bin.000002").write_bytes(second)
    assert shipper.ship_once() == ["segment:m-sid11/mariadb-bin.000002"]
    segs = keys(s3, prefix + "mariadb-bin.000002.seg-")
    assert b"".join(body(s3, k) for k in segs) == second
    objects = list_binlog_objects(store, "hello")
    growing = [o for o in objects if o.name == "mariadb-bin.000002"][0]
    assert not growing.final and growing.size == len(second)
    assert growing.gtid_start == {0: (11, 2)} and growing.gtid_end == {0: (11, 5)}
    # The file is closed (a newer one appears): shipped whole, its segments go.
    closed = binlog([(102, 0, 11, 3), (103, 0, 11, 4), (104, 0, 11, 5)], {0: (11, 2)},
                    created=102, rotate_to="mariadb-bin.000003")
    assert closed.startswith(second)
    (directory / "mariadb-bin.000002").write_bytes(closed)
    (directory / "mariadb-bin.000003").write_bytes(binlog([], {0: (11, 5)}, created=105))
    done = shipper.ship_once()
    assert "final:m-sid11/mariadb-bin.000002" in done
    assert keys(s3, prefix + "mariadb-bin.000002.seg-") == []
    assert body(s3, prefix + "mariadb-bin.000002") == closed
    # Local copies shipped whole go, except the newest two (the stream resumes there).
    assert sorted(p.name for p in directory.iterdir()) == ["mariadb-bin.000002",
                                                           "mariadb-bin.000003"]
    saved = json.loads(Path(config.state_dir, "binlog-state.json").read_text())
    assert saved["shipped"]["m-sid11"]["mariadb-bin.000001"]["final"] is True


def test_shipper_compacts_many_segments(s3: Any, config: Config) -> None:
    store = S3Store(BUCKET, client=s3)
    shipper = Shipper(config, store)
    data = binlog([(100 + i, 0, 11, i + 1) for i in range(6)], {}, created=99)
    directory = write_series(config, "m-sid11", {"b.000001": b""})
    for cut in (120, 250, 400):  # compact_segments is 3
        (directory / "b.000001").write_bytes(data[:cut])
        shipper.ship_once()
    segs = keys(s3, "hello/binlogs/m-sid11/b.000001.seg-")
    assert segs == ["hello/binlogs/m-sid11/b.000001.seg-000000000000"]
    assert data.startswith(body(s3, segs[0])) and len(body(s3, segs[0])) > 250


def test_shipper_ships_an_old_series_whole(s3: Any, config: Config) -> None:
    store = S3Store(BUCKET, client=s3)
    old = binlog([(100, 0, 11, 1)], {}, created=99)  # cut short: the master changed
    write_series(config, "old-sid11", {"b.000004": old}, current=False)
    write_series(config, "new-sid12", {"c.000001": binlog([], {0: (11, 1)}, created=120)})
    done = Shipper(config, store).ship_once()
    assert "final:old-sid11/b.000004" in done and "segment:new-sid12/c.000001" in done


def test_shipper_failure_is_recorded_and_the_loop_goes_on(
        s3: Any, config: Config, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    store = S3Store(BUCKET, client=s3)
    shipper = Shipper(config, store)
    write_series(config, "m-sid11", {"b.000001": binlog([(100, 0, 11, 1)], {}, created=99)})

    def down(*_a: Any, **_k: Any) -> Any:
        raise ConnectionError("endpoint unreachable")

    monkeypatch.setattr(store, "upload_file_range", down)
    passes = iter([False, True])
    shipper.run_forever(0, lambda: next(passes))
    saved = json.loads(Path(config.state_dir, "binlog-state.json").read_text())
    assert "endpoint unreachable" in saved["last_error"]["message"]
    assert "ship-binlogs pass failed: endpoint unreachable" in capsys.readouterr().err


# ----------------------------------------------------------------------------- restore

def test_snapshots_of_the_previous_version_are_still_restored(
        s3: Any, config: Config) -> None:
    """A manifest written before backups were per cluster says `product`: the snapshot
    still counts (list, retention, the restore plan)."""
    store = S3Store(BUCKET, client=s3)
    snap = run_backup(config, store).manifest
    legacy = {("product" if k == "cluster" else k): v for k, v in snap.items()}
    store.put_json(snap["manifest_key"], legacy)
    manifests, _ = list_manifests(store, "hello")
    assert [m["data_key"] for m in manifests] == [snap["data_key"]]
    assert manifests[0]["cluster"] == "hello"
    assert build_plan(config, store, None)["snapshot"]["data_key"] == snap["data_key"]


def test_plan_fetch_and_replay(s3: Any, config: Config, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    store = S3Store(BUCKET, client=s3)
    monkeypatch.setenv("FAKE_GTID", "0-11-1")
    snap = run_backup(config, store).manifest
    shipper = Shipper(config, store)
    first = binlog([(100, 0, 11, 1), (101, 0, 11, 2)], {}, created=99, rotate_to="b.000002")
    second = binlog([(102, 0, 11, 3), (103, 0, 11, 4)], {0: (11, 2)}, created=102)
    write_series(config, "m-sid11", {"b.000001": first, "b.000002": second})
    shipper.ship_once()
    plan = build_plan(config, store, None)
    assert plan["cluster"] == "hello" and "product" not in plan
    assert plan["snapshot"]["data_key"] == snap["data_key"]
    assert [f["name"] for s in plan["steps"] for f in s["files"]] == ["b.000001", "b.000002"]
    assert plan["steps"][0]["start_gtid"] == "0-11-1" and plan["reaches_gtid"] == "0-11-4"

    fetched = fetch_snapshot(config, store, plan, str(tmp_path / "restore"))
    assert fetched["sha256"] == snap["sha256"]
    assert (tmp_path / "restore" / "stream.bin").stat().st_size == snap["size"]
    with pytest.raises(mb.BackupError, match="is not empty"):
        fetch_snapshot(config, store, plan, str(tmp_path / "restore"))

    result = replay(config, store, plan, str(tmp_path / "replay"))
    assert result["gtid"] == "0-11-99"
    calls = Path(os.environ["FAKE_LOG"]).read_text().splitlines()
    assert calls[:3] == ["SQL SELECT @@log_bin", "SQL RESET MASTER",
                         "SQL SET GLOBAL gtid_binlog_state = '0-11-1'"]
    assert "BINLOG --start-position=0-11-1 00-b.000001 00-b.000002" in calls
    piped = [c for c in calls if c.startswith("PIPED")]
    assert piped == [f"PIPED {len(first) + len(second)} UTC --binary-mode"]
    assert calls[-1] == "SQL SET GLOBAL gtid_slave_pos = '0-11-99'"


def test_corrupted_snapshot_download_is_refused(s3: Any, config: Config,
                                                tmp_path: Path) -> None:
    store = S3Store(BUCKET, client=s3)
    run_backup(config, store)
    plan = build_plan(config, store, None)
    s3.put_object(Bucket=BUCKET, Key=plan["snapshot"]["data_key"],
                  Body=b"x" * plan["snapshot"]["size"])
    with pytest.raises(mb.BackupError, match="SHA-256 .* does not match the recorded"):
        fetch_snapshot(config, store, plan, str(tmp_path / "restore"))


def test_plan_by_time_and_snapshot_choice(s3: Any, config: Config) -> None:
    store = S3Store(BUCKET, client=s3)
    t1 = datetime(2026, 11, 28, 9, 0, tzinfo=mb.UTC)
    a = run_backup(config, store, clock=lambda: t1).manifest
    b = run_backup(config, store, clock=lambda: t1 + timedelta(minutes=15)).manifest
    assert build_plan(config, store, t1 + timedelta(minutes=5))["snapshot"]["data_key"] \
        == a["data_key"]
    assert build_plan(config, store, None)["snapshot"]["data_key"] == b["data_key"]
    assert build_plan(config, store, None, a["manifest_key"])["snapshot"]["data_key"] \
        == a["data_key"]
    with pytest.raises(mb.BackupError, match="no snapshot finished at or before"):
        build_plan(config, store, t1 - timedelta(minutes=1))


# ----------------------------------------------------------------------------- streaming

def test_stream_resumes_and_follows_a_new_master(s3: Any, config: Config) -> None:
    Path(config.source_file).write_text(json.dumps({"host": "db-1", "port": 3306}))
    assert read_source(config.source_file) == ("db-1", 3306, "db-1")
    # a restarted stream: current.json names the series it was streaming
    write_series(config, "db-1-sid11", {"b.000007": b"", "b.000008": b""})

    def facts(_cfg: Config, host: str, port: int) -> tuple[int, list[str]]:
        assert (host, port) == ("db-1", 3306)
        return 11, ["b.000007", "b.000008", "b.000009"]

    series, directory, start, command = prepare_stream(config, S3Store(BUCKET, client=s3),
                                                       "db-1", 3306, facts)
    assert (series, start) == ("db-1-sid11", "b.000008")
    assert command[-1] == "b.000008" and f"--result-file={directory}/" in command
    assert "--stop-never" in command and "--raw" in command
    assert json.loads(current_series_path(config).read_text())["series"] == "db-1-sid11"

    # The supervisor: a change of the source file stops the child and returns 0.
    def repoint() -> None:
        time.sleep(0.5)
        write_json_atomic(config.source_file, {"host": "10.0.0.2", "port": 3306,
                                               "name": "db-2"})

    import threading
    threading.Thread(target=repoint).start()
    began = time.monotonic()
    assert run_stream(config, None, poll=0.1, facts=facts) == 0
    assert time.monotonic() - began < 30  # the fake stream would run 60 s
    assert read_source(config.source_file) == ("10.0.0.2", 3306, "db-2")


def test_environment_file_fills_what_the_environment_lacks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = tmp_path / "backup.env"
    env.write_text("# comment\nHKBAK_A=from-file\nHKBAK_B='quoted value'\n\nHKBAK_C=x=y\n")
    monkeypatch.setenv("HKBAK_A", "from-environment")
    monkeypatch.delenv("HKBAK_B", raising=False)
    monkeypatch.delenv("HKBAK_C", raising=False)
    load_env_file(str(env))
    assert os.environ["HKBAK_A"] == "from-environment"
    assert os.environ["HKBAK_B"] == "quoted value" and os.environ["HKBAK_C"] == "x=y"
    load_env_file(str(tmp_path / "missing.env"))  # no file, no error


def test_source_file_is_checked() -> None:
    with pytest.raises(mb.BackupError, match="binlog source file /nonexistent is missing"):
        read_source("/nonexistent")


def test_bad_source_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"host": "db-1", "port": 0}))
    with pytest.raises(mb.BackupError, match="port 0 is not 1-65535"):
        read_source(str(path))


def test_check_config_passes_a_valid_file_and_names_every_bad_field(
        config: Config, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = config_file(config)
    assert program.main(["--config", path, "check-config"]) == 0
    assert "valid settings for cluster" in capsys.readouterr().out
    cfg = json.loads(Path(path).read_text())
    cfg["keep_recent"] = -1
    del cfg["bucket"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(cfg))
    assert program.main(["--config", str(bad), "check-config"]) == 1
    err = capsys.readouterr().err
    assert "check-config failed" in err and "bucket" in err and "keep_recent" in err
