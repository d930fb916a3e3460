"""Jinja filters of addresses: one given out from a subnet (the sandbox provider's ranges), and
a list of addresses and networks with those inside another of the list left out (a firewall
set must not hold overlapping entries)."""

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


def hostkit_collapse_networks(items: Iterable[str] | None) -> list[str]:
    """The addresses and networks of `items` without those that another one covers, in their
    first order (IPv4 and IPv6 alike; an address is a network of one)."""
    networks = []
    for item in items or []:
        text = str(item).strip()
        if not text:
            continue
        try:
            networks.append((text, ipaddress.ip_network(text, strict=False)))
        except ValueError:
            raise ValueError(f"hostkit_collapse_networks: '{text}' is not an address or a "
                             "network") from None
    out: list[str] = []
    for index, (text, network) in enumerate(networks):
        covered = any(other != network and other.version == network.version
                      and network.subnet_of(other) for _, other in networks)
        repeated = any(other == network for _, other in networks[:index])
        if not covered and not repeated:
            out.append(text)
    return out


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"hostkit_free_address": hostkit_free_address,
                "hostkit_collapse_networks": hostkit_collapse_networks}
