"""Planning launches and placements: web launches (count, zones, names), database clusters
from products.yml, where a database server goes in its cluster, errant transactions."""

from __future__ import annotations

from typing import Any

import pytest

from plugin_utils.launch import LaunchPlanError, plan_web_launch

ZONES = ["us-east-1a", "us-east-1b", "us-east-1c"]


def doc(**servers: dict) -> dict:
    return {"epoch": 1, "servers": servers, "products": {}}


def web(az: str, state: str = "in_service", products: tuple = ("hello",)) -> dict:
    return {"role": "web", "az": az, "state": state, "products": list(products)}


def test_default_adds_one_server_in_the_least_loaded_zone() -> None:
    plan = plan_web_launch(doc(**{"hostkit-web-1": web("us-east-1a"),
                                  "hostkit-web-2": web("us-east-1b")}), "hello", ZONES)
    assert plan["count"] == 3
    assert plan["current"] == ["hostkit-web-1", "hostkit-web-2"]
    assert plan["new"] == [{"name": "hostkit-web-3", "az": "us-east-1c"}]


def test_count_is_the_target_so_a_rerun_launches_nothing() -> None:
    fleet = doc(**{"hostkit-web-1": web("us-east-1a"), "hostkit-web-2": web("us-east-1b")})
    assert plan_web_launch(fleet, "hello", ZONES, count=2)["new"] == []
    assert plan_web_launch(fleet, "hello", ZONES, count="1")["new"] == []


def test_several_servers_spread_over_zones_and_take_free_names() -> None:
    plan = plan_web_launch(doc(**{"hostkit-web-2": web("us-east-1a")}), "hello", ZONES,
                           taken=["hostkit-web-1"], count=4)
    assert plan["new"] == [{"name": "hostkit-web-3", "az": "us-east-1b"},
                           {"name": "hostkit-web-4", "az": "us-east-1c"},
                           {"name": "hostkit-web-5", "az": "us-east-1a"}]


def test_servers_of_other_products_and_draining_ones_are_not_current() -> None:
    plan = plan_web_launch(doc(**{"hostkit-web-1": web("us-east-1a", products=("shop",)),
                                  "hostkit-web-2": web("us-east-1a", state="draining")}),
                           "hello", ZONES)
    assert plan["current"] == []
    assert plan["new"] == [{"name": "hostkit-web-3", "az": "us-east-1b"}]


def test_a_forced_zone_is_used() -> None:
    plan = plan_web_launch(doc(), "hello", ZONES, az="us-east-1c", count=2)
    assert [n["az"] for n in plan["new"]] == ["us-east-1c", "us-east-1c"]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"az": "eu-west-1a"}, "az 'eu-west-1a' is not one of"),
    ({"count": 0}, "count must be at least 1"),
    ({"count": "two"}, "count must be a whole number"),
])
def test_bad_arguments_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(LaunchPlanError, match=message):
        plan_web_launch(doc(), "hello", ZONES, **kwargs)


def test_no_zones_is_an_error() -> None:
    with pytest.raises(LaunchPlanError, match="no availability zones"):
        plan_web_launch(doc(), "hello", [])


def test_traffic_sites_list_only_web_servers_in_service() -> None:
    from plugin_utils.launch import traffic_sites

    document = {
        "servers": {"w1": {"role": "web", "address": "10.0.0.1", "state": "in_service"},
                    "w2": {"role": "web", "address": "10.0.0.2", "state": "draining"}},
        "products": {"hello": {"web": ["w1", "w2"]}},
    }
    products = [{"name": "hello", "domains": ["a.test"], "healthcheck": "/healthz"},
                {"name": "shop", "domains": ["b.test"]}]
    assert traffic_sites(document, products) == [
        {"name": "hello", "domains": ["a.test"], "healthcheck": "/healthz",
         "servers": [{"name": "w1", "address": "10.0.0.1"}]}]


def test_timeline_counts_each_phase_from_the_previous_one() -> None:
    from plugin_utils.launch import next_phase, timeline

    lines = timeline({"start": 100.0, "plan": 101.0, "create": 104.0, "publish": 130.0},
                     [{"connect": 110.0, "roles": 120.0, "smoke": 121.0},
                      {"connect": 111.0, "roles": 125.0, "smoke": 126.0}])
    assert [line.split()[:2] for line in lines] == [
        ["plan", "1.0"], ["create", "3.0"], ["connect", "7.0"], ["roles", "14.0"],
        ["smoke", "1.0"], ["publish", "4.0"], ["total", "30.0"]]
    assert next_phase(["connect"], ["connect", "roles", "smoke"]) == "roles"


