"""plugin_utils/db_topology.py and its filters: positions of each cluster (live, else from the
inventory), checks that name cluster and host, replication plans, seed donors and server ids."""

from __future__ import annotations

from typing import Any

import pytest
from ansible.errors import AnsibleFilterError

from filter_plugins.db_topology import FilterModule
from plugin_utils import db_topology as topo

PRODUCTS: list[dict[str, Any]] = [
    {"name": "hello", "database": {"name": "hello", "user": "hello"}},
    {"name": "shop", "database": {"name": "shop_db", "user": "shop"}},
    {"name": "static"},
]


def groups(**extra: list[str]) -> dict[str, list[str]]:
    base = {
        "all": ["db-1", "db-2", "db-3", "db-4", "web-1"],
        "role_db": ["db-1", "db-2", "db-3", "db-4"],
        "role_web": ["web-1"],
        "product_hello": ["db-1", "db-2", "db-3", "db-4", "web-1"],
        "dbrole_master": ["db-1"],
        "dbrole_candidate": ["db-2"],
        "dbrole_slave_candidate": ["db-3"],
        "dbrole_backup": ["db-4"],
    }
    base.update(extra)
    return base


FULL = {"master": "db-1", "candidate": "db-2", "slave_candidate": "db-3", "backup": "db-4"}


def test_four_positions_from_the_inventory() -> None:
    assert topo.build_topology(groups(), PRODUCTS) == {"hello": FULL}
    assert topo.topology_problems(groups(), PRODUCTS) == []


def test_products_without_database_servers_are_left_out() -> None:
    topology = topo.build_topology(groups(product_static=["web-1"]), PRODUCTS)
    assert set(topology) == {"hello"}


def test_single_master_and_partial_clusters() -> None:
    g = groups(role_db=["db-1", "db-4"], product_hello=["db-1", "db-4"], dbrole_candidate=[],
               dbrole_slave_candidate=[])
    assert topo.build_topology(g, PRODUCTS) == {"hello": {
        "master": "db-1", "candidate": None, "slave_candidate": None, "backup": "db-4"}}


def test_two_masters_name_cluster_and_hosts() -> None:
    g = groups(role_db=["db-1", "db-2", "db-3", "db-4", "db-5"],
               product_hello=["db-1", "db-2", "db-3", "db-4", "db-5"],
               dbrole_master=["db-1", "db-5"])
    problems = topo.topology_problems(g, PRODUCTS)
    assert problems == ["cluster 'hello': two masters: 'db-1', 'db-5'"]
    with pytest.raises(topo.TopologyError, match="cluster 'hello': two masters: 'db-1', 'db-5'"):
        topo.build_topology(g, PRODUCTS)


def test_replica_whose_source_is_missing() -> None:
    g = groups(role_db=["db-1", "db-3", "db-4"], product_hello=["db-1", "db-3", "db-4"],
               dbrole_candidate=[])
    assert topo.topology_problems(g, PRODUCTS) == [
        "cluster 'hello': host 'db-3' is the slave_candidate but the cluster has no candidate "
        "for it to replicate from"]
    g = groups(dbrole_master=[], role_db=["db-2", "db-3", "db-4"],
               product_hello=["db-2", "db-3", "db-4"])
    problems = topo.topology_problems(g, PRODUCTS)
    assert "cluster 'hello': host 'db-2' is the candidate but the cluster has no master for it " \
           "to replicate from" in problems
    assert "cluster 'hello': host 'db-4' is the backup but the cluster has no master for it " \
           "to replicate from" in problems


def test_product_without_database_name() -> None:
    products = [{"name": "hello", "database": {}}]
    assert topo.topology_problems(groups(), products) == [
        "product 'hello': has database servers ('db-1', 'db-2', 'db-3', 'db-4') but no database "
        "name (field 'database.name')"]
    products = [{"name": "hello", "database": {"name": " ", "user": "hello"}}]
    assert len(topo.topology_problems(groups(), products)) == 1
    assert "product 'hello', which has no database" in topo.topology_problems(
        groups(), [{"name": "hello"}])[0]


