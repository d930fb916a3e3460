"""The config agent of the web servers: the products' runtime settings follow the global config.

`hostkit-config-agent` (installed by roles/config_agent, run by systemd as its own
unprivileged user) polls the global config document in S3 with If-None-Match every few
seconds. Each new document must pass the schema and the epoch rule (module_utils/
global_config.py: `Reader`, `EpochGuard`); then each product of the host gets its runtime
settings rendered (host_programs/config_agent/runtime_settings.py, the same function the
product role uses for the first copy) and, only when the bytes differ, written atomically: a
temporary file in the same directory, fsync, rename, fsync of the directory, with the file's
mode, group (and owner when running as root) set before the rename. When any file's content
changed, PHP-FPM is reloaded gracefully - the agent writes a request file that a systemd
path unit watches (the agent itself has no privilege to reload anything).

On any error (S3 unreachable, access denied, an invalid document, a lower epoch, a file
that cannot be written) the settings on disk stay as they are, one line says what is
wrong (once, not at every retry), and the next poll waits longer (exponential backoff,
capped); the first good poll resets it. A state file (JSON, world-readable, no secrets)
tells monitoring the epoch, the last success, the last error and each product's digest.

Usage: hostkit-config-agent [--config FILE] [--once] [--check-config]
"""

from __future__ import annotations

import argparse
import grp
import json
import logging
import os
import pwd
import random
import signal
import stat
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from host_programs.common import settings
from host_programs.common.atomic_files import write_atomic as atomic_write
from host_programs.config_agent.runtime_settings import (
    DEFAULT_DB_PORT,
    DEFAULT_MEMCACHED_PORT,
    digest,
    dumps,
    render,
)
from module_utils.global_config import (
    EpochGuard,
    GlobalConfig,
    GlobalConfigError,
    Reader,
    make_client,
)

PROGRAM = "hostkit-config-agent"
DEFAULT_CONFIG = "/etc/hostkit-config-agent/config.json"
log = logging.getLogger(PROGRAM)


class AgentError(Exception):
    """A problem the agent reports as one line; the message names the product or field."""


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class ProductTarget:
    """One product of this host and where its runtime settings go."""

    name: str
    path: str                       # the runtime.json the product's PHP-FPM pool reads
    mode: int = 0o640
    group: str | None = None        # the product's group (its pool reads the file)
    owner: str | None = None        # applied only when the agent runs as root
    database: Mapping[str, Any] | None = None
    memcached: bool = False
    db_port: int = DEFAULT_DB_PORT
    memcached_port: int = DEFAULT_MEMCACHED_PORT
    # PHP-FPM is reloaded when this product's settings change; false for a product that
    # reads runtime.json on each request (a reload would only hold requests back).
    reload: bool = True

    def product(self) -> dict[str, Any]:
        """The product entry the render function takes (as in platform_products)."""
        entry: dict[str, Any] = {"name": self.name, "memcached": self.memcached}
        if self.database is not None:
            entry["database"] = dict(self.database)
        return entry