def test_haproxy_stats_csv_gives_the_servers_up() -> None:
    from plugin_utils.launch import haproxy_servers_up

    csv = ("# pxname,svname,qcur,status,weight\n"
           "www,FRONTEND,,OPEN,\n"
           "site_hello,hostkit-web-1,0,UP,1\n"
           "site_hello,hostkit-web-3,0,DOWN,1\n"
           "site_hello,hostkit-web-4,0,UP 1/2,1\n"
           "site_hello,BACKEND,0,UP,2\n")
    assert haproxy_servers_up(csv) == ["hostkit-web-1"]
    assert haproxy_servers_up("") == []


def test_dns_records_per_domain() -> None:
    from plugin_utils.launch import traffic_records

    sites = [{"name": "hello", "domains": ["a.test", "www.a.test"],
              "servers": [{"name": "w1", "address": "10.0.0.1"}]}]
    assert traffic_records(sites) == [
        {"domain": "a.test", "servers": [{"name": "w1", "address": "10.0.0.1"}]},
        {"domain": "www.a.test", "servers": [{"name": "w1", "address": "10.0.0.1"}]}]

def test_cluster_plan_seeds_only_clusters_without_a_master() -> None:
    from plugin_utils.launch import cluster_plan

    groups = {"product_hello": ["d1", "d2", "w1"], "dbrole_master": ["d1"],
              "dbrole_candidate": ["d2"], "product_shop": ["d3"], "dbrole_backup": ["d3"]}
    products = [{"name": "hello", "database": {"name": "hello"}},
                {"name": "shop", "database": {"name": "shop"}}, {"name": "static"}]
    assert cluster_plan(groups, products, {"products": {}}) == {
        "renames": [], "products": [{"name": "hello", "cluster": "hello"},
                                    {"name": "shop", "cluster": "shop"}],
        "clusters": [{"name": "hello", "db": {"master": "d1", "candidate": "d2",
                                              "slave_candidate": None, "backup": None}}]}
    live = {"clusters": {"hello": {"db": {"master": "d2"}}},
            "products": {"hello": {"cluster": "hello"}, "shop": {"cluster": None}}}
    assert cluster_plan(groups, products, live) == {
        "renames": [], "products": [{"name": "shop", "cluster": "shop"}], "clusters": []}


def test_cluster_plan_renames_an_upgraded_cluster_and_adds_a_product_to_it() -> None:
    from plugin_utils.launch import cluster_plan

    # a version 1 document upgraded: hello's cluster is named after it; products.yml now puts
    # hello and notes on cluster main
    live = {"clusters": {"hello": {"db": {"master": "d1", "candidate": "d2"}}},
            "products": {"hello": {"cluster": "hello"}}}
    products = [{"name": "hello", "database": {"name": "hello", "cluster": "main"}},
                {"name": "notes", "database": {"name": "notes", "cluster": "main"}}]
    assert cluster_plan({}, products, live) == {
        "renames": [["hello", "main"]], "products": [{"name": "notes", "cluster": "main"}],
        "clusters": []}


def test_cluster_plan_never_moves_a_database() -> None:
    from plugin_utils.launch import cluster_plan

    live = {"clusters": {"a": {"db": {"master": "d1"}}, "b": {"db": {"master": "d5"}}},
            "products": {"hello": {"cluster": "a"}, "shop": {"cluster": "b"}}}
    products = [{"name": "hello", "database": {"name": "hello", "cluster": "b"}},
                {"name": "shop", "database": {"name": "shop", "cluster": "b"}}]
    with pytest.raises(ValueError, match="product 'hello': its database is on cluster 'a' "
                                         r"\(global config\), products.yml names cluster 'b'"):
        cluster_plan({}, products, live)


def test_two_hosts_in_one_position_is_an_error() -> None:
    from plugin_utils.launch import cluster_plan

    groups = {"product_hello": ["d1", "d2"], "dbrole_master": ["d1", "d2"]}
    with pytest.raises(ValueError, match="cluster 'hello': db position master is held by 2"):
        cluster_plan(groups, [{"name": "hello", "database": {"name": "h"}}], {})


