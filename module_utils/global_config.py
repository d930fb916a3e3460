"""The global config document in S3: schema, checks, changes and a safe read-modify-write.

One JSON object in S3 holds the live topology of the fleet (which server has which role,
products, availability zone, private address and state; each product's database positions,
memcached and web servers). This module is its only reader and writer:

- `problems(doc)` / `validate(doc)`: the JSON Schema (`schemas/global_config.schema.json`,
  embedded here as `SCHEMA` so that a module shipped to a host or the config agent needs no
  second file) plus the cross-references a schema cannot express (`semantic_problems`).
- pure changes (`set_server`, `remove_server`, `set_product`, `set_product_db`,
  `remove_product`) that return a new document and whether anything changed;
- `GlobalConfig(client, bucket, key)`: `read`, `read_if_changed` (If-None-Match),
  `update` (conditional PUT with If-Match on the ETag, or If-None-Match: * for the first
  write; epoch + 1; re-read and re-apply after a lost race, a bounded number of times);
- `EpochGuard` / `Reader`: a reader never accepts a document whose epoch is lower than the
  last one it accepted, nor one that fails the checks.

No Ansible imports: the module in library/, the lookup, the config agent and the failover
watcher import this file as it is. It runs on Python 3.9 (EL 9 hosts) and up.
"""

from __future__ import annotations

import copy
import json
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

try:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError
except ImportError as exc:  # reported by make_client / the store, not on import
    BOTO_IMPORT_ERROR: ImportError | None = exc
    ClientError = BotoCoreError = ParamValidationError = ()  # type: ignore[assignment,misc]
else:
    BOTO_IMPORT_ERROR = None

try:
    import jsonschema
except ImportError as exc:
    JSONSCHEMA_IMPORT_ERROR: ImportError | None = exc
else:
    JSONSCHEMA_IMPORT_ERROR = None

ROLES = ("web", "db", "memcached", "monitor")
STATES = ("provisioning", "in_service", "draining", "fenced")
DB_POSITIONS = ("master", "candidate", "slave_candidate", "backup")
# Which product list a server of a role joins when it is in service.
MEMBER_LISTS = {"web": "web", "memcached": "memcached"}
CONTENT_TYPE = "application/json"

_SERVER_ID = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$"}
_PRODUCT_NAME = {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,30}$"}

