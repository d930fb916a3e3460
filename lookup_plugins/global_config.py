"""Lookup plugin: values from the hostkit global config document in S3, read once per run."""

from __future__ import annotations

import fcntl
import hashlib
import json
from pathlib import Path
from typing import Any

from ansible import constants as C
from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase
from ansible.utils.display import Display

try:
    from host_programs.common.atomic_files import write_atomic
    from module_utils.global_config import (
        DocumentMissing,
        GlobalConfig,
        GlobalConfigError,
        make_client,
        resolve,
        validate,
    )
except ImportError as exc:  # reported when the lookup runs, so that ansible-doc still works
    _IMPORT_ERROR: ImportError | None = exc
else:
    _IMPORT_ERROR = None

DOCUMENTATION = r"""
name: global_config
author: hostkit maintainers
version_added: "1.0.0"
short_description: Values from the hostkit global config document in S3
description:
  - Returns the value at each dotted path of the global config document (the live topology
    of the fleet), for example C(products.hello.db.master) or C(servers). List items are
    addressed by their index (C(products.hello.web.0)); a key that itself contains dots
    (a server id such as C(web01.rack1.example.net)) is found too, the longest matching
    key winning.
  - The document is checked (JSON Schema and cross-references) before any value is
    returned; an invalid document is an error.
  - The document is read from S3 once per playbook run and kept for the rest of it, in
    memory and in a file of the run's local temporary directory (which Ansible removes at
    the end of the run), so the task forks of a run share one read. Use O(cache=false)
    after the run itself changed the document.
options:
  _terms:
    description: Dotted paths into the document; several paths give several values.
    required: true
    type: list
    elements: str
  bucket:
    description:
      - S3 bucket of the document. Required, from the option, the variable or the
        environment.
    type: str
    env:
      - name: HOSTKIT_GLOBAL_CONFIG_BUCKET
    vars:
      - name: hostkit_global_config_bucket
  key:
    description: S3 key of the document.
    type: str
    default: global-config.json
    env:
      - name: HOSTKIT_GLOBAL_CONFIG_KEY
    vars:
      - name: hostkit_global_config_key
  region:
    description: AWS region of the bucket.
    type: str
    env:
      - name: AWS_REGION
      - name: AWS_DEFAULT_REGION
    vars:
      - name: hostkit_global_config_region
      - name: hostkit_region
  endpoint_url:
    description:
      - S3 endpoint to use instead of AWS's, for example the sandbox's
        C(http://127.0.0.1:15000).
    type: str
    env:
      - name: HOSTKIT_GLOBAL_CONFIG_ENDPOINT_URL
      - name: AWS_ENDPOINT_URL
    vars:
      - name: hostkit_global_config_endpoint_url
      - name: hostkit_aws_endpoint_url
  aws_environment:
    description:
      - AWS credentials as environment variables (C(AWS_ACCESS_KEY_ID),
        C(AWS_SECRET_ACCESS_KEY), C(AWS_SESSION_TOKEN); other keys are ignored), for
        example the inventory's C(hostkit_aws_environment), which plays pass to modules
        as C(environment:) - a lookup runs in the controller's own process and does not
        see C(environment:). Empty - boto3 finds credentials the usual way.
    type: dict
    default: {}
    vars:
      - name: hostkit_aws_environment
  on_missing:
    description:
      - What to do when a path is not in the document, or when the document does not
        exist at all.
      - V(error) fails; V(warn) shows a warning and skips the term; V(skip) skips the term
        silently (it adds nothing to the result).
      - A missing bucket, denied access or an invalid document are always errors.
    type: str
    choices: [error, warn, skip]
    default: error
  cache:
    description:
      - Use the copy read earlier in this run. V(false) reads S3 again (and keeps the new
        copy for the rest of the run).
    type: bool
    default: true
notes:
  - Credentials come from O(aws_environment), else the usual boto3 sources (environment,
    profile, instance role).
  - The plugin imports C(module_utils/global_config.py) from the repository that contains it
    and needs boto3 and jsonschema on the controller.
seealso:
  - module: global_config
"""

