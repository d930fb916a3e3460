#!/usr/bin/python
"""Ansible module: the multivalue-answer A records of one name, one per server."""

from __future__ import annotations

from typing import Any

from ansible.module_utils.basic import AnsibleModule, env_fallback

DOCUMENTATION = r"""
module: route53_multivalue
author: hostkit maintainers
short_description: Set the multivalue-answer A records of a name, one per server
description:
  - Makes the Route53 multivalue-answer A records of O(name) exactly the given O(servers),
    one record set per server (its set identifier is the server's name), in one change
    batch, so resolvers see all of them or none of the change.
  - Record sets of servers no longer listed are deleted; an empty O(servers) deletes all
    multivalue records of the name. Other records of the zone are never touched.
  - C(amazon.aws.route53) has no multivalue-answer option, hence this module.
version_added: "1.0.0"
extends_documentation_fragment:
  - hostkit_aws
options:
  zone_id:
    description: Id of the hosted zone (with or without the C(/hostedzone/) prefix).
    type: str
    required: true
  name:
    description: Record name (fully qualified; the trailing dot is optional).
    type: str
    required: true
  servers:
    description: The servers that answer for the name.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Server name, used as the record's set identifier.
        type: str
        required: true
      address:
        description: IPv4 address of the server.
        type: str
        required: true
  ttl:
    description: TTL of the records in seconds; low, so a removed server stops getting traffic soon.
    type: int
    default: 30
  region:
    description: AWS region for the API client (Route53 is global).
    type: str
    default: us-east-1
notes:
  - Supports check mode and diff mode.
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
"""

EXAMPLES = r"""
- name: hello.example.com answers with the two web servers in service
  route53_multivalue:
    zone_id: Z0123456789ABCDEFGHIJ
    name: hello.example.com
    servers:
      - {name: hostkit-web-1, address: 10.0.1.5}
      - {name: hostkit-web-2, address: 10.0.2.7}
    ttl: 30
  delegate_to: localhost
"""

RETURN = r"""
changes:
  description: The change batch submitted (or that would be, in check mode).
  returned: always
  type: list
  elements: dict
change_id:
  description: Route53's id of the change, when one was submitted.
  returned: when changed and not in check mode
  type: str
records:
  description: The set identifiers and addresses of the name after the run.
  returned: always
  type: dict
  sample: {"hostkit-web-1": "10.0.1.5"}
"""

try:
    from ansible.module_utils.aws import aws_client
    from ansible.module_utils.route53_multivalue import (
        Route53Error,
        apply_changes,
        existing_records,
        plan_changes,
        wanted_records,
        zone_record_sets,
    )
    IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - reported by the module
    IMPORT_ERROR = exc

ARGUMENT_SPEC: dict[str, Any] = {
    "zone_id": {"type": "str", "required": True},
    "name": {"type": "str", "required": True},
    "servers": {"type": "list", "elements": "dict", "required": True, "options": {
        "name": {"type": "str", "required": True},
        "address": {"type": "str", "required": True},
    }},
    "ttl": {"type": "int", "default": 30},
    "region": {"type": "str", "default": "us-east-1"},
    "endpoint_url": {"type": "str", "fallback": (env_fallback, ["AWS_ENDPOINT_URL"])},
}


def make_client(region: str, endpoint_url: str | None) -> Any:
    """module_utils/aws.py's client: its retry policy, the default patience."""
    return aws_client("route53", region, endpoint_url)


def run(params: dict[str, Any], client: Any, check_mode: bool) -> dict[str, Any]:
    zone = params["zone_id"].split("/")[-1]
    have = existing_records(zone_record_sets(client, zone, params["name"]), params["name"])
    want = wanted_records(params["name"], params["servers"], params["ttl"])
    changes = plan_changes(have, want)
    result: dict[str, Any] = {
        "changed": bool(changes), "changes": changes,
        "records": {r.identifier: r.address for r in want},
        "diff": {"before": {r.identifier: r.address for r in have},
                 "after": {r.identifier: r.address for r in want}},
    }
    if changes and not check_mode:
        result["change_id"] = apply_changes(client, zone, params["name"], changes)
    return result


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if IMPORT_ERROR is not None:
        module.fail_json(msg=f"cannot import module_utils/route53_multivalue.py: {IMPORT_ERROR}")
    try:
        client = make_client(module.params["region"], module.params["endpoint_url"])
        result = run(module.params, client, module.check_mode)
    except (Route53Error, ValueError) as exc:
        module.fail_json(msg=str(exc))
    if not module._diff:
        result.pop("diff")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
