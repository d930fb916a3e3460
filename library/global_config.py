#!/usr/bin/python
"""Ansible module: read or change the hostkit global config document in S3."""

from __future__ import annotations

import socket
from typing import Any

from ansible.module_utils.basic import AnsibleModule, env_fallback

try:
    from ansible.module_utils.global_config import (
        DB_POSITIONS,
        DocumentExists,
        DocumentMissing,
        GlobalConfig,
        GlobalConfigError,
        UpdateResult,
        chain,
        create_document,
        dumps,
        make_client,
        remove_cluster,
        remove_product,
        remove_server,
        rename_cluster,
        set_cluster,
        set_product,
        set_server,
    )
except ImportError as exc:  # shown by fail_json, not as a traceback
    IMPORT_ERROR: ImportError | None = exc
else:
    IMPORT_ERROR = None

DOCUMENTATION = r"""
module: global_config
author: hostkit maintainers
short_description: Read or change the hostkit global config document in S3
description:
  - Reads the global config document (the live topology of the fleet), or changes it with
    a safe read-modify-write - set or remove a server, set a database cluster's positions,
    set a product's cluster and its memcached and web servers.
  - Every write is a conditional PUT (C(If-Match) on the ETag that was read, or
    C(If-None-Match) set to C(*) when the document is created) that stores the epoch read plus
    one. A write that loses a race against another writer re-reads the document,
    re-applies the change and tries again, at most O(max_attempts) times.
  - The result is checked against the JSON Schema C(schemas/global_config.schema.json) and
    the cross-references (a product's master must be a known server of role db that lists
    the product, ...) before anything is written; a bad change fails naming the field.
  - A change that changes nothing writes nothing (C(changed=false), same epoch).
  - A web or memcached server is in the web or memcached list of each of its products
    exactly while its state is C(in_service) (it joins at the end of the list).
  - A database cluster serves every product that names it; its positions are repeated in
    each of those products' C(db), and every change of them moves all of the cluster's
    products in the same write.
  - A document written before database clusters existed (version 1) is read as version 2
    and stored as version 2 by the next write (epoch + 1).
  - Server, cluster and product changes given together are one write (one new epoch),
    applied servers first, then the cluster, then the product.
  - Run it where the AWS credentials are, normally the controller
    (C(delegate_to=localhost), C(run_once=true)).
version_added: "1.0.0"
extends_documentation_fragment:
  - hostkit_aws
options:
  state:
    description:
      - V(get) reads the document.
      - V(present) creates or updates the O(server) and/or the O(product).
      - V(absent) removes the O(server) (also from every product's lists and db positions)
        and/or the O(product) (also from every server's products).
    type: str
    choices: [get, present, absent]
    default: get
  server:
    description:
      - The server to set (O(state=present)) or remove (O(state=absent)).
      - With O(state=present), fields left out keep their value; a new server needs
        O(server.role), O(server.az) and O(server.address).
    type: dict
    suboptions: &server_suboptions
      id:
        description: Server id, the inventory host name (container name or EC2 Name tag).
        type: str
        required: true
      role:
        description: Server role.
        type: str
        choices: [web, db, memcached, monitor]
      products:
        description: Names of the products the server serves (each must be a known product).
        type: list
        elements: str
      az:
        description: Availability zone (EC2 placement, sandbox label, rack name).
        type: str
      address:
        description: Private IPv4 or IPv6 address.
        type: str
      state:
        description: Life-cycle state; a new server starts as V(provisioning).
        type: str
        choices: [provisioning, in_service, draining, fenced]
  servers:
    description:
      - Several servers to set or remove in the same read-modify-write (one read, at most one
        write), in order; each entry takes the suboptions of O(server).
      - Mutually exclusive with O(server).
    type: list
    elements: dict
    suboptions: *server_suboptions
  cluster:
    description:
      - The database cluster to set (O(state=present)) or remove (O(state=absent); refused
        while a product names it). With O(state=present) a missing cluster is created with
        empty positions.
    type: dict
    suboptions:
      name:
        description: Cluster name (lower case letters, digits and C(_)).
        type: str
        required: true
      db:
        description:
          - Positions to set, any of C(master), C(candidate), C(slave_candidate), C(backup),
            each a server id or C(null) to empty it. Positions not named keep their holder.
        type: dict
      renamed_from:
        description:
          - Rename this cluster to O(cluster.name) first (its products follow); nothing
            happens when no cluster has that name any more. Refused when O(cluster.name) is
            taken.
        type: str
  product:
    description:
      - The product to set (O(state=present)) or remove (O(state=absent)). With
        O(state=present) a missing product is created with no cluster and empty lists.
    type: dict
    suboptions:
      name:
        description: Product name.
        type: str
        required: true
      cluster:
        description:
          - The database cluster of the product (created when missing); an empty string for
            a product without a database. Left out, the product keeps its cluster. A product
            whose cluster has servers is never moved to another cluster (its data would not
            follow), the task fails instead.
        type: str
      db:
        description:
          - Positions of the product's cluster to set (a product without a cluster gets one
            named after it), as in O(cluster.db); every product of the cluster follows.
        type: dict
      memcached:
        description: The product's memcached servers, in order (replaces the list).
        type: list
        elements: str
      web:
        description: The product's web servers (replaces the list).
        type: list
        elements: str
  bucket:
    description:
      - S3 bucket of the document.
      - The C(HOSTKIT_GLOBAL_CONFIG_BUCKET) environment variable may also be used.
    type: str
    required: true
  key:
    description:
      - S3 key of the document.
      - The C(HOSTKIT_GLOBAL_CONFIG_KEY) environment variable may also be used.
    type: str
    default: global-config.json
  region:
    description:
      - AWS region of the bucket.
      - The C(AWS_REGION) or C(AWS_DEFAULT_REGION) environment variables may also be used.
    type: str
    aliases: [aws_region]
  updated_by:
    description:
      - Written into the document's C(updated_by) on a change.
      - Default C(ansible@<host name of the machine the module runs on>).
    type: str
  create:
    description:
      - When the document does not exist, start from an empty one and create it with
        C(If-None-Match) set to C(*) - with O(state=get), the empty document itself
        (epoch 0, C(changed=true)); otherwise the change applied to it (epoch 1). Without
        it a missing document is an error (a wrong key does not silently start a new fleet
        map).
    type: bool
    default: false
  max_attempts:
    description: Conditional writes to try before giving up when other writers keep winning.
    type: int
    default: 5
notes:
  - Writes need a botocore with S3 conditional writes (C(IfMatch) on C(put_object)).
  - Supports check mode and diff mode - the change is computed and validated against the
    current document, shown as a before/after diff of the JSON, and not written.
requirements:
  - jsonschema
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
"""

