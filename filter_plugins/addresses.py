"""Jinja filter that gives out addresses from a subnet (the sandbox provider's web ranges)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

# The first addresses of a subnet are kept back, like a cloud subnet's (network, router,
# DNS, reserved); the broadcast address is never handed out.
RESERVED_AT_START = 4


class AddressPoolExhausted(ValueError):
    """Every address of the subnet is taken."""


def hostkit_free_address(cidr: str, used: Iterable[str] | None = None) -> str:
    """The lowest address of `cidr` not in `used` (addresses, optionally with a /prefix)."""
    network = ipaddress.ip_network(cidr, strict=True)
    taken = {ipaddress.ip_interface(str(item)).ip for item in used or [] if item}
    for index, address in enumerate(network.hosts()):
        if index < RESERVED_AT_START - 1:  # hosts() already skips the network address
            continue
        if address not in taken:
            return str(address)
    raise AddressPoolExhausted(f"no free address left in {cidr} ({len(taken)} in use)")


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"hostkit_free_address": hostkit_free_address}
