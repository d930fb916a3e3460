"""Planning a web launch: count, zones, names."""

from __future__ import annotations

import pytest

from module_utils.launch import LaunchPlanError, plan_web_launch

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
    from module_utils.launch import traffic_sites

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
    from module_utils.launch import next_phase, timeline

    lines = timeline({"start": 100.0, "plan": 101.0, "create": 104.0, "publish": 130.0},
                     [{"connect": 110.0, "roles": 120.0, "smoke": 121.0},
                      {"connect": 111.0, "roles": 125.0, "smoke": 126.0}])
    assert [line.split()[:2] for line in lines] == [
        ["plan", "1.0"], ["create", "3.0"], ["connect", "7.0"], ["roles", "14.0"],
        ["smoke", "1.0"], ["publish", "4.0"], ["total", "30.0"]]
    assert next_phase(["connect"], ["connect", "roles", "smoke"]) == "roles"


def test_haproxy_stats_csv_gives_the_servers_up() -> None:
    from module_utils.launch import haproxy_servers_up

    csv = ("# pxname,svname,qcur,status,weight\n"
           "www,FRONTEND,,OPEN,\n"
           "site_hello,hostkit-web-1,0,UP,1\n"
           "site_hello,hostkit-web-3,0,DOWN,1\n"
           "site_hello,hostkit-web-4,0,UP 1/2,1\n"
           "site_hello,BACKEND,0,UP,2\n")
    assert haproxy_servers_up(csv) == ["hostkit-web-1"]
    assert haproxy_servers_up("") == []


def test_dns_records_per_domain() -> None:
    from module_utils.launch import traffic_records

    sites = [{"name": "hello", "domains": ["a.test", "www.a.test"],
              "servers": [{"name": "w1", "address": "10.0.0.1"}]}]
    assert traffic_records(sites) == [
        {"domain": "a.test", "servers": [{"name": "w1", "address": "10.0.0.1"}]},
        {"domain": "www.a.test", "servers": [{"name": "w1", "address": "10.0.0.1"}]}]

def test_initial_db_positions_only_for_products_without_a_master() -> None:
    from module_utils.launch import initial_db_positions

    groups = {"product_hello": ["d1", "d2", "w1"], "dbrole_master": ["d1"],
              "dbrole_candidate": ["d2"], "product_shop": ["d3"], "dbrole_backup": ["d3"]}
    products = [{"name": "hello", "database": {"name": "hello"}},
                {"name": "shop", "database": {"name": "shop"}}, {"name": "static"}]
    assert initial_db_positions(groups, products, {"products": {}}) == [
        {"name": "hello", "db": {"master": "d1", "candidate": "d2", "slave_candidate": None,
                                 "backup": None}}]
    live = {"products": {"hello": {"db": {"master": "d2"}}}}
    assert initial_db_positions(groups, products, live) == []


def test_two_hosts_in_one_position_is_an_error() -> None:
    from module_utils.launch import initial_db_positions

    groups = {"product_hello": ["d1", "d2"], "dbrole_master": ["d1", "d2"]}
    with pytest.raises(ValueError, match="product 'hello': db position master is held by 2"):
        initial_db_positions(groups, [{"name": "hello", "database": {"name": "h"}}], {})


def test_fleet_table_lists_servers_and_masters() -> None:
    from module_utils.launch import fleet_table

    lines = fleet_table({"epoch": 3, "servers": {"d1": {"role": "db", "products": ["hello"],
                                                        "az": "a", "address": "10.0.0.9",
                                                        "state": "in_service"}},
                         "products": {"hello": {"db": {"master": "d1"}, "web": []}}},
                        "http://127.0.0.1:8080/")
    assert lines[0] == "site: http://127.0.0.1:8080/"
    assert lines[2].split() == ["d1", "db", "hello", "a", "10.0.0.9", "in_service"]
    assert lines[3] == "product hello: db master d1, web 0, memcached 0 (epoch 3)"


def test_fleet_table_says_how_to_ask_for_each_product() -> None:
    from module_utils.launch import fleet_table

    products = [{"name": "hello", "domains": ["hello.test", "www.hello.test"]},
                {"name": "quiet", "domains": []}]
    lines = fleet_table({"epoch": 1, "servers": {}, "products": {}}, "http://127.0.0.1:8080/",
                        products)
    assert lines[:2] == ["site: http://127.0.0.1:8080/",
                         "hello: curl -H 'Host: hello.test' http://127.0.0.1:8080/"]
    assert not any(line.startswith("quiet:") for line in lines)
    assert fleet_table({"servers": {}}, "", products)[0].startswith("name ")


def test_the_last_web_server_of_a_product_is_named() -> None:
    from module_utils.launch import sole_web_products

    fleet = doc(**{"w1": web("a", products=("hello", "shop")), "w2": web("b")})
    assert sole_web_products(fleet, "w1") == ["shop"]
    assert sole_web_products(fleet, "w2") == []
    assert sole_web_products(fleet, "nobody") == []
