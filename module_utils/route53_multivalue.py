"""Route53 multivalue-answer A records: one record set per server, all under one name.

Pure planning (which record sets to create, change or delete) plus a thin boto3 layer; no
Ansible imports, so it is unit-tested directly. library/route53_multivalue.py is the module.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


class Route53Error(Exception):
    """A Route53 call failed; the message names the zone and the record."""


@dataclass(frozen=True)
class Record:
    name: str  # fully qualified, with the trailing dot
    identifier: str
    address: str
    ttl: int

    def resource(self) -> dict[str, Any]:
        return {"Name": self.name, "Type": "A", "SetIdentifier": self.identifier,
                "MultiValueAnswer": True, "TTL": self.ttl,
                "ResourceRecords": [{"Value": self.address}]}


def fqdn(name: str) -> str:
    return name.rstrip(".").lower() + "."


def wanted_records(name: str, servers: Iterable[Mapping[str, Any]], ttl: int) -> list[Record]:
    """One record per server ({name|identifier, address})."""
    out = []
    for server in servers:
        identifier = str(server.get("identifier") or server.get("name") or "")
        if not identifier or not server.get("address"):
            raise ValueError(f"record {fqdn(name)}: every server needs a name and an address, "
                             f"got {dict(server)}")
        out.append(Record(fqdn(name), identifier, str(server["address"]), int(ttl)))
    return out


def existing_records(record_sets: Iterable[Mapping[str, Any]], name: str) -> list[Record]:
    """The multivalue A record sets of `name` among a zone's record sets."""
    out = []
    for rs in record_sets:
        if (rs.get("Type") == "A" and rs.get("SetIdentifier") and rs.get("MultiValueAnswer")
                and fqdn(rs.get("Name", "")) == fqdn(name)):
            values = [r["Value"] for r in rs.get("ResourceRecords") or []]
            out.append(Record(fqdn(name), rs["SetIdentifier"], values[0] if values else "",
                              int(rs.get("TTL", 0))))
    return out


def plan_changes(existing: Iterable[Record], wanted: Iterable[Record]) -> list[dict[str, Any]]:
    """The change batch that turns `existing` into `wanted` (empty when they agree)."""
    have = {r.identifier: r for r in existing}
    want = {r.identifier: r for r in wanted}
    changes = [{"Action": "DELETE", "ResourceRecordSet": r.resource()}
               for ident, r in sorted(have.items()) if ident not in want]
    changes += [{"Action": "UPSERT", "ResourceRecordSet": r.resource()}
                for ident, r in sorted(want.items()) if have.get(ident) != r]
    return changes


def zone_record_sets(client: Any, zone_id: str, name: str) -> list[dict[str, Any]]:
    """Record sets of the zone from `name` on (paginated), those of `name` only."""
    out: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"HostedZoneId": zone_id, "StartRecordName": fqdn(name),
                              "StartRecordType": "A"}
    while True:
        try:
            reply = client.list_resource_record_sets(**kwargs)
        except Exception as exc:  # botocore ClientError / EndpointConnectionError
            raise Route53Error(f"zone {zone_id}: cannot list records of {fqdn(name)}: "
                               f"{exc}") from exc
        page = reply.get("ResourceRecordSets") or []
        out += [rs for rs in page if fqdn(rs.get("Name", "")) == fqdn(name)]
        if not reply.get("IsTruncated") or (page and fqdn(page[-1]["Name"]) != fqdn(name)):
            return out
        kwargs.update(StartRecordName=reply["NextRecordName"],
                      StartRecordType=reply["NextRecordType"])
        if reply.get("NextRecordIdentifier"):
            kwargs["StartRecordIdentifier"] = reply["NextRecordIdentifier"]


def apply_changes(client: Any, zone_id: str, name: str, changes: list[dict[str, Any]],
                  comment: str = "hostkit") -> str | None:
    """Submit the batch (all or nothing); returns the change id, None when empty."""
    if not changes:
        return None
    try:
        reply = client.change_resource_record_sets(
            HostedZoneId=zone_id, ChangeBatch={"Comment": comment, "Changes": changes})
    except Exception as exc:
        raise Route53Error(f"zone {zone_id}: cannot change records of {fqdn(name)}: "
                           f"{exc}") from exc
    return str(reply["ChangeInfo"]["Id"])