# Keep equal to schemas/global_config.schema.json (a unit test compares them).
SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "$id": "https://hostkit.invalid/schemas/global_config.schema.json",
    "title": "hostkit global config",
    "description": (
        "The live topology of the fleet, kept in one S3 object. Written only by the control "
        "plane (launch, decommission, failover) with a conditional PUT and epoch + 1; read by "
        "Ansible, the config agent on every server and the control panel. Cross-references (a "
        "product's db master must be a known db server, ...) are checked by semantic_problems() "
        "in module_utils/global_config.py, which embeds a copy of this schema "
        "(tests/unit/test_global_config.py keeps the two equal)."
    ),
    "type": "object",
    "additionalProperties": False,
    "required": ["epoch", "updated_at", "updated_by", "servers", "products"],
    "properties": {
        "epoch": {
            "description": (
                "Version of the document; every write stores the epoch it read plus one, and a "
                "reader never accepts a lower epoch than the last it accepted."
            ),
            "type": "integer",
            "minimum": 0,
        },
        "updated_at": {
            "description": "UTC time of the write (RFC 3339).",
            "type": "string",
            "format": "date-time",
            "pattern": (
                "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?"
                "(Z|[+-][0-9]{2}:[0-9]{2})$"
            ),
        },
        "updated_by": {
            "description": "Who wrote it, e.g. launch_web@controller.",
            "type": "string",
            "minLength": 1,
            "maxLength": 200,
        },
        "servers": {
            "description": (
                "Server id (the inventory host name: container name or EC2 Name tag) -> what "
                "it is."
            ),
            "type": "object",
            "propertyNames": {"$ref": "#/definitions/server_id"},
            "additionalProperties": {"$ref": "#/definitions/server"},
        },
        "products": {
            "description": (
                "Product name -> its database positions and its memcached and web servers."
            ),
            "type": "object",
            "propertyNames": {"$ref": "#/definitions/product_name"},
            "additionalProperties": {"$ref": "#/definitions/product"},
        },
    },
    "definitions": {
        "server_id": _SERVER_ID,
        "product_name": _PRODUCT_NAME,
        "server_ref": {
            "description": "A server id, or null when the position is empty.",
            "anyOf": [{"$ref": "#/definitions/server_id"}, {"type": "null"}],
        },
        "server_list": {
            "type": "array",
            "items": {"$ref": "#/definitions/server_id"},
            "uniqueItems": True,
        },
        "server": {
            "type": "object",
            "additionalProperties": False,
            "required": ["role", "products", "az", "address", "state"],
            "properties": {
                "role": {"enum": list(ROLES)},
                "products": {
                    "type": "array",
                    "items": {"$ref": "#/definitions/product_name"},
                    "uniqueItems": True,
                },
                "az": {
                    "description": (
                        "Availability zone (EC2 placement, a sandbox label, or a rack name)."
                    ),
                    "type": "string",
                    "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$",
                },
                "address": {
                    "description": "Private IPv4 or IPv6 address.",
                    "type": "string",
                    "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}],
                },
                "state": {"enum": list(STATES)},
            },
        },
        "product": {
            "type": "object",
            "additionalProperties": False,
            "required": ["db", "memcached", "web"],
            "properties": {
                "db": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": list(DB_POSITIONS),
                    "properties": {p: {"$ref": "#/definitions/server_ref"} for p in DB_POSITIONS},
                },
                "memcached": {"$ref": "#/definitions/server_list"},
                "web": {"$ref": "#/definitions/server_list"},
            },
        },
    },
}

Doc = dict[str, Any]
Change = Callable[[Doc], "tuple[Doc, bool]"]


# --------------------------------------------------------------------------- errors


class GlobalConfigError(Exception):
    """Base of every error of this module; the message names the object and the problem."""


class BucketMissing(GlobalConfigError):
    pass


class AccessDenied(GlobalConfigError):
    pass


class DocumentMissing(GlobalConfigError):
    pass


class DocumentExists(GlobalConfigError):
    pass


class DocumentInvalid(GlobalConfigError):
    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = list(problems)
        shown = "; ".join(self.problems[:10])
        more = f" (and {len(self.problems) - 10} more)" if len(self.problems) > 10 else ""
        super().__init__(f"{source} is invalid: {shown}{more}")


class StaleEpoch(GlobalConfigError):
    def __init__(self, source: str, epoch: int, accepted: int) -> None:
        self.epoch = epoch
        self.accepted = accepted
        super().__init__(f"{source} has epoch {epoch}, lower than epoch {accepted} accepted "
                         "before: refused (an older copy, or a writer that skipped the "
                         "conditional write)")


class RetriesExhausted(GlobalConfigError):
    pass


class ChangeRejected(GlobalConfigError):
    """A change's input is wrong before any document is involved (e.g. a new server
    without an address)."""


class S3Unavailable(GlobalConfigError):
    """The endpoint could not be reached or answered with an error we do not interpret."""


# --------------------------------------------------------------------------- checks


def _validator() -> Any:
    if JSONSCHEMA_IMPORT_ERROR is not None:
        raise GlobalConfigError(f"the Python package jsonschema is required: "
                                f"{JSONSCHEMA_IMPORT_ERROR}")
    # Draft 7: the newest draft that EL 9's python3-jsonschema (3.2) knows; Debian 12 has 4.10.
    return jsonschema.Draft7Validator(SCHEMA, format_checker=jsonschema.FormatChecker())