EXAMPLES = r"""
- name: Read the global config
  global_config:
    bucket: hostkit-sandbox-config
  delegate_to: localhost
  run_once: true
  register: __config

- name: A new web server is in service for hello (joins products.hello.web)
  global_config:
    bucket: hostkit-sandbox-config
    state: present
    server:
      id: hostkit-web-a1b2
      role: web
      products: [hello]
      az: us-east-1a
      address: 172.18.0.7
      state: in_service
    updated_by: launch_web@{{ inventory_hostname }}
  delegate_to: localhost

- name: Two products on one database cluster
  global_config:
    bucket: hostkit-sandbox-config
    state: present
    product:
      name: notes
      cluster: main
  delegate_to: localhost

- name: Failover - fence the old master, promote the candidate (every product of the cluster)
  global_config:
    bucket: hostkit-sandbox-config
    state: present
    server:
      id: hostkit-db-1
      state: fenced
    cluster:
      name: main
      db:
        master: hostkit-db-2
        candidate: hostkit-db-3
        slave_candidate: null
  delegate_to: localhost

- name: Several servers in one read-modify-write
  global_config:
    bucket: hostkit-sandbox-config
    state: present
    servers:
      - {id: hostkit-mc-1, role: memcached, products: [hello], az: us-east-1a, address: 172.30.0.5}
      - {id: hostkit-mc-2, role: memcached, products: [hello], az: us-east-1b, address: 172.30.0.6}
    updated_by: site.yml

- name: Decommission a server
  global_config:
    bucket: hostkit-sandbox-config
    state: absent
    server:
      id: hostkit-web-a1b2
  delegate_to: localhost
"""

