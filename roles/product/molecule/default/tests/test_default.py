"""The product role on the web stack: the demo product `hello` is served from its current
release, with shared directories, runtime settings, secrets and cron jobs in place."""

from __future__ import annotations

import json
import re

BASE = "/srv/www/hello"
HOST_HEADER = "hello.sandbox.test"


def get(host, path: str, domain: str = HOST_HEADER) -> tuple[int, str]:
    out = host.run(
        "curl -s -o /dev/stdout -w '\\n%%{http_code}' -H 'Host: %s' http://127.0.0.1%s",
        domain, path,
    )
    assert out.rc == 0, out.stderr
    body, _, code = out.stdout.rpartition("\n")
    return int(code), body


def current_release(host) -> str:
    link = host.file(f"{BASE}/current")
    assert link.is_symlink
    target = link.linked_to
    assert re.fullmatch(rf"{BASE}/releases/[0-9a-f]{{12}}", target), target
    return target.rsplit("/", 1)[1]


def test_page_through_apache_writes_and_reads_a_row(host):
    code, body = get(host, "/")
    assert code == 200, body
    hostname = host.check_output("hostname")
    assert f'<span id="served-by">{hostname}</span>' in body
    assert '<span id="db-master">127.0.0.1</span>' in body
    row = re.search(r'<span id="row">(\d+) ([^<]+)</span>', body)
    assert row and row.group(2) == hostname, body
    # The alias reaches the product too; each request writes the next row.
    code, again = get(host, "/", "www.hello.sandbox.test")
    assert code == 200, again
    assert int(re.search(r'<span id="row">(\d+)', again).group(1)) > int(row.group(1))


def test_healthz_answers_200(host):
    code, body = get(host, "/healthz")
    assert code == 200 and body.startswith("ok "), body


def test_current_is_a_symlink_to_a_complete_release(host):
    release = current_release(host)
    root = host.file(f"{BASE}/releases/{release}")
    assert root.is_directory and root.user == "root" and root.group == "hello"
    assert root.mode == 0o755
    index = host.file(f"{BASE}/releases/{release}/public/index.php")
    assert index.user == "root" and index.mode == 0o644
    # No half-written release is left behind, and the history ends with the current one.
    assert not host.file(f"{BASE}/releases/{release}.tmp").exists
    history = host.file(f"{BASE}/shared/releases.log").content_string.split()
    assert history[-1] == release
    # The app user cannot change its code.
    assert host.run("runuser -u hello -- touch %s/releases/%s/public/x", BASE, release).rc != 0


def test_shared_dirs_are_linked_into_the_release_and_owned_by_the_product(host):
    release = current_release(host)
    for name in ("uploads", "logs"):
        shared = host.file(f"{BASE}/shared/{name}")
        assert shared.is_directory and shared.user == "hello" and shared.group == "hello"
        link = host.file(f"{BASE}/releases/{release}/{name}")
        assert link.is_symlink
        assert host.check_output("readlink %s", link.path) == f"../../shared/{name}"
    # The product user writes through the release's link into shared/.
    marker = f"{BASE}/current/uploads/verify-marker"
    assert host.run("runuser -u hello -- sh -c 'echo kept > %s'", marker).rc == 0
    assert host.file(f"{BASE}/shared/uploads/verify-marker").content_string.strip() == "kept"


def test_cron_file_has_the_schedule_and_user(host):
    cron = host.file("/etc/cron.d/hello")
    assert cron.is_file and cron.user == "root" and cron.group == "root" and cron.mode == 0o644
    lines = [x for x in cron.content_string.splitlines() if x and not x.startswith("#")]
    assert 'MAILTO=""' in lines
    job = [x for x in lines if "bin/cleanup.php" in x]
    assert job == [
        f"*/15 * * * * hello cd {BASE}/current && HOSTKIT_CONFIG_DIR={BASE}/shared/config "
        "php bin/cleanup.php"
    ]
    # The job works as cron would run it.
    run = host.run("runuser -u hello -- sh -c %s", job[0].split(" hello ", 1)[1])
    assert run.rc == 0 and "cleanup done" in run.stdout, run.stdout + run.stderr


def test_runtime_settings_and_secrets(host):
    config = host.file(f"{BASE}/shared/config")
    assert config.user == "root" and config.group == "hello" and config.mode == 0o750
    runtime = host.file(f"{BASE}/shared/config/runtime.json")
    assert runtime.user == "root" and runtime.group == "hello" and runtime.mode == 0o644
    data = json.loads(runtime.content_string)
    assert data["db"] == {"host": "127.0.0.1", "port": 3306, "name": "hello", "user": "hello"}
    assert data["memcached"] == ["127.0.0.1:11211"]
    assert data["source"] == "inventory"
    secrets = host.file(f"{BASE}/shared/config/secrets.json")
    assert secrets.user == "root" and secrets.group == "hello" and secrets.mode == 0o640
    assert len(json.loads(secrets.content_string)["db_password"]) == 32
    # Readable by the product user, not by the web server's user.
    assert host.run("runuser -u hello -- cat %s", secrets.path).rc == 0
    assert host.run("runuser -u www-data -- cat %s", secrets.path).rc != 0
