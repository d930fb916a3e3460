"""Automated failover under faults, on real containers, with writes through the web tier.

For each fault a writer sends numbered writes through the web tier (the demo product's
/write?n=N, which answers only after the commit) and records which were acknowledged, and
a sampler on the monitor host reads @@read_only of every db server every 50 ms. Faults on
the master: kill -9 of mariadbd; the container stopped; mariadbd frozen (SIGSTOP); the
container cut off the network; the candidate lagging (SQL thread stopped, so the backup is
more advanced) then kill -9; the watcher killed in the middle of the failover; the old
master coming back after a failover. For each: no acknowledged write lost, never two
writable servers, exactly one failover, and the figures (detection, fault to the first
write acknowledged by the new master, refused-write window) are printed and written to
.state/failover/fault_matrix.json. The planned switchover (playbooks/failover.yml) is
measured the same way. After each fault the old master is re-seeded as a replica and the
initial positions are restored with planned switchovers, so the next fault starts clean.

Site: the sandbox (`make up`: playbooks/sandbox_up.yml is run first, idempotent), or with
HOSTKIT_FAILOVER_SITE=own an own cluster of hkfo-* containers (removed at the end);
HOSTKIT_FAILOVER_REUSE=<file> reuses one described by Site.save (left up).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.platform import failover_site as fs

pytestmark = [pytest.mark.platform, pytest.mark.sandbox]
RESULTS: dict[str, dict[str, Any]] = {}
REPORT = fs.ROOT / ".state" / "failover" / "fault_matrix.json"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory,
         request: pytest.FixtureRequest) -> Iterator[fs.Site]:
    reuse = os.environ.get("HOSTKIT_FAILOVER_REUSE")
    if reuse:
        # an own cluster left up by an earlier run (its description, as own_site made it)
        yield fs.Site.load(Path(reuse))
    else:
        with fs.module_site(tmp_path_factory.mktemp,
                            lambda: request.getfixturevalue("sandbox_up"), "failover") as site_:
            yield site_
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(RESULTS, indent=2, sort_keys=True) + "\n")
    print("\n" + table(RESULTS))


def table(results: dict[str, dict[str, Any]]) -> str:
    columns = ["acknowledged_lost", "two_writable_samples", "failovers", "detection_s",
               "fault_to_published_s", "fault_to_first_write_s", "refused_window_s",
               "writes_acknowledged"]
    lines = ["fault".ljust(22) + " ".join(c[:22].rjust(22) for c in columns)]
    for fault, figures in results.items():
        lines.append(fault.ljust(22) + " ".join(str(figures.get(c)).rjust(22) for c in columns))
    return "\n".join(lines)


def record(name: str, outcome: fs.Outcome, **extra: Any) -> dict[str, Any]:
    figures = {**outcome.figures, **extra}
    RESULTS[name] = figures
    print(f"\n{name}: {json.dumps(figures, sort_keys=True)}")
    return figures


def assert_clean_failover(outcome: fs.Outcome) -> None:
    """The properties every unplanned failover must have."""
    assert outcome.lost == [], f"acknowledged writes lost: {outcome.lost[:20]}"
    assert outcome.two_writable == [], f"two writable servers: {outcome.two_writable[:5]}"
    assert outcome.new_master and outcome.new_master != outcome.old_master
    assert outcome.journals_after == 1, f"{outcome.journals_after} failovers fired"
    assert outcome.journal is not None and outcome.journal["status"] == "done", outcome.journal
    assert outcome.log.count("event=failover_start") == 1, outcome.log[-3000:]
    assert "event=failover_refused_anti_flap" not in outcome.log
    assert outcome.figures["fault_to_first_write_s"] is not None
    # the old master is out of the topology and marked fenced
    doc_servers = outcome.journal["new"]
    assert outcome.old_master not in doc_servers.values()


def isolated(site: fs.Site, server: str) -> bool:
    return not site.running(server) or "hostkit" not in site.networks(server)


@pytest.mark.parametrize("fault", ["kill9", "stop", "freeze", "netcut"])
def test_master_fault(site: fs.Site, fault: str) -> None:
    fs.restore(site)
    outcome = fs.run_fault(site, fault)
    record(fault, outcome)
    assert_clean_failover(outcome)
    assert isolated(site, outcome.old_master)
    assert site.doc()["servers"][outcome.old_master]["state"] == "fenced"
    if fault == "kill9":
        # the kill -9 trap: the crashed master never came back by itself (the mysql role's
        # Restart=no and masked socket); the watcher's verdict came from its replicas
        assert "restarted" not in " ".join(outcome.journal["reasons"])
    if fault == "freeze":
        assert "nothing received" in " ".join(outcome.journal["reasons"]) or \
            "IO thread" in " ".join(outcome.journal["reasons"])


def test_lagging_candidate_still_promoted_with_nothing_lost(site: fs.Site) -> None:
    fs.restore(site)
    seen: dict[str, str] = {}

    def lag(site_: fs.Site, positions: dict[str, str]) -> None:
        candidate, backup = positions["candidate"], positions["backup"]
        site_.sql(candidate, "STOP SLAVE SQL_THREAD")
        # writes go on: the candidate receives (and acknowledges) them but does not apply
        fs.wait_for(lambda: _seq(site_, backup) >= _seq(site_, candidate) + 10, 60,
                    "the backup 10 transactions ahead of the candidate")
        seen["candidate"], seen["backup"] = str(_seq(site_, candidate)), str(_seq(site_, backup))

    outcome = fs.run_fault(site, "kill9", prepare=lag)
    record("lagging_candidate", outcome, candidate_seq_at_fault=seen["candidate"],
           backup_seq_at_fault=seen["backup"])
    assert_clean_failover(outcome)
    assert outcome.new_master == site.canonical["candidate"]
    apply = next(s for s in outcome.journal["steps"] if s["name"] == "apply_relay_log")
    assert apply["status"] == "done" and "relay log applied" in apply["detail"]


def _seq(site: fs.Site, server: str) -> int:
    pos = site.sql(server, "SELECT @@gtid_current_pos")
    return max((int(p.split("-")[2]) for p in pos.split(",") if p), default=0)


def test_watcher_killed_in_the_middle_of_the_failover(site: fs.Site) -> None:
    fs.restore(site)
    killer: dict[str, Any] = {}

    def arm(site_: fs.Site, positions: dict[str, str]) -> None:
        killer["proc"] = fs.kill_watcher_when_journal_appears(site_)
        time.sleep(0.5)

    outcome = fs.run_fault(site, "kill9", prepare=arm)
    out, err = killer["proc"].communicate(timeout=60)
    record("watcher_restarted", outcome)
    assert killer["proc"].returncode == 0, err
    assert_clean_failover(outcome)
    assert "event=journal_resume" in outcome.log, outcome.log[-3000:]
    killed_at = float(out.strip().splitlines()[-1])
    assert fs.stamp_seconds(outcome.journal["finished_at"]) > killed_at


def test_old_master_that_returns_stays_read_only_and_fenced(site: fs.Site) -> None:
    fs.restore(site)
    back: dict[str, Any] = {}

    def come_back(site_: fs.Site, master: str) -> Any:
        def later() -> None:
            # after the failover, an operator (or a confused script) starts the old master
            # again and puts it back on the network
            fs.sh("docker", "start", master)
            fs.sh("docker", "network", "connect", "--ip", site_.address(master), "hostkit",
                  master, check=False)
            back["at"] = fs.now()
            fs.wait_for(lambda: "hostkit" not in site_.networks(master), 90,
                        "the watcher to cut the returned old master off again", 0.2)
            back["isolated_again_after_s"] = round(fs.now() - back["at"], 2)
            time.sleep(2)
        return later

    outcome = fs.run_fault(site, "netcut", during=come_back)
    record("old_master_returns", outcome,
           isolated_again_after_s=back.get("isolated_again_after_s"))
    assert_clean_failover(outcome)
    old = outcome.old_master
    writable_old = [r for r in outcome.writes if r.ok and r.server == old and r.sent > back["at"]]
    assert writable_old == [], "the returned old master took writes"
    assert "event=fenced_server_returned" in outcome.log, outcome.log[-3000:]
    assert site.positions()["master"] == outcome.new_master
    assert site.doc()["servers"][old]["state"] == "fenced"


def test_planned_switchover_loses_nothing(site: fs.Site) -> None:
    fs.restore(site)
    positions = site.positions()
    old, new = str(positions["master"]), str(positions["candidate"])
    site.wait_watcher_on(old)
    sampler = fs.Sampler(site, {s: site.address(s) for s in positions.values() if s})
    writer = fs.Writer(site, fs.first_write_number(site))
    writer.start()
    try:
        fs.wait_for(lambda: len(writer.acked()) >= 20, 60, "writes before the switchover")
        started = fs.now()
        result = fs.playbook(site, "playbooks/failover.yml", "-e", "product=hello")
        ended = fs.now()
        fs.wait_for(lambda: any(w.ok and w.server == new for w in writer.writes), 60,
                    "a write acknowledged by the new master")
        time.sleep(2)
    finally:
        writer.finish()
        sampler.finish()
    assert result.returncode == 0, result.stdout[-5000:]
    acked = writer.acked()
    present = {int(x) for x in site.sql(new, "SELECT n FROM hello.writes").split()}
    lost = [w.n for w in acked if w.n not in present]
    last_old = max(w.done for w in acked if w.server == old)
    first_new = min(w.done for w in acked if w.server == new)
    refused = [w for w in writer.writes if not w.ok and w.sent >= started]
    RESULTS["planned_switchover"] = {
        "acknowledged_lost": len(lost), "two_writable_samples": len(sampler.two_writable()),
        "refused_window_s": round(first_new - last_old, 2), "refused_writes": len(refused),
        "playbook_s": round(ended - started, 1), "writes_acknowledged": len(acked),
        "failovers": 0}
    print(f"\nplanned_switchover: {json.dumps(RESULTS['planned_switchover'])}")
    assert lost == []
    assert sampler.two_writable() == []
    assert site.positions()["master"] == new and site.positions()["candidate"] == old


def test_report_written(site: fs.Site) -> None:
    assert RESULTS, "no fault ran"
    Path(REPORT.parent).mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(RESULTS, indent=2, sort_keys=True) + "\n")
    print("\n" + table(RESULTS))
