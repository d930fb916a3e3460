"""Web containers with the config agent against the sandbox's S3, for the platform test and
the propagation benchmark (tests/platform/test_config_agent.py,
tests/bench/bench_config_propagation.py).

Each container is hostkit/web:latest on the network `hostkit`, converged with
playbooks/web.yml (common, apache, php, product `hello`, config_agent). The global config is
a document of its own under a random key of the sandbox bucket (never the sandbox's
global-config.json), with made-up database and memcached servers: what is tested is the
settings file and the PHP-FPM reload, not the product's connections (its health check is
off)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from module_utils import global_config as gc
from scripts.sandbox import AWS_CONTAINER_URL, NETWORK, REGION, ensure_aws, ensure_bucket
from tests.support import docker, systemd_container

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
BUCKET = "hostkit-sandbox-config"
PRODUCT = "hello"
RUNTIME = f"/srv/www/{PRODUCT}/shared/config/runtime.json"
STATE = "/var/lib/hostkit-config-agent/state.json"
PHP_FPM = "php8.2-fpm.service"
KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
# Made-up servers (TEST-NET-1 addresses): nothing connects to them.
DB = {f"hkagent-db-{i}": f"192.0.2.{10 + i}" for i in (1, 2, 3)}
MEMCACHED = {"hkagent-mc-1": "192.0.2.21", "hkagent-mc-2": "192.0.2.22"}

# Runs inside a container: prints "<time> <sha256>" whenever runtime.json's content changes
# (checked every 20 ms), so that the time a change lands is taken where it lands, not after
# a `docker exec` round trip.
WATCH_PY = r"""
import hashlib, sys, time
path, last = sys.argv[1], None
while True:
    try:
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
    except OSError:
        digest = None
    if digest != last:
        print(f"{time.time():.4f} {digest}", flush=True)
        last = digest
    time.sleep(0.02)
