"""host_programs/config_agent/runtime_settings.py and its filter hostkit_runtime_settings:
the one render function of runtime.json, shared by the product role (first copy) and the
config agent."""

from __future__ import annotations

import json

import pytest
from ansible.errors import AnsibleFilterError
from ansible.plugins.filter.core import to_nice_json

from filter_plugins.runtime_settings import hostkit_runtime_settings
from host_programs.config_agent import runtime_settings as rs
from tests.unit.gc_helpers import sample

HELLO = {"name": "hello", "domains": ["hello.test"], "memcached": True,
         "database": {"name": "hello_db", "user": "hello_app"}}


def test_render_takes_the_master_and_the_memcached_servers_from_the_document() -> None:
    assert rs.render(sample(), HELLO) == {
        "db": {"host": "172.18.0.11", "port": 3306, "name": "hello_db", "user": "hello_app"},
        "memcached": ["172.18.0.21:11211"], "source": "global_config"}


def test_database_name_and_user_default_to_the_product_name() -> None:
    settings = rs.render(sample(), {"name": "hello", "database": {}}, db_port=3307)
    assert settings["db"] == {"host": "172.18.0.11", "port": 3307, "name": "hello",
                              "user": "hello"}
    assert settings["memcached"] == []  # the product does not use memcached


def test_a_product_without_a_database_has_db_null() -> None:
    assert rs.render(sample(), {"name": "hello", "memcached": True}, memcached_port=11311) == {
        "db": None, "memcached": ["172.18.0.21:11311"], "source": "global_config"}


def test_memcached_servers_keep_the_order_of_the_document_and_ipv6_is_bracketed() -> None:
    doc = sample()
    doc["servers"]["hostkit-mc-2"] = dict(doc["servers"]["hostkit-mc-1"], address="fd00::5")
    doc["products"]["hello"]["memcached"] = ["hostkit-mc-2", "hostkit-mc-1"]
    assert rs.render(doc, HELLO)["memcached"] == ["[fd00::5]:11211", "172.18.0.21:11211"]


@pytest.mark.parametrize(("product", "doc_change", "message"), [
    ({"name": "shop"}, None, "product 'shop' is not in the global config (products: hello)"),
    (HELLO, "no master", "product 'hello' has no db master in the global config"),
    (dict(HELLO, database="hello"), None, "product 'hello': field 'database' must be a mapping"),
    ("hello", None, "expected a product mapping with a 'name'"),
])
def test_errors_name_the_product(product, doc_change, message: str) -> None:
    doc = sample()
    if doc_change == "no master":
        doc["products"]["hello"]["db"]["master"] = None
    with pytest.raises((KeyError, ValueError)) as info:
        rs.render(doc, product)
    assert message in info.value.args[0]
    with pytest.raises(AnsibleFilterError, match="^hostkit_runtime_settings: "):
        hostkit_runtime_settings(doc, product)


def test_a_bad_port_names_the_product() -> None:
    with pytest.raises(ValueError, match="product 'hello': the database port must be a port"):
        rs.render(sample(), HELLO, db_port="mysql")


def test_the_agent_writes_the_bytes_the_product_role_writes() -> None:
    """The product role writes `settings | to_nice_json(indent=2)` plus a newline; the agent
    writes rs.dumps(settings): the same bytes, so the agent's first poll after the role
    changes nothing (and reloads nothing)."""
    for product in (HELLO, {"name": "hello"}):
        settings = hostkit_runtime_settings(sample(), product)
        assert rs.dumps(settings) == (to_nice_json(settings, indent=2) + "\n").encode()
        assert json.loads(rs.dumps(settings)) == settings


def test_digest() -> None:
    assert rs.digest(b"{}\n") == ("sha256:ca3d163bab055381827226140568f3bef7eaac187cebd76878e0b63e"
                                  "9e442356")
