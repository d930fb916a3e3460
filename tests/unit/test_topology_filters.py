"""host_programs/common/topology.py and its filters: least-loaded AZ (deterministic ties), servers
of a role, a product's db and member addresses; also through Jinja as a template uses them."""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError
from ansible.plugins.loader import filter_loader

from filter_plugins import topology as filters
from host_programs.common import topology
from tests.unit.gc_helpers import SAMPLE, sample

REPO_ROOT = Path(__file__).resolve().parents[2]
ZONES = ["us-east-1a", "us-east-1b", "us-east-1c"]


def web(az: str, state: str = "in_service") -> dict:
    return {"role": "web", "products": ["hello"], "az": az, "address": "10.0.0.1",
            "state": state}


def servers(*zones: str) -> dict:
    return {f"w{i}": web(z) for i, z in enumerate(zones)}


def test_least_loaded_az_picks_the_emptiest_zone() -> None:
    assert topology.least_loaded_az(servers("us-east-1a", "us-east-1a", "us-east-1b"),
                                    "web", ZONES) == "us-east-1c"
    assert topology.least_loaded_az(servers("us-east-1a", "us-east-1c"), "web",
                                    ZONES) == "us-east-1b"


@pytest.mark.parametrize(("fleet", "zones", "expected"), [
    ((), ZONES, "us-east-1a"),                                         # all empty: first
    (("us-east-1a",), ZONES, "us-east-1b"),                            # b and c tie: b
    (("us-east-1a", "us-east-1b", "us-east-1c"), ZONES, "us-east-1a"),  # all one: first
    ((), ["us-east-1c", "us-east-1a", "us-east-1b"], "us-east-1c"),      # the order given
    (("us-east-1c",), ["us-east-1c", "us-east-1b", "us-east-1a"], "us-east-1b"),
])
def test_ties_go_to_the_zone_listed_first(fleet: tuple, zones: list, expected: str) -> None:
    assert topology.least_loaded_az(servers(*fleet), "web", zones) == expected


def test_only_the_role_and_the_listed_zones_count_and_fenced_servers_do_not() -> None:
    doc = sample()  # db servers in a, b, c, a; web and memcached in a
    assert topology.least_loaded_az(doc, "db", ZONES) == "us-east-1b"
    assert topology.least_loaded_az(doc, "web", ZONES) == "us-east-1b"
    doc["servers"]["hostkit-db-3"]["state"] = "fenced"  # c would tie with b if it counted
    assert topology.least_loaded_az(doc, "db", ZONES) == "us-east-1c"
    doc["servers"]["x"] = web("eu-west-1a")
    doc["servers"]["y"] = web("eu-west-1a")
    assert topology.least_loaded_az(doc, "web", ["eu-west-1a", "us-east-1a"]) == "us-east-1a"
    assert topology.least_loaded_az(doc, "web", ["eu-west-1a"]) == "eu-west-1a"


def test_least_loaded_az_from_inventory_hostvars() -> None:
    hostvars = [{"inventory_hostname": "a", "hostkit_role": "web", "hostkit_az": "us-east-1b"},
                {"inventory_hostname": "b", "hostkit_role": "web", "hostkit_az": "us-east-1a"}]
    assert topology.least_loaded_az(hostvars, "web", ZONES) == "us-east-1c"


def test_least_loaded_az_needs_zones() -> None:
    with pytest.raises(ValueError, match="no zones"):
        topology.least_loaded_az(SAMPLE, "web", [])
    with pytest.raises(AnsibleFilterError, match="^least_loaded_az: no zones to choose from$"):
        filters.least_loaded_az(SAMPLE, "web", [])
    with pytest.raises(AnsibleFilterError, match="expected a global config document"):
        filters.least_loaded_az("hello", "web", ZONES)


def test_servers_of() -> None:
    assert topology.servers_of(SAMPLE, "db") == [f"hostkit-db-{i}" for i in (1, 2, 3, 4)]
    assert topology.servers_of(SAMPLE, "web", "hello", "in_service") == ["hostkit-web-a1b2"]
    assert topology.servers_of(SAMPLE, "web", "shop") == []
    assert topology.servers_of(SAMPLE, state="draining") == []
    assert len(topology.servers_of(SAMPLE)) == 6


def test_product_db_address_and_server() -> None:
    assert topology.product_db_address(SAMPLE, "hello") == "172.18.0.11"
    assert topology.product_db_address(SAMPLE, "hello", "backup") == "172.18.0.14"
    assert topology.product_db_server(SAMPLE, "hello", "candidate") == "hostkit-db-2"


@pytest.mark.parametrize(("args", "message"), [
    (("shop",), r"^product_db_address: product 'shop' is not in the global config "
                r"\(products: hello\)$"),
    (("hello", "primary"), r"unknown db position 'primary' \(positions: master, candidate"),
])
def test_product_db_address_errors(args: tuple, message: str) -> None:
    with pytest.raises(AnsibleFilterError, match=message):
        filters.product_db_address(SAMPLE, *args)


def test_an_empty_position_is_an_error() -> None:
    doc = sample()
    doc["products"]["hello"]["db"]["backup"] = None
    with pytest.raises(AnsibleFilterError, match="product 'hello' has no db backup"):
        filters.product_db_address(doc, "hello", "backup")


def test_product_member_addresses_keep_the_list_order() -> None:
    doc = sample()
    doc["servers"]["hostkit-mc-0"] = dict(doc["servers"]["hostkit-mc-1"], address="172.18.0.20")
    doc["products"]["hello"]["memcached"] = ["hostkit-mc-1", "hostkit-mc-0"]
    assert topology.product_member_addresses(doc, "hello", "memcached") == [
        "172.18.0.21", "172.18.0.20"]
    assert topology.product_member_addresses(doc, "hello", "web") == ["172.18.0.7"]
    with pytest.raises(ValueError, match="unknown member kind 'db'"):
        topology.product_member_addresses(doc, "hello", "db")


def test_filters_in_a_template() -> None:
    """Loaded from filter_plugins/ by Ansible's loader, as a playbook would."""
    filter_loader.add_directory(str(REPO_ROOT / "filter_plugins"))
    from ansible.template import Templar, trust_as_template

    templar = Templar(loader=None, variables={"doc": SAMPLE, "zones": ZONES})

    def render(text: str) -> object:
        return templar.template(trust_as_template(text))

    assert render("{{ doc | product_db_address('hello') }}") == "172.18.0.11"
    assert render("{{ doc | least_loaded_az('web', zones) }}") == "us-east-1b"
    assert render("{{ doc | servers_of('db', 'hello') | length }}") == 4
    assert render("{{ doc | product_member_addresses('hello', 'memcached') | join(',') }}") == (
        "172.18.0.21")


def test_every_filter_is_documented() -> None:
    names = set(filters.FilterModule().filters())
    documented = {p.stem for p in (REPO_ROOT / "filter_plugins").glob("*.yml")}
    assert names <= documented, f"undocumented filters: {sorted(names - documented)}"