@dataclass(frozen=True)
class AgentConfig:
    bucket: str
    key: str
    products: tuple[ProductTarget, ...]
    region: str | None = None
    endpoint_url: str | None = None
    interval: float = 2.0
    backoff_max: float = 30.0
    state_file: str = "/var/lib/hostkit-config-agent/state.json"
    reload_request: str | None = "/var/lib/hostkit-config-agent/reload.request"
    connect_timeout: float = 2.0
    read_timeout: float = 5.0

    @property
    def source(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


_TEXT_OR_NULL = {"type": ["string", "null"]}
_ABSOLUTE_OR_NULL = {"type": ["string", "null"], "pattern": "^(/.*)?$",
                     "description": "an absolute path"}
_SECONDS = {"type": "number", "minimum": 0.1, "description": "a number >= 0.1 (seconds)"}
_PORT = {"type": "integer", "minimum": 1, "maximum": 65535,
         "description": "a port number 1-65535"}

# The configuration file the role writes (roles/config_agent/templates); `--check-config`
# and every start check it against this schema (host_programs/common/settings.py).
SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["bucket", "key", "products"],
    "properties": {
        "bucket": {"type": "string", "minLength": 1, "description": "an S3 bucket name"},
        "key": {"type": "string", "minLength": 1, "description": "an S3 object key"},
        "region": _TEXT_OR_NULL,
        "endpoint_url": _TEXT_OR_NULL,
        "interval": _SECONDS,
        "backoff_max": _SECONDS,
        "state_file": _ABSOLUTE_OR_NULL,
        "reload_request": _ABSOLUTE_OR_NULL,
        "connect_timeout": _SECONDS,
        "read_timeout": _SECONDS,
        "products": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "path"],
                "properties": {
                    "name": {"type": "string", "minLength": 1,
                             "description": "a product name"},
                    "path": {"type": "string", "pattern": "^/",
                             "description": "an absolute path"},
                    # the owner must be able to read: 4-7 in the owner's digit
                    "mode": {"type": "string", "pattern": "^0?[4-7][0-7]{2}$",
                             "description": "an octal file mode in a string, such as "
                                            "'0640', that lets the owner read"},
                    "group": _TEXT_OR_NULL,
                    "owner": _TEXT_OR_NULL,
                    "database": {"type": ["object", "null"],
                                 "properties": {"name": {"type": "string"},
                                                "user": {"type": "string"}},
                                 "description": "null or a mapping of name and user"},
                    "memcached": {"type": "boolean", "description": "true or false"},
                    "reload": {"type": "boolean", "description": "true or false"},
                    "db_port": _PORT,
                    "memcached_port": _PORT,
                },
            },
        },
    },
}


def _product(data: Mapping[str, Any]) -> ProductTarget:
    """A product entry that passed the schema."""
    return ProductTarget(
        name=data["name"], path=data["path"], mode=int(data.get("mode", "0640"), 8),
        group=data.get("group") or None, owner=data.get("owner") or None,
        database=data.get("database"), memcached=data.get("memcached", False),
        reload=data.get("reload", True),
        db_port=data.get("db_port", DEFAULT_DB_PORT),
        memcached_port=data.get("memcached_port", DEFAULT_MEMCACHED_PORT))


def _twice(targets: Sequence[ProductTarget]) -> list[str]:
    """Names or paths that two products share (each would overwrite the other's file)."""
    found = []
    for label in ("name", "path"):
        values = [getattr(t, label) for t in targets]
        twice = sorted({v for v in values if values.count(v) > 1})
        if twice:
            found.append(f"products: {label} {', '.join(twice)} appears twice")
    return found


def _convert(values: dict[str, Any]) -> dict[str, Any]:
    """Checked values to AgentConfig's fields: empty texts are unset, no reload request
    file unless one is named, the backoff cap never below the interval."""
    values = {k: (None if v == "" else v) for k, v in values.items()}
    values["products"] = tuple(_product(p) for p in values["products"])
    values["reload_request"] = values.get("reload_request")
    values["state_file"] = values.get("state_file") or AgentConfig.state_file
    for name in ("interval", "backoff_max", "connect_timeout", "read_timeout"):
        values[name] = float(values.get(name, getattr(AgentConfig, name)))
    values["backoff_max"] = max(values["interval"], values["backoff_max"])
    return values


def parse_config(data: Any, source: str = "the agent's configuration") -> AgentConfig:
    """The configuration, or AgentError naming every field that is wrong."""
    try:
        config = settings.build(data, SCHEMA, AgentConfig, source, _convert)
    except settings.SettingsError as exc:
        raise AgentError(str(exc)) from None
    twice = _twice(config.products)
    if twice:
        raise AgentError(f"{source}: " + "; ".join(twice))
    return config


def read_config(path: str) -> AgentConfig:
    """The configuration file, checked (as `--check-config` does)."""
    try:
        return parse_config(settings.read_json(path), path)
    except settings.SettingsError as exc:
        raise AgentError(str(exc)) from None


# --------------------------------------------------------------------------- files


def _gid(group: str, where: str) -> int:
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise AgentError(f"{where}: group '{group}' does not exist on this host") from None


def _uid(owner: str, where: str) -> int:
    try:
        return pwd.getpwnam(owner).pw_uid
    except KeyError:
        raise AgentError(f"{where}: user '{owner}' does not exist on this host") from None


