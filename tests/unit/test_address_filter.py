"""The address filters: addresses handed out in the sandbox, sources collapsed."""

from __future__ import annotations

import pytest

from filter_plugins.addresses import AddressPoolExhausted, hostkit_free_address


def test_first_address_skips_the_reserved_ones() -> None:
    assert hostkit_free_address("172.30.16.0/24") == "172.30.16.4"


def test_addresses_in_use_are_skipped_with_or_without_prefix() -> None:
    used = ["172.30.16.4/16", "172.30.16.5", "", "10.0.0.1"]
    assert hostkit_free_address("172.30.16.0/24", used) == "172.30.16.6"


def test_a_freed_address_is_given_again() -> None:
    assert hostkit_free_address("172.30.16.0/24", ["172.30.16.5"]) == "172.30.16.4"


def test_a_full_subnet_says_so() -> None:
    used = [f"172.30.16.{n}" for n in range(4, 7)]
    with pytest.raises(AddressPoolExhausted, match=r"172\.30\.16\.0/29"):
        hostkit_free_address("172.30.16.0/29", used)


def test_a_malformed_subnet_is_refused() -> None:
    with pytest.raises(ValueError):
        hostkit_free_address("172.30.16.1/24")


def test_collapse_networks_drops_what_another_entry_covers() -> None:
    from filter_plugins.addresses import hostkit_collapse_networks

    assert hostkit_collapse_networks(
        ["172.30.16.0/24", "172.30.20.0/24", "172.30.20.4", "172.30.0.3", "172.30.0.3",
         "fd00::/64", "fd00::5", "10.0.0.0/8", "10.1.0.0/16"]) == [
        "172.30.16.0/24", "172.30.20.0/24", "172.30.0.3", "fd00::/64", "10.0.0.0/8"]
    assert hostkit_collapse_networks([]) == []
    with pytest.raises(ValueError, match="'db-1' is not an address or a network"):
        hostkit_collapse_networks(["db-1"])