"""


def initial_document() -> dict[str, Any]:
    servers = {sid: {"role": "db", "products": [PRODUCT], "az": "us-east-1a", "address": a,
                     "state": "in_service"} for sid, a in DB.items()}
    servers.update({sid: {"role": "memcached", "products": [PRODUCT], "az": "us-east-1b",
                          "address": a, "state": "in_service"} for sid, a in MEMCACHED.items()})
    return {"epoch": 1, "updated_at": gc.utc_now(), "updated_by": "test_config_agent",
            "servers": servers,
            "products": {PRODUCT: {"db": {"master": "hkagent-db-1", "candidate": "hkagent-db-2",
                                          "slave_candidate": "hkagent-db-3", "backup": None},
                                   "memcached": list(MEMCACHED), "web": []}}}


def swap_master(doc: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """A failover as the global config sees it: the candidate becomes the master."""
    db = doc["products"][PRODUCT]["db"]
    return gc.set_product(doc, PRODUCT, db={"master": db["candidate"],
                                            "candidate": db["master"]})


def sh(*args: str, check: bool = True, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), text=True, capture_output=True, check=check, **kw)


@dataclass
class Site:
    """The containers, the document's store and what the converge cost."""

    containers: list[str]
    store: gc.GlobalConfig
    key: str
    work: Path
    timings: dict[str, float] = field(default_factory=dict)

    # -- inside a container
    def exec(self, name: str, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return sh("docker", "exec", name, *cmd, check=check)

    def runtime(self, name: str) -> dict[str, Any]:
        return json.loads(self.exec(name, "cat", RUNTIME).stdout)

    def runtime_bytes(self, name: str) -> str:
        return self.exec(name, "cat", RUNTIME).stdout

    def state(self, name: str) -> dict[str, Any]:
        return json.loads(self.exec(name, "cat", STATE).stdout)

    def php_master_pid(self, name: str) -> int:
        return int(self.exec(name, "systemctl", "show", "-p", "MainPID", "--value",
                             PHP_FPM).stdout.strip())

    def journal(self, name: str, unit: str, since: float) -> str:
        return self.exec(name, "journalctl", "--no-pager", "-o", "short-unix", "-u", unit,
                         "--since", f"@{since:.0f}", check=False).stdout

    def wait_for(self, name: str, what: str, test: Any, timeout: float,
                 every: float = 0.25) -> Any:
        """Poll `test()` until it returns something true; its value, or an AssertionError
        that says what was awaited."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = test()
            except (subprocess.CalledProcessError, ValueError) as exc:
                last = exc
            if last and not isinstance(last, Exception):
                return last
            time.sleep(every)
        raise AssertionError(f"{name}: {what} did not happen within {timeout:.0f}s "
                             f"(last: {last!r})")

    def watch(self, name: str) -> subprocess.Popen[str]:
        """A watcher of runtime.json in the container (WATCH_PY); its first line is the
        current content."""
        return subprocess.Popen(["docker", "exec", "-i", name, "python3", "-u", "-c", WATCH_PY,
                                 RUNTIME], stdout=subprocess.PIPE, text=True)

    # -- the document
    def write_raw(self, body: bytes) -> None:
        """Put bytes under the key without any check (a broken writer)."""
        self.store.client.put_object(Bucket=BUCKET, Key=self.key, Body=body)

    # -- ansible
    def converge(self, step: str) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
                   ANSIBLE_ROLES_PATH=str(ROOT / "roles"), ANSIBLE_NOCOLOR="1",
                   ANSIBLE_FORCE_COLOR="0", PATH=f"{BIN}:{os.environ.get('PATH', '')}")
        start = time.monotonic()
        proc = sh(str(BIN / "ansible-playbook"), "-i", str(self.work / "inventory.json"),
                  "playbooks/web.yml", "-e", f"@{self.work / 'vars.json'}", check=False,
                  cwd=ROOT, env=env)
        self.timings[step] = round(time.monotonic() - start, 1)
        return proc


def _variables(key: str) -> dict[str, Any]:
    products = yaml.safe_load((ROOT / "inventory/sandbox/group_vars/all/products.yml")
                              .read_text())["platform_products"]
    return {
        # hello reads its settings on each request (runtime_reload: false in the sandbox);
        # here it asks for reloads, so that the tests see the graceful reload path.
        "platform_products": [dict(p, runtime_reload=True) for p in products
                              if p["name"] == PRODUCT],
        # The global config: read by the product role on the controller (host URL) and by
        # the agent inside the containers (the network alias).
        "hostkit_global_config_bucket": BUCKET,
        "hostkit_global_config_key": key,
        "hostkit_region": REGION,
        "hostkit_aws_endpoint_url": ensure_aws(),
        "hostkit_aws_environment": KEYS,
        "config_agent_endpoint_url": AWS_CONTAINER_URL,
        "config_agent_aws_environment": KEYS,
        # Made-up database and memcached servers: no health check.
        "product_healthcheck": False,
    }


@contextmanager
def agent_site(count: int, work: Path, prefix: str = "hkagent") -> Iterator[Site]:
    """`count` converged web containers following a document of their own; the containers
    and the document are removed at the end."""
    proc = sh(sys.executable, "-m", "image_builders", "build", "base", "web", cwd=ROOT,
              check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    endpoint = ensure_aws()
    ensure_bucket(BUCKET, endpoint)
    key = f"test-agent-{uuid.uuid4().hex[:10]}.json"
    store = gc.GlobalConfig(gc.make_client(REGION, endpoint, credentials=KEYS), BUCKET, key)
    store.create("test_config_agent", initial_document())
    with ExitStack() as stack:
        stack.callback(_remove_document, store.client, key)
        names = [stack.enter_context(systemd_container(
            "hostkit/web:latest", prefix, extra=["--network", NETWORK])) for _ in range(count)]
        host = {"ansible_connection": "community.docker.docker_api", "hostkit_role": "web",
                "hostkit_products": [PRODUCT]}
        (work / "inventory.json").write_text(json.dumps({"all": {"children": {
            "role_web": {"hosts": {n: host for n in names}},
            f"product_{PRODUCT}": {"hosts": {n: {} for n in names}}}}}))
        (work / "vars.json").write_text(json.dumps(_variables(key)))
        yield Site(names, store, key, work)


def _remove_document(client: Any, key: str) -> None:
    """Every version of the test's document (the bucket is versioned)."""
    listing = client.list_object_versions(Bucket=BUCKET, Prefix=key)
    for version in listing.get("Versions", []) + listing.get("DeleteMarkers", []):
        if version["Key"] == key:
            client.delete_object(Bucket=BUCKET, Key=key, VersionId=version["VersionId"])


def reconnect(name: str) -> None:
    docker("network", "connect", NETWORK, name)


def disconnect(name: str) -> None:
    docker("network", "disconnect", NETWORK, name)