def _dotted(path: Iterable[Any]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "document"


def _message(error: Any) -> str:
    description = error.schema.get("description") if isinstance(error.schema, dict) else None
    if error.validator in ("anyOf", "oneOf") and description:
        expected = description[0].lower() + description[1:].rstrip(".")
        return f"{error.instance!r} is not valid: expected {expected}"
    return str(error.message)


def schema_problems(doc: Any) -> list[str]:
    """Schema violations, each as '<dotted path>: <message>', in document order."""
    errors = sorted(_validator().iter_errors(doc), key=lambda e: [str(p) for p in e.path])
    return [f"{_dotted(e.absolute_path)}: {_message(e)}" for e in errors]


def _ref_problems(doc: Mapping[str, Any], where: str, server_id: str, product: str,
                  role: str) -> list[str]:
    server = doc["servers"].get(server_id)
    if server is None:
        return [f"{where}: unknown server '{server_id}' (not in servers)"]
    found = []
    if server["role"] != role:
        found.append(f"{where}: server '{server_id}' has role '{server['role']}', "
                     f"expected '{role}'")
    if product not in server["products"]:
        found.append(f"{where}: server '{server_id}' does not list product '{product}' "
                     "in its products")
    return found


def _product_problems(doc: Mapping[str, Any], name: str, product: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    holders: dict[str, list[str]] = {}
    for position in DB_POSITIONS:
        server_id = product["db"][position]
        if server_id is None:
            continue
        holders.setdefault(server_id, []).append(position)
        where = f"products.{name}.db.{position}"
        found += _ref_problems(doc, where, server_id, name, "db")
        server = doc["servers"].get(server_id)
        if position == "master" and server is not None and server["state"] == "fenced":
            found.append(f"{where}: server '{server_id}' is fenced and cannot be the master")
    for server_id, positions in holders.items():
        if len(positions) > 1:
            found.append(f"products.{name}.db: server '{server_id}' holds several positions "
                         f"({', '.join(positions)})")
    for kind in ("memcached", "web"):
        for i, server_id in enumerate(product[kind]):
            found += _ref_problems(doc, f"products.{name}.{kind}[{i}]", server_id, name, kind)
    return found


def semantic_problems(doc: Mapping[str, Any]) -> list[str]:
    """Cross-references the schema cannot express, for a document that passes the schema:
    every server a product names exists, has the right role (db positions: db; memcached
    and web lists: memcached and web) and lists the product; one server holds at most one
    db position of a product; a fenced server is no master; a server's products exist."""
    found: list[str] = []
    for server_id, server in doc["servers"].items():
        found += [f"servers.{server_id}.products: unknown product '{p}' (not in products)"
                  for p in server["products"] if p not in doc["products"]]
    for name, product in doc["products"].items():
        found += _product_problems(doc, name, product)
    return found


def problems(doc: Any) -> list[str]:
    """Every problem of a document: schema first; cross-references when the schema passes."""
    found = schema_problems(doc)
    return found or semantic_problems(doc)


def validate(doc: Any, source: str = "document") -> Doc:
    """The document itself when it is valid, else DocumentInvalid naming every problem."""
    found = problems(doc)
    if found:
        raise DocumentInvalid(source, found)
    return doc


def parse(body: bytes | str, source: str = "document") -> Doc:
    """Decode and validate a stored document."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DocumentInvalid(source, [f"not JSON: {exc}"]) from None
    return validate(doc, source)


def dumps(doc: Mapping[str, Any]) -> bytes:
    """The stored form: sorted keys, two-space indent, final newline (diff-friendly)."""
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("utf-8")


def utc_now() -> str:
    # timezone.utc rather than datetime.UTC: the agent runs on Python 3.9 (EL 9) too.
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: UP017


def default_updated_by(program: str = "hostkit") -> str:
    return f"{program}@{socket.gethostname()}"


def create_document(updated_by: str, epoch: int = 0, now: str | None = None) -> Doc:
    """An empty, valid document: no servers, no products."""
    return validate({"epoch": epoch, "updated_at": now or utc_now(), "updated_by": updated_by,
                     "servers": {}, "products": {}})


def empty_product() -> dict[str, Any]:
    return {"db": {p: None for p in DB_POSITIONS}, "memcached": [], "web": []}


# --------------------------------------------------------------------------- changes
# Each change takes a document and returns (new document, changed). The input is never
# modified. Changes do not validate; update() validates the result before it writes.


def _sync_membership(doc: Doc, server_id: str) -> None:
    """A web or memcached server is in the list of each of its products exactly while it is
    in service; appended at the end, so the order of the others is kept."""
    server = doc["servers"].get(server_id)
    for name, product in doc["products"].items():
        for kind in MEMBER_LISTS.values():
            wanted = (server is not None and server["state"] == "in_service"
                      and MEMBER_LISTS.get(server["role"]) == kind and name in server["products"])
            members = product[kind]
            if wanted and server_id not in members:
                members.append(server_id)
            elif not wanted and server_id in members:
                members.remove(server_id)


def set_server(doc: Mapping[str, Any], server_id: str, *, role: str | None = None,
               products: Iterable[str] | None = None, az: str | None = None,
               address: str | None = None, state: str | None = None) -> tuple[Doc, bool]:
    """Create or update a server; fields left None keep their value. A new server needs
    role, az and address (products default to none, state to provisioning). A web or
    memcached server joins its products' web/memcached lists while it is in_service and
    leaves them otherwise (also when it drops a product)."""
    new = copy.deepcopy(dict(doc))
    current = new["servers"].get(server_id)
    if current is None:
        missing = [f for f, v in (("role", role), ("az", az), ("address", address)) if v is None]
        if missing:
            raise ChangeRejected(f"server '{server_id}' is new: {', '.join(missing)} "
                                 f"{'is' if len(missing) == 1 else 'are'} required")
        current = {"role": role, "products": [], "az": az, "address": address,
                   "state": "provisioning"}
        new["servers"][server_id] = current
    fields = {"role": role, "az": az, "address": address, "state": state,
              "products": None if products is None else list(dict.fromkeys(products))}
    current.update({k: v for k, v in fields.items() if v is not None})
    _sync_membership(new, server_id)
    return new, new != doc


def remove_server(doc: Mapping[str, Any], server_id: str) -> tuple[Doc, bool]:
    """Remove a server and every reference to it: products' web and memcached lists, and
    the db positions it held (left empty). Unknown server: no change."""
    new = copy.deepcopy(dict(doc))
    new["servers"].pop(server_id, None)
    for product in new["products"].values():
        for kind in ("web", "memcached"):
            product[kind] = [s for s in product[kind] if s != server_id]
        for position, holder in product["db"].items():
            if holder == server_id:
                product["db"][position] = None
    return new, new != doc


def set_product(doc: Mapping[str, Any], name: str, *,
                db: Mapping[str, str | None] | None = None,
                memcached: Iterable[str] | None = None,
                web: Iterable[str] | None = None) -> tuple[Doc, bool]:
    """Create a product (empty positions and lists) or update it: `db` sets the positions
    it names (None empties one) and keeps the others; `memcached` / `web` replace the list."""
    unknown = sorted(set(db or {}) - set(DB_POSITIONS))
    if unknown:
        raise ChangeRejected(f"product '{name}': unknown db position(s) {', '.join(unknown)} "
                             f"(positions: {', '.join(DB_POSITIONS)})")
    new = copy.deepcopy(dict(doc))
    product = new["products"].setdefault(name, empty_product())
    product["db"].update(dict(db or {}))
    if memcached is not None:
        product["memcached"] = list(memcached)
    if web is not None:
        product["web"] = list(web)
    return new, new != doc


def set_product_db(doc: Mapping[str, Any], name: str, **positions: str | None
                   ) -> tuple[Doc, bool]:
    """set_product(doc, name, db=positions), e.g. set_product_db(doc, 'hello', master='db-2')."""
    return set_product(doc, name, db=positions)


def remove_product(doc: Mapping[str, Any], name: str) -> tuple[Doc, bool]:
    """Remove a product and drop it from every server's products."""
    new = copy.deepcopy(dict(doc))
    new["products"].pop(name, None)
    for server in new["servers"].values():
        server["products"] = [p for p in server["products"] if p != name]
    return new, new != doc


def chain(*changes: Change) -> Change:
    """Several changes applied in order as one (one write, one epoch)."""
    def run(doc: Doc) -> tuple[Doc, bool]:
        original = doc
        for change in changes:
            doc, _ = change(doc)
        return doc, doc != original
    return run


def apply_change(doc: Mapping[str, Any], change: Change, updated_by: str,
                 now: str | None = None, source: str = "document") -> tuple[Doc, bool]:
    """The next version of `doc` after `change`: epoch + 1, updated_at and updated_by set,
    validated. When the change changes nothing, `doc` itself and False."""
    new, changed = change(copy.deepcopy(dict(doc)))
    if not changed or new == doc:
        return dict(doc), False
    new = dict(new, epoch=int(doc["epoch"]) + 1, updated_at=now or utc_now(),
               updated_by=updated_by)
    return validate(new, f"{source} after the change"), True


# --------------------------------------------------------------------------- S3 store


# Credentials given as environment variables (a play's `environment:` mapping) -> boto3.
_CREDENTIAL_VARIABLES = {"AWS_ACCESS_KEY_ID": "aws_access_key_id",
                         "AWS_SECRET_ACCESS_KEY": "aws_secret_access_key",
                         "AWS_SESSION_TOKEN": "aws_session_token"}


def make_client(region: str | None = None, endpoint_url: str | None = None,
                max_attempts: int = 5, connect_timeout: float = 5,
                read_timeout: float = 10,
                credentials: Mapping[str, str] | None = None) -> Any:
    """An S3 client with botocore's standard retry mode (throttling, 5xx, timeouts) and
    short timeouts; path-style addressing when an endpoint (a local emulator) is given.
    Without endpoint_url, boto3 still honours AWS_ENDPOINT_URL. `credentials` maps
    AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN to values (other keys
    are ignored); without them boto3 finds credentials the usual way."""
    if BOTO_IMPORT_ERROR is not None:
        raise GlobalConfigError(f"the Python package boto3 is required: {BOTO_IMPORT_ERROR}")
    config = Config(retries={"mode": "standard", "max_attempts": max_attempts},
                    connect_timeout=connect_timeout, read_timeout=read_timeout,
                    s3={"addressing_style": "path"} if endpoint_url else None)
    keys = {arg: str(credentials[var]) for var, arg in _CREDENTIAL_VARIABLES.items()
            if credentials and credentials.get(var)}
    return boto3.client("s3", region_name=region, endpoint_url=endpoint_url or None,
                        config=config, **keys)


@dataclass(frozen=True)
class UpdateResult:
    doc: Doc                 # the document now stored (or the one read, when unchanged)
    etag: str | None         # its ETag (None when nothing exists and nothing was written)
    changed: bool
    before: Doc | None       # the document the change was applied to (None: first write)
    attempts: int            # conditional writes tried (0 when unchanged)

    @property
    def epoch(self) -> int:
        return int(self.doc["epoch"])


class _Conflict(Exception):
    """The conditional write lost a race (412 PreconditionFailed, 409 conflict)."""


_DENIED = {"AccessDenied", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch",
           "ExpiredToken", "InvalidToken", "AccountProblem", "403"}
_CONFLICT = {"PreconditionFailed", "ConditionalRequestConflict", "412", "409"}


_CONDITION_HEADERS = {"IfMatch": "If-Match", "IfNoneMatch": "If-None-Match"}
_HEADER_LOCK = threading.Lock()


def _put_takes(client: Any, condition: Mapping[str, str]) -> bool:
    """Whether this botocore's PutObject has the conditional-write parameters (1.35+)."""
    try:
        members = client.meta.service_model.operation_model("PutObject").input_shape.members
    except Exception:  # not a real client (a test double): let the call itself answer
        return True
    return all(name in members for name in condition)


def _put_with_headers(client: Any, request: Mapping[str, Any],
                      condition: Mapping[str, str]) -> Any:
    """PutObject with If-Match / If-None-Match sent as HTTP headers: an older botocore (Debian
    12's 1.29, EL 9's) lacks the parameters, but S3 honours the headers all the same. The
    handler is added for this one call; the lock keeps it off other threads' calls."""
    headers = {_CONDITION_HEADERS[name]: value for name, value in condition.items()}

    def add(params: dict[str, Any], **_: Any) -> None:
        params["headers"].update(headers)

    events, event, uid = client.meta.events, "before-call.s3.PutObject", "hostkit-conditional-put"
    with _HEADER_LOCK:
        events.register(event, add, unique_id=uid)
        try:
            return client.put_object(**request)
        finally:
            events.unregister(event, unique_id=uid)


class GlobalConfig:
    """The document at s3://bucket/key, read and written safely.

    `sleep` and `jitter` are injectable so tests need not wait."""

    def __init__(self, client: Any, bucket: str, key: str,
                 sleep: Callable[[float], None] = time.sleep,
                 jitter: Callable[[float, float], float] = random.uniform) -> None:
        self.client = client
        self.bucket = bucket
        self.key = key
        self._sleep = sleep
        self._jitter = jitter

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    # -- errors
    def _error(self, exc: Exception, action: str) -> GlobalConfigError:
        if not isinstance(exc, ClientError):
            return S3Unavailable(f"cannot {action} {self.location}: {exc}")
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        detail = f"{code}: {error.get('Message', '')}".rstrip(": ")
        if code == "NoSuchBucket":
            return BucketMissing(f"cannot {action} {self.location}: bucket '{self.bucket}' "
                                 "does not exist (check the bucket name and the region/endpoint)")
        if code in _DENIED or status == 403:
            return AccessDenied(f"cannot {action} {self.location}: access denied ({detail}); "
                                "check the credentials and the bucket policy")
        if code in ("NoSuchKey", "404") or status == 404:
            return DocumentMissing(f"cannot {action} {self.location}: the document does not "
                                   "exist (create it first)")
        return S3Unavailable(f"cannot {action} {self.location}: {detail or exc}")

    @staticmethod
    def _code(exc: Any) -> str:
        return str(exc.response.get("Error", {}).get("Code", ""))

    # -- reading
    def _get(self, **extra: Any) -> tuple[Doc, str] | None:
        try:
            reply = self.client.get_object(Bucket=self.bucket, Key=self.key, **extra)
            body = reply["Body"].read()
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if extra.get("IfNoneMatch") and (status == 304 or self._code(exc) in
                                             ("304", "NotModified")):
                return None
            raise self._error(exc, "read") from None
        except BotoCoreError as exc:
            raise self._error(exc, "read") from None
        return parse(body, self.location), str(reply["ETag"])

    def read(self) -> tuple[Doc, str]:
        """The valid document and its ETag."""
        result = self._get()
        assert result is not None
        return result

    def read_if_changed(self, etag: str | None) -> tuple[Doc, str] | None:
        """None when the stored ETag is still `etag` (304, nothing downloaded)."""
        return self._get(IfNoneMatch=etag) if etag else self._get()

    # -- writing
    def _put(self, doc: Doc, etag: str | None) -> str:
        condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        request = {"Bucket": self.bucket, "Key": self.key, "Body": dumps(doc),
                   "ContentType": CONTENT_TYPE, "ServerSideEncryption": "AES256"}
        try:
            if _put_takes(self.client, condition):
                reply = self.client.put_object(**request, **condition)
            else:
                reply = _put_with_headers(self.client, request, condition)
        except ClientError as exc:
            # NoSuchKey after If-Match: the document was deleted since we read it.
            if self._code(exc) in _CONFLICT or (etag and self._code(exc) == "NoSuchKey"):
                raise _Conflict() from None
            raise self._error(exc, "write") from None
        except ParamValidationError as exc:
            raise GlobalConfigError(f"cannot write {self.location}: this botocore does not "
                                    f"support S3 conditional writes (If-Match): {exc}") from None
        except BotoCoreError as exc:
            raise self._error(exc, "write") from None
        return str(reply["ETag"])

    def create(self, updated_by: str, doc: Doc | None = None) -> tuple[Doc, str]:
        """Write the first document (default: empty, epoch 0) only if none exists."""
        doc = validate(doc if doc is not None else create_document(updated_by),
                       f"new document for {self.location}")
        try:
            return doc, self._put(doc, None)
        except _Conflict:
            raise DocumentExists(f"{self.location} already exists: not overwritten") from None

    def _base(self, create: bool) -> tuple[Doc, str | None]:
        try:
            return self.read()
        except DocumentMissing:
            if not create:
                raise
            return create_document("hostkit"), None

    def plan(self, change: Change, updated_by: str, create: bool = False) -> UpdateResult:
        """What update() would write, without writing (check mode)."""
        before, etag = self._base(create)
        new, changed = apply_change(before, change, updated_by, source=self.location)
        return UpdateResult(new, etag, changed, before if etag else None, 0)

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(1 s, 50 ms * 2**(attempt-1))]."""
        return self._jitter(0.0, min(1.0, 0.05 * 2 ** (attempt - 1)))

    def update(self, change: Change, updated_by: str, max_attempts: int = 5,
               create: bool = False) -> UpdateResult:
        """Read, apply `change`, write with If-Match (If-None-Match: * when the document does
        not exist yet and `create`), epoch + 1. After a lost race: wait a little, re-read,
        re-apply, at most `max_attempts` writes. No write when the change changes nothing."""
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        for attempt in range(1, max_attempts + 1):
            before, etag = self._base(create)
            new, changed = apply_change(before, change, updated_by, source=self.location)
            if not changed:
                return UpdateResult(before, etag, False, before if etag else None, attempt - 1)
            try:
                new_etag = self._put(new, etag)
            except _Conflict:
                if attempt < max_attempts:
                    self._sleep(self.backoff(attempt))
                continue
            return UpdateResult(new, new_etag, True, before if etag else None, attempt)
        raise RetriesExhausted(f"{self.location}: gave up after {max_attempts} conditional "
                               "writes, each lost to a concurrent writer; nothing was written "
                               "by this change")


# --------------------------------------------------------------------------- readers


class EpochGuard:
    """Accepts a document only when it is valid and its epoch is not lower than the last
    accepted one (an equal epoch is the same version read again)."""

    def __init__(self, epoch: int | None = None) -> None:
        self.epoch = epoch

    def accept(self, doc: Any, source: str = "document") -> Doc:
        validate(doc, source)
        if self.epoch is not None and doc["epoch"] < self.epoch:
            raise StaleEpoch(source, doc["epoch"], self.epoch)
        self.epoch = doc["epoch"]
        return doc


class Reader:
    """Polls a store: `poll()` returns the new document when it changed and is accepted,
    None when unchanged (If-None-Match), and raises when the new one is refused or cannot
    be read; `doc` stays the last good document either way."""

    def __init__(self, store: GlobalConfig, guard: EpochGuard | None = None) -> None:
        self.store = store
        self.guard = guard or EpochGuard()
        self.doc: Doc | None = None
        self.etag: str | None = None

    def poll(self) -> Doc | None:
        result = self.store.read_if_changed(self.etag)
        if result is None:
            return None
        doc, etag = result
        self.guard.accept(doc, self.store.location)
        self.doc, self.etag = doc, etag
        return doc


# --------------------------------------------------------------------------- queries


def resolve(doc: Any, path: str) -> Any:
    """The value at a dotted path, e.g. 'products.hello.db.master' or 'products.hello.web.0'.
    Keys may contain dots (server ids such as web01.rack1.example.net): at each level the
    longest matching key wins. KeyError names the part of the path that is missing."""
    parts = path.split(".") if path else []
    if any(p == "" for p in parts):
        raise KeyError(f"'{path}' is not a dotted path")
    node, done = doc, []
    while parts:
        for size in range(len(parts), 0, -1):
            key = ".".join(parts[:size])
            if isinstance(node, Mapping) and key in node:
                node, done, parts = node[key], done + [key], parts[size:]
                break
            if isinstance(node, list) and size == 1 and key.isdigit() and int(key) < len(node):
                node, done, parts = node[int(key)], done + [key], parts[1:]
                break
        else:
            where = ".".join(done) or "the document"
            raise KeyError(f"'{path}': '{parts[0]}' not found in {where}")
    return node
