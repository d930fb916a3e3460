#!/usr/bin/env python3
"""Checks that CI (.ci/run) makes on the output of the README's main command, `make up`.

  ci_checks.py smoke LOG   the site answers as `make up` said it would: every product's
                           command from the end of LOG (`NAME: curl -H 'Host: D' URL`) gets
                           200 and a page that names a web server of the table; every server
                           of the sandbox fleet (the tiers of the global config) is listed,
                           and every listed server is in_service
  ci_checks.py rerun LOG   LOG is a `make up` that changed nothing: its PLAY RECAP lists every
                           host of the fleet with changed=0, failed=0 and unreachable=0

Each check prints what it saw and exits 1 naming what is wrong.
"""

from __future__ import annotations

import re
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
FLEET = ROOT / "inventory" / "sandbox" / "group_vars" / "all" / "fleet.yml"
# The tiers the global config lists (the edge and the monitor are not in it).
LISTED_ROLES = ("db", "memcached", "web")
CURL = re.compile(r"^(?P<product>[\w-]+): curl -H 'Host: (?P<host>[^']+)' (?P<url>http\S+)$")
ROW = re.compile(r"^(?P<name>\S+)\s+(?P<role>db|memcached|web)\s+(?P<products>\S*)\s+"
                 r"(?P<az>\S+)\s+(?P<address>\S+)\s+(?P<state>\S+)$")
RETRY_DELAY = 1.0  # seconds between attempts at the site (the edge may be reloading)
RECAP = re.compile(r"^(?P<host>\S+)\s+:\s+(?P<counts>(?:\w+=\d+\s*)+)$")


class CheckFailed(Exception):
    pass


def fleet() -> list[dict[str, object]]:
    return yaml.safe_load(FLEET.read_text())["sandbox_fleet"]


def unquote(item: str) -> str:
    """A list item as the YAML callback printed it, back to its text."""
    if len(item) > 1 and item[0] == item[-1] and item[0] in "'\"":
        try:
            return str(yaml.safe_load(item))
        except yaml.YAMLError:
            return item[1:-1]
    return item


def summary_lines(log: str) -> list[str]:
    """The lines of the last site summary (the debug list after 'site: URL'), unquoted."""
    start = log.rfind("site: http")
    if start < 0:
        raise CheckFailed("make up printed no 'site: URL' line")
    lines = []
    for raw in log[start:].splitlines():
        line = raw.strip()
        if line.startswith("- "):
            line = line[2:]
        line = unquote(line.strip())
        if line.startswith("PLAY RECAP"):
            break
        lines.append(line)
    return lines


def get(url: str, host: str, attempts: int = 5) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Host": host})
    status, body = 0, ""
    for _ in range(attempts):
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                return reply.status, reply.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read().decode(errors="replace")
        except OSError as exc:
            status, body = 0, repr(exc)
        time.sleep(RETRY_DELAY)
    return status, body


def smoke(log: str) -> list[str]:
    lines = summary_lines(log)
    rows = [m.groupdict() for m in map(ROW.match, lines) if m]
    commands = [m.groupdict() for m in map(CURL.match, lines) if m]
    said = [f"{len(rows)} servers listed, {len(commands)} product commands"]
    wanted = {s["name"] for s in fleet() if s["role"] in LISTED_ROLES}
    listed = {r["name"] for r in rows}
    if wanted - listed:
        raise CheckFailed(f"the server table lacks {sorted(wanted - listed)}")
    not_in_service = [f"{r['name']} ({r['state']})" for r in rows if r["state"] != "in_service"]
    if not_in_service:
        raise CheckFailed(f"servers not in_service: {', '.join(not_in_service)}")
    if not commands:
        raise CheckFailed("make up printed no product command ('NAME: curl -H ... URL')")
    web = {r["name"] for r in rows if r["role"] == "web"}
    for cmd in commands:
        status, body = get(cmd["url"], cmd["host"])
        if status != 200:
            raise CheckFailed(f"{cmd['product']}: {cmd['url']} with Host {cmd['host']} "
                              f"answered {status}: {body[:300]}")
        named = sorted(name for name in web if name in body)
        if not named:
            raise CheckFailed(f"{cmd['product']}: the page names no web server of {sorted(web)}")
        said.append(f"{cmd['product']}: 200 from {named[0]} through {cmd['url']}")
    return said


def play_recap(log: str) -> dict[str, dict[str, int]]:
    """host -> {ok, changed, unreachable, failed, ...} from the last PLAY RECAP of `log`."""
    recap = {}
    for line in log.rsplit("PLAY RECAP", 1)[-1].splitlines():
        match = RECAP.match(line.strip())
        if match:
            recap[match["host"]] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)",
                                                                     match["counts"])}
    return recap


def rerun(log: str) -> list[str]:
    if "PLAY RECAP" not in log:
        raise CheckFailed("no PLAY RECAP in the log: the playbook did not finish")
    recap = play_recap(log)
    missing = sorted({str(s["name"]) for s in fleet()} - set(recap))
    if missing:
        raise CheckFailed(f"the recap does not list {missing}")
    bad = [f"{host} ({', '.join(f'{k}={c[k]}' for k in ('changed', 'failed', 'unreachable'))})"
           for host, c in sorted(recap.items())
           if c.get("changed") or c.get("failed") or c.get("unreachable")]
    if bad:
        raise CheckFailed(f"the second make up changed or failed: {'; '.join(bad)}")
    return [f"{len(recap)} hosts, changed=0 failed=0 unreachable=0 on every one"]


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("smoke", "rerun"):
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    check, path = argv
    try:
        said = (smoke if check == "smoke" else rerun)(Path(path).read_text(errors="replace"))
    except (CheckFailed, OSError) as exc:
        print(f"ci_checks {check}: FAILED: {exc}", file=sys.stderr)
        return 1
    for line in said:
        print(f"ci_checks {check}: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