def test_hosts_without_unknown_or_several_positions() -> None:
    g = groups(dbrole_backup=[], dbrole_slave=["db-4"], dbrole_candidate=["db-2", "db-3"],
               dbrole_slave_candidate=["db-3"])
    problems = topo.topology_problems(g, PRODUCTS)
    assert "host 'db-4': unknown database position 'slave' (label io.hostkit.db_role / tag " \
           "DbRole: one of master, candidate, slave_candidate, backup)" in problems
    assert "cluster 'hello': host 'db-3' holds two positions (candidate and slave_candidate)" \
        in problems
    assert any(p.startswith("cluster 'hello': database server 'db-4' has no database position")
               for p in problems)
    assert "cluster 'hello': more than one candidate: 'db-2', 'db-3'" in problems


def test_a_host_labelled_master_twice_over_is_a_second_master() -> None:
    g = groups(dbrole_master=["db-1", "db-4"])
    problems = topo.topology_problems(g, PRODUCTS)
    assert "cluster 'hello': two masters: 'db-1', 'db-4'" in problems
    assert "cluster 'hello': host 'db-4' holds two positions (master and backup)" in problems


def test_position_without_role_db_and_db_server_of_no_product() -> None:
    g = groups(role_db=["db-1", "db-2", "db-3"], product_hello=["db-1", "db-2", "db-3"])
    assert "host 'db-4': has database position 'backup' but is not a database server " \
           "(group role_db)" in topo.topology_problems(g, PRODUCTS)
    g = groups(role_db=["db-1", "db-2", "db-3", "db-4", "db-9"])
    assert "host 'db-9': is a database server (group role_db) of no product (label " \
           "io.hostkit.products / tag Product)" in topo.topology_problems(g, PRODUCTS)
    g = groups(product_blog=["db-1"])
    assert "host 'db-1': serves the database of product 'blog', which platform_products does " \
           "not describe" in topo.topology_problems(g, PRODUCTS)


def test_live_positions_replace_the_labels() -> None:
    live = {"hello": {"db": {"master": "db-2", "candidate": "db-3", "slave_candidate": None,
                             "backup": "db-4"}}}
    # after a failover: db-1 still carries the master label, the live document wins
    assert topo.build_topology(groups(), PRODUCTS, live)["hello"] == {
        "master": "db-2", "candidate": "db-3", "slave_candidate": None, "backup": "db-4"}
    # a cluster the document does not know yet is seeded from the labels
    assert topo.build_topology(groups(), PRODUCTS, {"hello": {"db": dict.fromkeys(FULL)}}) == {
        "hello": FULL}
    bad = {"hello": {"master": "db-7", "primary": "db-1"}, "blog": {"master": "db-1"}}
    problems = topo.topology_problems(groups(), PRODUCTS, bad)
    assert "cluster 'blog': in the live positions but no product of platform_products names " \
           "it (field 'database.cluster')" in problems
    assert "cluster 'hello': host 'db-7' (master in the live positions) is not a database " \
           "server (group role_db)" in problems
    assert any("unknown database position 'primary'" in p for p in problems)
    twice = {"hello": {"master": "db-1", "candidate": "db-1"}}
    assert "cluster 'hello': host 'db-1' holds two positions (master and candidate)" in \
        topo.topology_problems(groups(), PRODUCTS, twice)


def test_products_on_one_cluster_share_its_servers() -> None:
    products = [{"name": "hello", "database": {"name": "hello", "cluster": "main"}},
                {"name": "notes", "database": {"name": "notes", "cluster": "main"}}]
    g = groups(product_notes=["db-1", "db-2", "db-3", "db-4"])
    assert topo.build_topology(g, products) == {"main": FULL}
    assert topo.cluster_products(products + PRODUCTS) == {
        "main": ["hello", "notes"], "hello": ["hello"], "shop": ["shop"]}
    plan = topo.replication_plan({"main": FULL}, "db-3", products)
    assert plan == {"cluster": "main", "position": "slave_candidate", "source": "db-2",
                    "products": ["hello", "notes"], "peers": ["db-1", "db-2", "db-3", "db-4"]}


def test_a_server_belongs_to_one_cluster() -> None:
    g = groups(role_db=["db-1", "db-2", "db-3", "db-4", "db-5"], product_shop=["db-2", "db-5"])
    problems = topo.topology_problems(g, PRODUCTS)
    assert "host 'db-2': serves products of several database clusters (hello, shop); a " \
           "server belongs to one cluster" in problems
    # two clusters side by side are fine
    g = groups(role_db=["db-1", "db-2", "db-3", "db-4", "db-5", "db-6"],
               product_shop=["db-5", "db-6"], dbrole_master=["db-1", "db-5"],
               dbrole_candidate=["db-2", "db-6"])
    assert topo.build_topology(g, PRODUCTS) == {
        "hello": FULL, "shop": {"master": "db-5", "candidate": "db-6", "slave_candidate": None,
                                "backup": None}}