@dataclass(frozen=True)
class FileMeta:
    """Who should own a written file and with which mode; -1 leaves an id as it comes."""

    mode: int
    uid: int = -1
    gid: int = -1

    def matches(self, st: os.stat_result) -> bool:
        return (stat.S_IMODE(st.st_mode) == self.mode
                and self.uid in (-1, st.st_uid) and self.gid in (-1, st.st_gid))


def write_atomic(path: str, data: bytes, meta: FileMeta, sync: bool = True) -> None:
    """Replace `path` with `data` in one rename, with the mode and owner of `meta`
    (atomic_files.write_atomic). An owner that cannot be given says how the directory
    should be set up."""
    try:
        atomic_write(path, data, meta.mode, meta.uid, meta.gid, sync)
    except PermissionError as exc:
        raise PermissionError(f"{exc} (the directory {os.path.dirname(path)} should be setgid "
                              "to the product's group, or the agent root)") from None


def read_bytes(path: str) -> bytes | None:
    """The file's content; None when it is missing or cannot be read."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None


# --------------------------------------------------------------------------- reloads


class RequestFileReloader:
    """Asks for a graceful reload of PHP-FPM by rewriting a request file that a systemd
    path unit watches (PathChanged=): the unit's service, running as root, does
    `systemctl reload` of the PHP-FPM service. The agent needs no privilege for it."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self, reason: str) -> None:
        with open(self.path, "w", encoding="utf-8") as handle:
            handle.write(f"{utc_iso(time.time())} {reason}\n")


# --------------------------------------------------------------------------- the agent


def utc_iso(seconds: float) -> str:
    # timezone.utc rather than datetime.UTC: the agent runs on Python 3.9 (EL 9) too.
    moment = datetime.fromtimestamp(seconds, timezone.utc)  # noqa: UP017
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ProductState:
    path: str
    digest: str | None = None
    written_at: str | None = None
    error: str | None = None


@dataclass
class AgentState:
    """What the state file says (see `Agent.state_document`)."""

    epoch: int | None = None
    etag: str | None = None
    last_poll: str | None = None
    last_success: str | None = None
    last_change: str | None = None
    last_error: str | None = None
    last_error_at: str | None = None
    consecutive_failures: int = 0
    next_poll_in: float = 0.0
    reload_requests: int = 0
    last_reload_request: str | None = None
    products: dict[str, ProductState] = field(default_factory=dict)


def previous_epoch(state_file: str) -> int | None:
    """The epoch an earlier run accepted (from its state file), so that a restart never
    accepts an older document than the one the settings were rendered from."""
    try:
        with open(state_file, encoding="utf-8") as handle:
            epoch = json.load(handle).get("epoch")
    except (OSError, ValueError, AttributeError):
        return None
    return epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None


