"""scripts/ci_checks.py: what CI checks on the output of `make up`."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from scripts.ci_checks import CheckFailed, fleet, rerun, smoke

NAMES = [str(s["name"]) for s in fleet()]
LISTED = [s for s in fleet() if s["role"] in ("db", "memcached", "web")]


class Page(http.server.BaseHTTPRequestHandler):
    status = 200
    body = "hello served by hostkit-web-2"

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        data = f"{self.body} for {self.headers['Host']}".encode()
        self.send_response(self.status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def site(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setattr("scripts.ci_checks.RETRY_DELAY", 0.01)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    Page.status, Page.body = 200, "hello served by hostkit-web-2"


def summary(url: str, states: dict[str, str] | None = None, drop: str = "") -> str:
    states = states or {}
    lines = [f"    - 'site: {url}'", f"    - 'hello: curl -H ''Host: hello.test'' {url}'",
             "    - name             role       products     az           address         state"]
    for server in LISTED:
        if server["name"] == drop:
            continue
        state = states.get(str(server["name"]), "in_service")
        lines.append(f"    - {server['name']:<16} {server['role']:<10} hello        us-east-1a   "
                     f"172.30.0.9      {state}")
    lines.append("    - 'product hello: db master hostkit-db-1, web 2, memcached 2 (epoch 4)'")
    return "TASK [Print the servers and the URL]\nok: [localhost] =>\n    msg:\n" + \
        "\n".join(lines) + "\n\nPLAY RECAP ****\n"


def recap(changed: dict[str, int] | None = None, skip: str = "") -> str:
    changed = changed or {}
    rows = [f"{name:<26} : ok=10   changed={changed.get(name, 0)}    unreachable=0    failed=0"
            "    skipped=1    rescued=0    ignored=0"
            for name in [*NAMES, "localhost"] if name != skip]
    return "PLAY [x]\n\nPLAY RECAP *****\n" + "\n".join(rows) + "\n"


def test_smoke_passes_on_a_serving_site(site: str) -> None:
    said = smoke(summary(site))
    assert said[-1] == f"hello: 200 from hostkit-web-2 through {site}"


def test_smoke_names_a_server_that_is_not_in_service(site: str) -> None:
    with pytest.raises(CheckFailed, match=r"hostkit-db-3 \(fenced\)"):
        smoke(summary(site, {"hostkit-db-3": "fenced"}))


def test_smoke_names_a_server_missing_from_the_table(site: str) -> None:
    with pytest.raises(CheckFailed, match="lacks \\['hostkit-mc-2'\\]"):
        smoke(summary(site, drop="hostkit-mc-2"))


def test_smoke_fails_when_the_site_does_not_answer_200(site: str) -> None:
    Page.status = 503
    with pytest.raises(CheckFailed, match="answered 503"):
        smoke(summary(site))


def test_smoke_fails_when_the_page_names_no_web_server(site: str) -> None:
    Page.body = "It works!"
    with pytest.raises(CheckFailed, match="names no web server"):
        smoke(summary(site))


def test_smoke_fails_without_a_summary() -> None:
    with pytest.raises(CheckFailed, match="no 'site: URL'"):
        smoke("PLAY RECAP\nlocalhost : ok=1 changed=0\n")


def test_rerun_passes_when_nothing_changed() -> None:
    assert "changed=0 failed=0 unreachable=0 on every one" in rerun(recap())[0]


def test_rerun_names_the_host_that_changed() -> None:
    with pytest.raises(CheckFailed, match=r"hostkit-monitor \(changed=10"):
        rerun(recap({"hostkit-monitor": 10}))


def test_rerun_needs_every_fleet_host_in_the_recap() -> None:
    with pytest.raises(CheckFailed, match="does not list \\['hostkit-edge'\\]"):
        rerun(recap(skip="hostkit-edge"))
    with pytest.raises(CheckFailed, match="did not finish"):
        rerun("TASK [x]\nfatal: [hostkit-web-1]: FAILED!\n")