EXAMPLES = r"""
- name: The database master of hello
  ansible.builtin.debug:
    msg: "{{ lookup('global_config', 'products.hello.db.master') }}"

- name: Several values at once, as a list
  ansible.builtin.set_fact:
    __hello: "{{ query('global_config', 'products.hello.db.master', 'products.hello.memcached') }}"

- name: The whole document, for filters such as product_db_address
  ansible.builtin.set_fact:
    __db_host: "{{ lookup('global_config', '') | product_db_address('hello') }}"

- name: A product that may not be in the document yet
  ansible.builtin.set_fact:
    __shop_web: "{{ query('global_config', 'products.shop.web', on_missing='skip') }}"
"""

RETURN = r"""
_raw:
  description:
    - One value per path found, in the order of the paths. The empty path (C('')) is the
      whole document.
  type: list
  elements: raw
"""

display = Display()

# (bucket, key, region, endpoint) -> document; one process's copy of the run's read.
_MEMORY: dict[tuple[str, str, str, str], dict[str, Any]] = {}


def _cache_dir() -> Path:
    """The run's local temporary directory: created by the ansible-playbook process, shared
    by its task forks, removed when the run ends."""
    return Path(C.DEFAULT_LOCAL_TMP)


def _cache_file(ident: tuple[str, str, str, str]) -> Path:
    digest = hashlib.sha256("\0".join(ident).encode()).hexdigest()[:16]
    return _cache_dir() / f"hostkit-global-config-{digest}.json"


class LookupModule(LookupBase):
    def _read_s3(self, bucket: str, key: str, region: str, endpoint: str) -> dict[str, Any]:
        client = make_client(region or None, endpoint or None,
                             credentials=self.get_option("aws_environment") or None)
        doc, _ = GlobalConfig(client, bucket, key).read()
        return doc

    def _document(self, ident: tuple[str, str, str, str], use_cache: bool) -> dict[str, Any]:
        """The run's copy: memory, else the run's cache file, else S3 (and both caches).
        The file lock makes concurrent forks wait for the first one's read."""
        if use_cache and ident in _MEMORY:
            return _MEMORY[ident]
        path = _cache_file(ident)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            doc = None
            if use_cache and path.exists():
                try:
                    doc = validate(json.loads(path.read_bytes()), str(path))
                except (ValueError, GlobalConfigError):
                    doc = None  # a damaged cache file is read again from S3
            if doc is None:
                doc = self._read_s3(*ident)
                write_atomic(path, json.dumps(doc).encode(), mode=0o600)
        _MEMORY[ident] = doc
        return doc

    def _missing(self, mode: str, message: str) -> None:
        if mode == "error":
            raise AnsibleLookupError(message)
        if mode == "warn":
            display.warning(message)

    def run(self, terms: list[Any], variables: dict[str, Any] | None = None,
            **kwargs: Any) -> list[Any]:
        if _IMPORT_ERROR is not None:
            raise AnsibleLookupError("global_config: cannot import module_utils/global_config.py "
                                     "(the repository is installed in the virtualenv by "
                                     f"scripts/bootstrap.sh): {_IMPORT_ERROR}")
        self.set_options(var_options=variables, direct=kwargs)
        bucket = self.get_option("bucket")
        if not bucket:
            raise AnsibleLookupError("global_config: no bucket: set bucket=..., the variable "
                                     "hostkit_global_config_bucket or HOSTKIT_GLOBAL_CONFIG_BUCKET")
        ident = (str(bucket), str(self.get_option("key")), str(self.get_option("region") or ""),
                 str(self.get_option("endpoint_url") or ""))
        mode = self.get_option("on_missing")
        paths = [str(t) for t in terms]
        try:
            doc = self._document(ident, self.get_option("cache"))
        except DocumentMissing as exc:
            self._missing(mode, f"global_config: {exc}")
            return []
        except GlobalConfigError as exc:
            raise AnsibleLookupError(f"global_config: {exc}") from None
        values = []
        for path in paths:
            try:
                values.append(resolve(doc, path))
            except KeyError as exc:
                self._missing(mode, f"global_config: s3://{ident[0]}/{ident[1]} (epoch "
                                    f"{doc['epoch']}): {exc.args[0]}")
        return values