RETURN = r"""
document:
  description: The document after the task (the one read for O(state=get) or a no-op; the
    one that would be written in check mode).
  returned: success
  type: dict
epoch:
  description: The epoch of RV(document) (the new one after a write).
  returned: success
  type: int
  sample: 13
etag:
  description: ETag of the stored document (of the one read, in check mode).
  returned: success
  type: str
  sample: '"3858f62230ac3c915f300c664312c63f"'
attempts:
  description: Conditional writes tried (more than 1 after lost races; 0 when nothing was
    written).
  returned: when state is present or absent
  type: int
  sample: 1
"""

SERVER_OPTIONS: dict[str, Any] = {
    "id": {"type": "str", "required": True},
    "role": {"type": "str", "choices": ["web", "db", "memcached", "monitor"]},
    "products": {"type": "list", "elements": "str"},
    "az": {"type": "str"},
    "address": {"type": "str"},
    "state": {"type": "str", "choices": ["provisioning", "in_service", "draining", "fenced"]},
}

ARGUMENT_SPEC: dict[str, Any] = {
    "state": {"type": "str", "choices": ["get", "present", "absent"], "default": "get"},
    "server": {"type": "dict", "options": SERVER_OPTIONS},
    "servers": {"type": "list", "elements": "dict", "options": SERVER_OPTIONS},
    "cluster": {"type": "dict", "options": {
        "name": {"type": "str", "required": True},
        "db": {"type": "dict"},
        "renamed_from": {"type": "str"},
    }},
    "product": {"type": "dict", "options": {
        "name": {"type": "str", "required": True},
        "cluster": {"type": "str"},
        "db": {"type": "dict"},
        "memcached": {"type": "list", "elements": "str"},
        "web": {"type": "list", "elements": "str"},
    }},
    "bucket": {"type": "str", "required": True,
               "fallback": (env_fallback, ["HOSTKIT_GLOBAL_CONFIG_BUCKET"])},
    "key": {"type": "str", "default": "global-config.json",
            "fallback": (env_fallback, ["HOSTKIT_GLOBAL_CONFIG_KEY"])},
    "region": {"type": "str", "aliases": ["aws_region"],
               "fallback": (env_fallback, ["AWS_REGION", "AWS_DEFAULT_REGION"])},
    "endpoint_url": {"type": "str", "fallback": (env_fallback, ["AWS_ENDPOINT_URL"])},
    "updated_by": {"type": "str"},
    "create": {"type": "bool", "default": False},
    "max_attempts": {"type": "int", "default": 5},
}


class ParameterError(Exception):
    """The task's parameters do not describe a change."""


def _server_change(server: dict[str, Any], state: str) -> Any:
    if state == "absent":
        return lambda doc: remove_server(doc, server["id"])
    fields = {k: server.get(k) for k in ("role", "products", "az", "address", "state")}
    return lambda doc: set_server(doc, server["id"], **fields)


def _check_positions(what: str, db: dict[str, Any] | None) -> None:
    if db is None:
        return
    unknown = sorted(set(db) - set(DB_POSITIONS))
    if unknown:
        raise ParameterError(f"{what}: unknown db position(s) {', '.join(unknown)} "
                             f"(positions: {', '.join(DB_POSITIONS)})")
    bad = [p for p, v in db.items() if v is not None and not isinstance(v, str)]
    if bad:
        raise ParameterError(f"{what}: db.{bad[0]} must be a server id or null")