def test_fleet_table_lists_servers_and_masters() -> None:
    from plugin_utils.launch import fleet_table

    lines = fleet_table({"epoch": 3, "servers": {"d1": {"role": "db", "products": ["hello"],
                                                        "az": "a", "address": "10.0.0.9",
                                                        "state": "in_service"}},
                         "products": {"hello": {"db": {"master": "d1"}, "web": []}}},
                        "http://127.0.0.1:8080/")
    assert lines[0] == "site: http://127.0.0.1:8080/"
    assert lines[2].split() == ["d1", "db", "hello", "a", "10.0.0.9", "in_service"]
    assert lines[3] == "product hello: db master d1, web 0, memcached 0 (epoch 3)"


def test_fleet_table_says_how_to_ask_for_each_product() -> None:
    from plugin_utils.launch import fleet_table

    products = [{"name": "hello", "domains": ["hello.test", "www.hello.test"]},
                {"name": "quiet", "domains": []}]
    lines = fleet_table({"epoch": 1, "servers": {}, "products": {}}, "http://127.0.0.1:8080/",
                        products)
    assert lines[:2] == ["site: http://127.0.0.1:8080/",
                         "hello: curl -H 'Host: hello.test' http://127.0.0.1:8080/"]
    assert not any(line.startswith("quiet:") for line in lines)
    assert fleet_table({"servers": {}}, "", products)[0].startswith("name ")


def test_the_last_web_server_of_a_product_is_named() -> None:
    from plugin_utils.launch import sole_web_products

    fleet = doc(**{"w1": web("a", products=("hello", "shop")), "w2": web("b")})
    assert sole_web_products(fleet, "w1") == ["shop"]
    assert sole_web_products(fleet, "w2") == []
    assert sole_web_products(fleet, "nobody") == []


def placed(**positions: str | None) -> dict[str, Any]:
    """A global config with cluster main (hello, notes) and db-1..4."""
    db = {"master": None, "candidate": None, "slave_candidate": None, "backup": None,
          **positions}
    servers = {f"db-{i}": {"role": "db", "products": ["hello", "notes"], "az": "a",
                           "address": f"10.0.0.{i}", "state": "in_service"} for i in range(1, 5)}
    servers["web-1"] = {"role": "web", "products": ["hello"], "az": "a", "address": "10.1.0.1",
                        "state": "in_service"}
    return {"epoch": 9, "servers": servers, "clusters": {"main": {"db": db}},
            "products": {"hello": {"cluster": "main", "db": db, "memcached": [], "web": []},
                         "notes": {"cluster": "main", "db": db, "memcached": [], "web": []}}}


def test_a_fenced_old_master_takes_the_free_position() -> None:
    from plugin_utils.launch import db_place_plan

    doc = placed(master="db-2", candidate="db-3", backup="db-4")
    doc["servers"]["db-1"]["state"] = "fenced"
    plan = db_place_plan(doc, "db-1")
    assert plan == {"host": "db-1", "cluster": "main", "products": ["hello", "notes"],
                    "position": "slave_candidate", "source": "db-3", "fenced": True,
                    "known": True, "positions": {"master": "db-2", "candidate": "db-3",
                                                 "slave_candidate": "db-1", "backup": "db-4"}}


def test_a_diverged_replica_keeps_its_position_and_a_new_server_needs_its_cluster() -> None:
    from plugin_utils.launch import db_place_plan

    doc = placed(master="db-1", candidate="db-2", slave_candidate="db-3", backup="db-4")
    assert db_place_plan(doc, "db-3")["position"] == "slave_candidate"
    with pytest.raises(ValueError, match="db-5 is in no database cluster of the global config"):
        db_place_plan(doc, "db-5")
    with pytest.raises(ValueError, match="cluster 'main' has no free position"):
        db_place_plan(doc, "db-5", cluster="main")
    with pytest.raises(ValueError, match="db-1 is the master of cluster 'main'"):
        db_place_plan(doc, "db-1")


def test_a_new_server_fills_the_first_free_position_whose_source_exists() -> None:
    from plugin_utils.launch import db_place_plan

    doc = placed(master="db-1", backup="db-4")
    plan = db_place_plan(doc, "db-5", cluster="main")
    assert (plan["position"], plan["source"], plan["known"]) == ("candidate", "db-1", False)
    with pytest.raises(ValueError, match="cluster 'main' has no candidate for a "
                                         "slave_candidate to replicate from"):
        db_place_plan(doc, "db-5", "slave_candidate", "main")
    with pytest.raises(ValueError, match="position backup of cluster 'main' is held by db-4"):
        db_place_plan(doc, "db-5", "backup", "main")
    with pytest.raises(ValueError, match="position must be one of"):
        db_place_plan(doc, "db-5", "master", "main")
    with pytest.raises(ValueError, match="web-1 is a web server"):
        db_place_plan(doc, "web-1", cluster="main")
    with pytest.raises(ValueError, match="cluster 'other' is not in the global config"):
        db_place_plan(doc, "db-5", cluster="other")