class Agent:
    """One poll at a time (`poll_once`), so tests drive it without threads or sleeping.

    `reader` is a global_config.Reader; `reload` is called with a reason when any
    product's content changed; `clock` gives wall-clock seconds for the state file;
    `jitter(a, b)` spreads the retries of a fleet (random.uniform)."""

    def __init__(self, config: AgentConfig, reader: Reader,
                 reload: Callable[[str], None],
                 clock: Callable[[], float] = time.time,
                 jitter: Callable[[float, float], float] = random.uniform) -> None:
        self.config = config
        self.reader = reader
        self.reload = reload
        self.clock = clock
        self.jitter = jitter
        self.state = AgentState(epoch=reader.guard.epoch,
                                products={t.name: ProductState(t.path) for t in config.products})
        self._metas: dict[str, FileMeta] = {}
        self._reload_pending: str | None = None
        self._logged_error: str | None = None

    # -- one poll
    def poll_once(self) -> float:
        """Read the document if it changed, bring every product's file in line with the
        last good document, reload when content changed, write the state file. Returns
        the seconds to wait before the next poll."""
        now = self.clock()
        self.state.last_poll = utc_iso(now)
        try:
            self.reader.poll()
            problems = self._apply() if self.reader.doc is not None else []
        except GlobalConfigError as exc:
            problems = [str(exc)]
        except Exception as exc:  # noqa: BLE001 - the agent must outlive any one poll
            problems = [f"unexpected {type(exc).__name__}: {exc}"]
        self.state.epoch = self.reader.guard.epoch
        self.state.etag = self.reader.etag
        delay = self._failed(problems, now) if problems else self._succeeded(now)
        self.state.next_poll_in = round(delay, 3)
        self._write_state()
        return delay

    def _meta(self, target: ProductTarget) -> FileMeta:
        """Mode, owner and group a product's file must have. As root: the configured owner
        (else root) and group. Otherwise the file is the agent's own; its group comes from
        the setgid directory, which the role gives the product's group."""
        if target.name not in self._metas:
            where = f"product '{target.name}'"
            euid = os.geteuid()
            uid = (_uid(target.owner, where) if target.owner else 0) if euid == 0 else euid
            gid = _gid(target.group, where) if target.group else -1
            self._metas[target.name] = FileMeta(target.mode, uid, gid)
        return self._metas[target.name]

    def _apply_one(self, target: ProductTarget, doc: Mapping[str, Any]) -> bool:
        """Bring one product's file in line with `doc`; True when its content changed."""
        where = f"product '{target.name}'"
        try:
            data = dumps(render(doc, target.product(), target.db_port, target.memcached_port))
        except (KeyError, ValueError) as exc:
            raise AgentError(f"{where}: {exc.args[0] if exc.args else exc} "
                             f"(epoch {doc.get('epoch')}): {target.path} left as it is") from None
        meta = self._meta(target)
        current = read_bytes(target.path)
        try:
            st: os.stat_result | None = os.stat(target.path)
        except OSError:
            st = None
        if current == data and st is not None and meta.matches(st):
            self.state.products[target.name].digest = digest(data)
            return False
        try:
            write_atomic(target.path, data, meta)
        except OSError as exc:
            reason = exc.strerror if exc.strerror and exc.filename else str(exc)
            raise AgentError(f"{where}: cannot write {target.path}: {reason}") from None
        product = self.state.products[target.name]
        product.digest, product.written_at = digest(data), utc_iso(self.clock())
        if current == data:
            return False  # only the mode or ownership was put right
        self.state.last_change = product.written_at
        log.info("%s: epoch %s: wrote %s (%s)", where, doc.get("epoch"), target.path,
                 _summary(data))
        return True

    def _apply(self) -> list[str]:
        doc = self.reader.doc
        assert doc is not None
        problems, changed = [], []
        for target in self.config.products:
            product = self.state.products[target.name]
            try:
                if self._apply_one(target, doc):
                    changed.append(target.name)
                product.error = None
            except AgentError as exc:
                product.error = str(exc)
                problems.append(str(exc))
        reloading = [t.name for t in self.config.products if t.name in changed and t.reload]
        if reloading:
            self._reload_pending = f"epoch {doc['epoch']}: {', '.join(reloading)}"
        if self._reload_pending:
            try:
                self.reload(self._reload_pending)
            except OSError as exc:
                problems.append(f"cannot ask for the PHP-FPM reload ({self._reload_pending}): "
                                f"{exc}")
            else:
                log.info("asked for a graceful PHP-FPM reload (%s)", self._reload_pending)
                self.state.reload_requests += 1
                self.state.last_reload_request = utc_iso(self.clock())
                self._reload_pending = None
        return problems

    # -- outcome of a poll
    def backoff(self, failures: int) -> float:
        """Seconds before the next poll after `failures` failed polls in a row:
        interval * 2**(failures-1), at most backoff_max, jittered down by up to a quarter
        so that a fleet does not retry in step."""
        base = min(self.config.backoff_max,
                   self.config.interval * 2 ** min(failures - 1, 32))
        return self.jitter(0.75 * base, base)

    def _failed(self, problems: Sequence[str], now: float) -> float:
        message = "; ".join(problems)
        self.state.consecutive_failures += 1
        self.state.last_error, self.state.last_error_at = message, utc_iso(now)
        delay = self.backoff(self.state.consecutive_failures)
        if message != self._logged_error:
            epoch = self.state.epoch
            log.warning("%s; keeping the last good settings (%s); retrying with backoff, "
                        "next in %.1fs", message,
                        f"epoch {epoch}" if epoch is not None else "none read yet", delay)
            self._logged_error = message
        return delay

    def _succeeded(self, now: float) -> float:
        if self.state.consecutive_failures:
            log.info("recovered after %d failed poll(s): epoch %s", self.state.consecutive_failures,
                     self.state.epoch)
        self.state.consecutive_failures = 0
        self.state.last_success = utc_iso(now)
        self._logged_error = None
        return self.config.interval

    # -- state file
    def state_document(self) -> dict[str, Any]:
        s = self.state
        return {
            "program": PROGRAM,
            "pid": os.getpid(),
            "source": self.config.source,
            "status": "error" if s.consecutive_failures else "ok",
            "epoch": s.epoch,
            "etag": s.etag,
            "last_poll": s.last_poll,
            "last_success": s.last_success,
            "last_change": s.last_change,
            "last_error": s.last_error,
            "last_error_at": s.last_error_at,
            "consecutive_failures": s.consecutive_failures,
            "next_poll_in": s.next_poll_in,
            "interval": self.config.interval,
            "reload_requests": s.reload_requests,
            "last_reload_request": s.last_reload_request,
            "products": {n: {"path": p.path, "digest": p.digest, "written_at": p.written_at,
                             "error": p.error} for n, p in s.products.items()},
        }

    def _write_state(self) -> None:
        data = (json.dumps(self.state_document(), indent=2, sort_keys=True) + "\n").encode()
        try:
            # Rewritten at every poll: atomic, but not worth an fsync each time.
            write_atomic(self.config.state_file, data, FileMeta(0o644), sync=False)
        except OSError as exc:
            message = f"cannot write the state file {self.config.state_file}: {exc}"
            if message != self._logged_error:
                log.warning("%s", message)
                self._logged_error = message

    # -- the loop
    def run(self, stop: threading.Event) -> None:
        log.info("polling %s every %gs for %s (accepting epoch >= %s)", self.config.source,
                 self.config.interval, ", ".join(t.name for t in self.config.products) or
                 "no products", self.reader.guard.epoch if self.reader.guard.epoch is not None
                 else "any")
        while not stop.is_set():
            stop.wait(self.poll_once())