def _cluster_change(cluster: dict[str, Any], state: str) -> Any:
    name = cluster["name"]
    if state == "absent":
        return lambda doc: remove_cluster(doc, name)
    _check_positions(f"cluster '{name}'", cluster.get("db"))
    old = cluster.get("renamed_from")

    def change(doc: Any) -> Any:
        if old and old in (doc.get("clusters") or {}):
            doc, _ = rename_cluster(doc, old, name)
        return set_cluster(doc, name, db=cluster.get("db"))
    return change


def _product_change(product: dict[str, Any], state: str) -> Any:
    if state == "absent":
        return lambda doc: remove_product(doc, product["name"])
    db = product.get("db")
    _check_positions(f"product '{product['name']}'", db)
    fields: dict[str, Any] = {"db": db, "memcached": product.get("memcached"),
                              "web": product.get("web")}
    if product.get("cluster") is not None:  # "": the product has no database
        fields["cluster"] = product["cluster"] or None
    return lambda doc: set_product(doc, product["name"], **fields)


def build_change(params: dict[str, Any]) -> Any:
    """The change the parameters describe (servers, then the cluster, then the product),
    or ParameterError."""
    state = params["state"]
    changes = []
    if params.get("server"):
        changes.append(_server_change(params["server"], state))
    for server in params.get("servers") or []:
        changes.append(_server_change(server, state))
    if params.get("cluster"):
        changes.append(_cluster_change(params["cluster"], state))
    if params.get("product"):
        changes.append(_product_change(params["product"], state))
    if not changes:
        raise ParameterError(f"state={state} needs a server, servers, a cluster or a product "
                             "to change")
    return chain(*changes)


def _diff(result: UpdateResult) -> dict[str, str]:
    before = dumps(result.before).decode() if result.before is not None else ""
    return {"before": before, "after": dumps(result.doc).decode(),
            "before_header": "global config (stored)", "after_header": "global config (new)"}


def _get(store: GlobalConfig, create: bool, updated_by: str, check_mode: bool) -> dict[str, Any]:
    """The stored document; with `create`, an empty one (epoch 0) when there is none."""
    try:
        doc, etag = store.read()
        changed = False
    except DocumentMissing:
        if not create:
            raise
        if check_mode:
            doc, etag = create_document(updated_by), None
        else:
            try:
                doc, etag = store.create(updated_by)
            except DocumentExists:  # another run created it meanwhile
                doc, etag = store.read()
        changed = True
    return {"changed": changed, "document": doc, "epoch": doc["epoch"], "etag": etag}


def run(params: dict[str, Any], store: GlobalConfig, check_mode: bool = False,
        diff: bool = False) -> dict[str, Any]:
    """The module's work, without AnsibleModule: the result dict, or an exception
    (ParameterError, GlobalConfigError) whose message is the failure."""
    updated_by = params.get("updated_by") or f"ansible@{socket.gethostname()}"
    if params["state"] == "get":
        return _get(store, params["create"], updated_by, check_mode)
    change = build_change(params)
    if check_mode:
        result = store.plan(change, updated_by, create=params["create"])
    else:
        result = store.update(change, updated_by, max_attempts=params["max_attempts"],
                              create=params["create"])
    out = {"changed": result.changed, "document": result.doc, "epoch": result.epoch,
           "etag": result.etag, "attempts": result.attempts}
    if diff and result.changed:
        out["diff"] = _diff(result)
    return out


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           mutually_exclusive=[("server", "servers")])
    if IMPORT_ERROR is not None:
        module.fail_json(msg=f"cannot import module_utils/global_config.py: {IMPORT_ERROR}")
    params = module.params
    if params["max_attempts"] < 1:
        module.fail_json(msg="max_attempts must be at least 1")
    try:
        client = make_client(params["region"], params["endpoint_url"])
        store = GlobalConfig(client, params["bucket"], params["key"])
        result = run(params, store, check_mode=module.check_mode, diff=module._diff)
    except (ParameterError, GlobalConfigError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