def test_non_mapping_inputs() -> None:
    assert topo.topology_problems([], PRODUCTS) == [
        "the inventory groups must be a mapping of group name to hosts"]
    assert topo.topology_problems(groups(), PRODUCTS, ["x"]) == [
        "the live positions must map cluster names to positions"]
    assert "cluster 'hello': the live positions must map positions" in \
        topo.topology_problems(groups(), PRODUCTS, {"hello": "db-1"})[0]


def test_group_names_follow_ansible() -> None:
    assert topo.group_name("product_", "my-shop.v2") == "product_my_shop_v2"


def test_replication_plan() -> None:
    topology = {"hello": dict(FULL)}
    assert topo.replication_plan(topology, "db-1", PRODUCTS) == {
        "cluster": "hello", "position": "master", "source": None, "products": ["hello"],
        "peers": ["db-1", "db-2", "db-3", "db-4"]}
    assert topo.replication_plan(topology, "db-3")["source"] == "db-2"
    assert topo.replication_plan(topology, "db-4")["source"] == "db-1"
    assert topo.replication_plan(topology, "web-1") == {
        "cluster": None, "position": None, "source": None, "products": [], "peers": []}


def test_seed_donors() -> None:
    topology = {"hello": dict(FULL)}
    # candidate and backup copy from the replicas below the master, the master last; never
    # from a server below themselves (the slave candidate follows the new, empty candidate)
    assert topo.seed_donors(topology, "db-2") == ["db-4", "db-1"]
    assert topo.seed_donors(topology, "db-4") == ["db-3", "db-2", "db-1"]
    # the slave candidate copies from its source, the candidate (a replica), never from the
    # master or the backup, which can be ahead of the candidate
    assert topo.seed_donors(topology, "db-3") == ["db-2"]
    assert topo.seed_donors(topology, "db-1") == []
    small = {"hello": {"master": "db-1", "candidate": None, "slave_candidate": None,
                       "backup": "db-4"}}
    assert topo.seed_donors(small, "db-4") == ["db-1"]


def test_server_id_from_address() -> None:
    assert topo.server_id("172.30.0.3") == 2887647235
    assert topo.server_id("10.0.0.1") != topo.server_id("10.0.1.0")
    for bad in ("0.0.0.0", "fd00::1", "db-1", ""):
        with pytest.raises(ValueError, match="server_id"):
            topo.server_id(bad)


def test_filters() -> None:
    filters = FilterModule().filters()
    assert filters["db_topology"](groups(), PRODUCTS) == {"hello": FULL}
    with pytest.raises(AnsibleFilterError, match="two masters"):
        filters["db_topology"](groups(dbrole_master=["db-1", "db-2"], dbrole_candidate=[]),
                               PRODUCTS)
    assert filters["db_topology_problems"](groups(), PRODUCTS) == []
    assert filters["db_replication_plan"]({"hello": FULL}, "db-2")["source"] == "db-1"
    assert filters["db_seed_donors"]({"hello": FULL}, "db-3") == ["db-2"]
    assert filters["db_server_id"]("10.0.0.1") == 167772161
    with pytest.raises(AnsibleFilterError, match="mysql_server_id"):
        filters["db_server_id"]("nope")
    assert filters["mysql_host_pattern"]("10.1.0.0/16") == "10.1.0.0/255.255.0.0"
    assert filters["mysql_host_pattern"]("10.1.0.0/16", "mysql", "8.0.36") == "10.1.0.0/16"
    with pytest.raises(AnsibleFilterError, match="neither an address"):
        filters["mysql_host_pattern"]("%")
    with pytest.raises(AnsibleFilterError, match="flavor"):
        filters["mysql_host_pattern"]("10.0.0.1", "postgres")
    assert filters["mysql_privileges"]("monitor") == ["PROCESS", "BINLOG MONITOR", "SLAVE MONITOR"]
    with pytest.raises(AnsibleFilterError, match="kind"):
        filters["mysql_privileges"]("app")