def _summary(data: bytes) -> str:
    settings = json.loads(data)
    db = settings.get("db") or {}
    host = f"db {db.get('host')}:{db.get('port')}" if db else "no db"
    return f"{host}, memcached {', '.join(settings.get('memcached') or []) or 'none'}"


# --------------------------------------------------------------------------- entry point


def build(config: AgentConfig, clock: Callable[[], float] = time.time) -> Agent:
    # One attempt per poll: the agent's own backoff does the retrying, and a poll that
    # cannot resolve or reach the endpoint should end (and say so) quickly.
    client = make_client(config.region, config.endpoint_url, max_attempts=1,
                         connect_timeout=config.connect_timeout,
                         read_timeout=config.read_timeout)
    store = GlobalConfig(client, config.bucket, config.key)
    reader = Reader(store, EpochGuard(previous_epoch(config.state_file)))
    reload: Callable[[str], None]
    if config.reload_request:
        reload = RequestFileReloader(config.reload_request)
    else:
        def reload(reason: str) -> None:
            log.info("content changed (%s); no reload configured", reason)
    return Agent(config, reader, reload, clock=clock)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROGRAM, description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="configuration file (JSON)")
    parser.add_argument("--once", action="store_true",
                        help="one poll, then exit (status 1 when it failed)")
    parser.add_argument("--check-config", action="store_true",
                        help="check the configuration file and exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(levelname)s: %(message)s")
    try:
        config = read_config(args.config)
        if args.check_config:
            print(f"{args.config}: ok ({len(config.products)} product(s), {config.source})")
            return 0
        agent = build(config)
    except (AgentError, GlobalConfigError) as exc:
        log.error("%s", exc)
        return 1
    if args.once:
        agent.poll_once()
        return 1 if agent.state.consecutive_failures else 0
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    agent.run(stop)
    log.info("stopped")
    return 0
