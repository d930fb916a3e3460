"""The inventory filters: addresses of hosts from facts, ansible_host or the name."""

from filter_plugins.inventory import hostkit_addresses


def test_addresses_prefer_facts_then_ansible_host_then_name() -> None:
    hostvars = {
        "web1": {"ansible_facts": {"default_ipv4": {"address": "10.0.0.5"}},
                 "ansible_host": "203.0.113.9"},
        "web2": {"ansible_host": "10.0.0.6"},
        "web3": {"ansible_facts": {}},
    }
    assert hostkit_addresses(["web1", "web2", "web3"], hostvars) == ["10.0.0.5", "10.0.0.6", "web3"]


def test_addresses_keep_order_and_drop_repeats() -> None:
    hostvars = {"a": {"ansible_host": "10.0.0.1"}, "b": {"ansible_host": "10.0.0.1"}}
    assert hostkit_addresses(["b", "a", "b"], hostvars) == ["10.0.0.1"]
    assert hostkit_addresses(None, hostvars) == []