def test_a_placed_server_never_becomes_its_own_source_nor_leaves_the_master_empty() -> None:
    from plugin_utils.launch import db_place_plan

    doc = placed(master="db-1", candidate="db-2", backup="db-4")
    with pytest.raises(ValueError, match="db-2 is the candidate of cluster 'main', which a "
                                         "slave_candidate replicates from"):
        db_place_plan(doc, "db-2", "slave_candidate")
    with pytest.raises(ValueError, match="db-1 is the master of cluster 'main'"):
        db_place_plan(doc, "db-1", "backup")
    with pytest.raises(ValueError, match="db-1 is the master of cluster 'main'"):
        db_place_plan(doc, "db-1", "slave_candidate")
    # moving the backup to the free slave_candidate position is allowed: the candidate
    # is its source and the backup position is freed
    plan = db_place_plan(doc, "db-4", "slave_candidate")
    assert (plan["source"], plan["positions"]["backup"]) == ("db-2", None)


def test_errant_transactions_of_an_old_master() -> None:
    from plugin_utils.launch import errant_transactions

    # db-1 (server 1) was master up to 0-1-100; the new master db-2 received up to 0-1-99 and
    # has written 0-2-101.. since: 0-1-100 reached only the old master
    old = {"current": "0-1-100", "binlog_state": "0-1-100", "slave": "", "binlog": "0-1-100"}
    new = {"current": "0-2-140", "binlog_state": "0-1-99,0-2-140", "slave": "0-1-99",
           "binlog": "0-2-140"}
    assert errant_transactions(old, new) == "0-1-100"
    caught_up = dict(new, binlog_state="0-1-100,0-2-140")
    assert errant_transactions(old, caught_up) == ""
    # a server seeded from a copy knows the copy's history only per domain: not errant
    seeded = {"current": "0-3-50", "binlog_state": "", "slave": "0-3-50", "binlog": ""}
    assert errant_transactions(seeded, new) == ""


def test_plan_a_replacement_database_server() -> None:
    from plugin_utils.launch import plan_role_launch

    doc = placed(master="db-2", candidate="db-3", backup="db-4")
    doc["servers"]["db-1"]["state"] = "fenced"
    plan = plan_role_launch(doc, "db", ZONES, taken=["hostkit-db-1"], cluster="main")
    assert plan == {"name": plan["name"], "role": "db",
                    "az": plan["az"], "products": ["hello", "notes"], "cluster": "main",
                    "position": "slave_candidate", "source": "db-3"}
    assert plan["name"] == "hostkit-db-2"  # db-1 of the inventory is taken
    with pytest.raises(LaunchPlanError, match="needs its cluster"):
        plan_role_launch(doc, "db", ZONES)


def test_plan_a_memcached_server_for_the_pool_and_a_monitor() -> None:
    from plugin_utils.launch import plan_role_launch

    doc = placed(master="db-1")
    doc["servers"]["mc-1"] = {"role": "memcached", "products": ["hello", "notes"],
                              "az": "us-east-1a", "address": "10.2.0.1", "state": "in_service"}
    plan = plan_role_launch(doc, "memcached", ZONES)
    assert (plan["name"], plan["az"], plan["products"]) == (
        "hostkit-mc-1", "us-east-1b", ["hello", "notes"])
    assert plan_role_launch(doc, "memcached", ZONES, products=["notes"])["products"] == ["notes"]
    with pytest.raises(LaunchPlanError, match=r"unknown product\(s\) shop"):
        plan_role_launch(doc, "memcached", ZONES, products=["shop"])
    monitor = plan_role_launch(doc, "monitor", ZONES, taken=["hostkit-monitor"], az="us-east-1c")
    assert (monitor["name"], monitor["az"], monitor["products"]) == (
        "hostkit-monitor-1", "us-east-1c", [])
    with pytest.raises(LaunchPlanError, match="role must be one of db, memcached, monitor"):
        plan_role_launch(doc, "web", ZONES)
