"""The config agent on a real web container (hostkit/web, systemd, network `hostkit`) against
the sandbox's S3 endpoint, with a document of its own (tests/platform/agent_site.py):

0. playbooks/web.yml (common, apache, php, product hello, config_agent) converges; the
   product role's first runtime.json and the agent's agree (no reload); a second run
   changes nothing;
1. a new master written with a conditional write reaches runtime.json within 5 s, and
   PHP-FPM is reloaded (journal), not restarted (same master PID);
2. a malformed document leaves runtime.json as it was and state.json shows the error; a
   good one afterwards is followed again;
3. cut off from S3 (`docker network disconnect`, only this container) nothing breaks -
   PHP-FPM and the agent keep running, even an agent started without network - and when
   the network returns the change made meanwhile arrives.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from host_programs.config_agent.runtime_settings import dumps, render
from scripts.ci_checks import play_recap
from tests.platform.agent_site import (
    DB,
    MEMCACHED,
    PHP_FPM,
    PRODUCT,
    RUNTIME,
    Site,
    agent_site,
    disconnect,
    reconnect,
    swap_master,
)

pytestmark = pytest.mark.platform
AGENT = "hostkit-config-agent.service"
RELOADER = "hostkit-config-agent-reload.service"
HELLO = {"name": PRODUCT, "database": {"name": "hello", "user": "hello"}, "memcached": True}


def output(proc) -> str:
    return (proc.stdout + proc.stderr)[-6000:]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with agent_site(1, tmp_path_factory.mktemp("config-agent")) as site:
        proc = site.converge("converge")
        assert proc.returncode == 0, output(proc)
        yield site
        print(f"\nconfig agent platform test, ansible-playbook seconds: {site.timings}")


@pytest.fixture(scope="module")
def web(site: Site) -> str:
    name = site.containers[0]
    site.wait_for(name, "the agent's first good poll",
                  lambda: site.state(name)["status"] == "ok", timeout=30)
    return name


def expected(doc: dict) -> str:
    return dumps(render(doc, HELLO)).decode()


def test_converge_writes_the_settings_from_the_document(site: Site, web: str) -> None:
    doc, _ = site.store.read()
    assert site.runtime_bytes(web) == expected(doc)
    assert site.runtime(web) == {
        "db": {"host": DB["hkagent-db-1"], "port": 3306, "name": "hello", "user": "hello"},
        "memcached": [f"{a}:11211" for a in MEMCACHED.values()], "source": "global_config"}
    owner = site.exec(web, "stat", "-c", "%U:%G %a", RUNTIME, f"{RUNTIME.rsplit('/', 1)[0]}",
                      "/var/lib/hostkit-config-agent/state.json",
                      "/etc/hostkit-config-agent/aws.env").stdout.split("\n")
    assert owner[:4] == ["hostkit-config-agent:hello 640", "hostkit-config-agent:hello 2750",
                         "hostkit-config-agent:hostkit-config-agent 644", "root:root 600"]
    state = site.state(web)
    assert state["epoch"] == doc["epoch"] and state["last_error"] is None
    # The product role's copy had the agent's bytes: the agent fixed only owner and mode.
    assert state["reload_requests"] == 0
    # The agent's user cannot read the product's secrets.
    denied = site.exec(web, "runuser", "-u", "hostkit-config-agent", "--", "cat",
                       f"/srv/www/{PRODUCT}/shared/config/secrets.json", check=False)
    assert denied.returncode != 0 and "Permission denied" in denied.stderr


def test_second_run_changes_nothing(site: Site, web: str) -> None:
    proc = site.converge("idempotence")
    assert proc.returncode == 0, output(proc)
    recap = play_recap(proc.stdout)
    assert web in recap, output(proc)
    assert {h: c["changed"] for h, c in recap.items() if c["changed"]} == {}, output(proc)


def test_a_new_master_arrives_within_5s_with_a_graceful_reload(site: Site, web: str) -> None:
    pid = site.php_master_pid(web)
    before = site.state(web)["reload_requests"]
    watcher = site.watch(web)
    try:
        assert watcher.stdout is not None
        first = watcher.stdout.readline().split()
        written = time.time()
        result = site.store.update(swap_master, "test_config_agent")
        seen = watcher.stdout.readline().split()  # the next change of the file
    finally:
        watcher.kill()
    assert seen[1] != first[1]
    # The bound for a change to reach the host (the agent polls every 2 s).
    elapsed = float(seen[0]) - written
    assert elapsed < 5, f"runtime.json changed {elapsed:.2f}s after the write"
    assert site.runtime_bytes(web) == expected(result.doc)
    assert site.runtime(web)["db"]["host"] == DB["hkagent-db-2"]
    state = site.wait_for(web, "the reload request",
                          lambda: (s := site.state(web))["reload_requests"] == before + 1 and s,
                          timeout=10)
    assert state["epoch"] == result.epoch
    journal = site.wait_for(web, "PHP-FPM's reload in the journal",
                            lambda: "Reloaded" in (j := site.journal(web, PHP_FPM, written - 1))
                            and j, timeout=10)
    assert "Stopped" not in journal and "Started" not in journal, journal
    assert site.php_master_pid(web) == pid, "PHP-FPM was restarted, not reloaded"
    reloader = site.journal(web, RELOADER, written - 1)
    assert "Finished" in reloader or "Deactivated successfully" in reloader, reloader


def test_a_malformed_document_changes_nothing_and_shows_in_the_state(
        site: Site, web: str) -> None:
    good = site.runtime_bytes(web)
    before = site.state(web)
    last, _ = site.store.read()
    site.write_raw(b'{"epoch": 99, "servers": ')
    state = site.wait_for(web, "the error in state.json",
                          lambda: (s := site.state(web))["status"] == "error" and s, timeout=15)
    assert "is invalid: not JSON" in state["last_error"]
    assert state["epoch"] == before["epoch"]
    time.sleep(3)
    assert site.runtime_bytes(web) == good
    assert site.state(web)["reload_requests"] == before["reload_requests"]
    journal = site.exec(web, "journalctl", "--no-pager", "-u", AGENT, "-g", "is invalid").stdout
    assert journal.count("is invalid: not JSON") == 1, journal  # one line, not one per retry
    # A good document (a newer epoch) is followed again.
    doc, _ = swap_master(last)
    doc["epoch"] = last["epoch"] + 1
    site.write_raw(json.dumps(doc).encode())
    site.wait_for(web, "recovery", lambda: site.state(web)["status"] == "ok", timeout=45)
    assert site.runtime_bytes(web) == expected(doc)


def test_cut_off_from_s3_nothing_breaks_and_it_recovers(site: Site, web: str) -> None:
    good = site.runtime_bytes(web)
    pid = site.php_master_pid(web)
    disconnect(web)
    try:
        result = site.store.update(swap_master, "test_config_agent")
        # Without a network, resolving the endpoint's name alone takes docker's resolver
        # about 10 s to give up.
        state = site.wait_for(web, "the outage in state.json",
                              lambda: (s := site.state(web))["status"] == "error" and s,
                              timeout=45)
        assert "cannot read" in state["last_error"]
        # An agent that starts without network starts, and keeps the settings.
        site.exec(web, "systemctl", "restart", AGENT)
        site.wait_for(web, "the restarted agent's failed poll",
                      lambda: (s := site.state(web))["status"] == "error"
                      and s["pid"] != state["pid"], timeout=45)
        for unit in (AGENT, PHP_FPM):
            assert site.exec(web, "systemctl", "is-active", unit).stdout.strip() == "active"
        assert site.runtime_bytes(web) == good
        assert site.php_master_pid(web) == pid
    finally:
        reconnect(web)
    # The change made during the outage arrives once S3 answers again (at most one
    # backoff interval, capped at 30 s, later).
    site.wait_for(web, "the change made during the outage",
                  lambda: site.runtime_bytes(web) == expected(result.doc), timeout=60)
    state = site.wait_for(web, "a good poll", lambda: (s := site.state(web))["status"] == "ok"
                          and s, timeout=10)
    assert state["epoch"] == result.epoch and state["consecutive_failures"] == 0
    assert site.php_master_pid(web) == pid
