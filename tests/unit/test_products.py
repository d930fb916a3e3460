"""plugin_utils/products.py (product validation and selection) and its Jinja filters."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from filter_plugins.products import FilterModule, hostkit_product_problems, hostkit_select_products
from plugin_utils.products import product_problems, product_users, select_products

REPO_ROOT = Path(__file__).resolve().parents[2]

GOOD = {
    "name": "shop",
    "domains": ["shop.example.test", "www.shop.example.test"],
    "source": {"type": "git", "repo": "https://git.example.test/shop.git", "ref": "main"},
    "docroot": "public",
    "users": [{"name": "shop_dev", "groups": ["shop"], "ssh_keys": [], "sudo": []}],
    "cron": [{"name": "nightly", "schedule": "0 3 * * *", "command": "php bin/nightly.php"}],
    "apache_directives": ["Header set X-Frame-Options DENY"],
}


def product(**changes):
    """A copy of GOOD with fields replaced (a value of None removes the field)."""
    result = copy.deepcopy(GOOD)
    for key, value in changes.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    return result


def only(problems: list[str]) -> str:
    assert len(problems) == 1, problems
    return problems[0]


def test_good_product_has_no_problems():
    assert product_problems([GOOD]) == []
    assert product_problems([]) == []


def test_sandbox_products_are_valid():
    data = yaml.safe_load(
        (REPO_ROOT / "inventory/sandbox/group_vars/all/products.yml").read_text()
    )
    assert product_problems(data["platform_products"]) == []


@pytest.mark.parametrize("domains", [None, [], "shop.example.test"])
def test_missing_domains(domains):
    problem = only(product_problems([product(domains=domains)]))
    assert "product 'shop'" in problem and "'domains'" in problem


def test_invalid_domain_named():
    problem = only(product_problems([product(domains=["ok.test", "bad_host!.test"])]))
    assert "'bad_host!.test'" in problem


def test_duplicate_name():
    assert only(product_problems([GOOD, GOOD])) == "product 'shop': duplicate product name"


@pytest.mark.parametrize("name", [None, "", "Shop", "1shop", "shop-web", 7])
def test_invalid_name(name):
    problem = only(product_problems([product(name=name)]))
    assert problem.startswith("product #1: field 'name'")


def test_not_a_list_or_mapping():
    assert "must be a list" in only(product_problems({"name": "shop"}))
    assert "must be a list" in only(product_problems("shop"))
    assert only(product_problems(["shop"])) == "product #1: is not a mapping"


def test_unknown_cron_user():
    job = {"name": "sync", "schedule": "* * * * *", "command": "true", "user": "mallory"}
    problem = only(product_problems([product(cron=[job])]))
    assert "cron job sync" in problem
    assert "unknown user 'mallory'" in problem
    assert "shop_dev" in problem  # the known users are listed


def test_cron_user_may_be_the_product_user_or_an_extra_user():
    jobs = [{"name": n, "schedule": "0 0 * * *", "command": "true", "user": n}
            for n in ("shop", "shop_dev")]
    assert product_problems([product(cron=jobs)]) == []


@pytest.mark.parametrize("user", ["root", "www-data", "blog", "hostkit-config-agent"])
def test_cron_user_may_not_be_root_or_another_products_user(user):
    job = {"name": "evil", "schedule": "* * * * *", "command": "id", "user": user}
    blog = {"name": "blog", "domains": ["blog.example.test"],
            "source": {"type": "local", "path": "products/blog"}}
    problems = product_problems([product(cron=[job]), blog])
    assert only(problems) == (
        f"product 'shop': cron job evil: field 'user' names unknown user '{user}' "
        "(known: shop, shop_dev)")


@pytest.mark.parametrize("schedule", ["* * * *", "* * * * * *", "0 3 * * mon;rm", "", "@daily"])
def test_invalid_schedule(schedule):
    job = {"name": "nightly", "schedule": schedule, "command": "true"}
    problem = only(product_problems([product(cron=[job])]))
    assert "field 'schedule' must have 5 cron fields" in problem


def test_cron_command_missing_or_multiline():
    missing = {"name": "a", "schedule": "* * * * *"}
    multi = {"name": "b", "schedule": "* * * * *", "command": "true\nrm -rf /"}
    problems = product_problems([product(cron=[missing, multi])])
    assert any("cron job a: field 'command' is missing" in p for p in problems)
    assert any("cron job b: field 'command' must be one line" in p for p in problems)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (None, "field 'source' is missing"),
        ({"type": "ftp", "url": "x"}, "field 'source.type' is 'ftp'"),
        ({"type": "git"}, "field 'source.repo' is required for a git source"),
        ({"type": "tarball"}, "field 'source.url' is required for a tarball source"),
        ({"type": "local"}, "field 'source.path' is required for a local source"),
        ({"type": "s3", "bucket": "shop-code"}, "field 'source.key' is required for a s3 source"),
    ],
)
def test_bad_source(source, expected):
    assert expected in only(product_problems([product(source=source)]))


def test_apache_directives_with_newline():
    lines = ["Header set A b", "Header set C d\nRewriteEngine On"]
    problem = only(product_problems([product(apache_directives=lines)]))
    assert problem == "product 'shop': field 'apache_directives' line 2 spans lines"


def test_apache_directives_not_a_list_of_strings():
    problem = only(product_problems([product(apache_directives="Header set A b")]))
    assert "must be a list of lines" in problem


def test_invalid_user_and_group_names():
    problems = product_problems([product(user="Bad User", group="ok",
                                         users=[{"name": "ok_dev"}, {"groups": []}])])
    assert "product 'shop': field 'user' is not a valid name: 'Bad User'" in problems
    assert "product 'shop': field 'users[1].name' is missing or invalid" in problems


def test_require_limits_the_checks():
    bad = product(domains=None, source=None, apache_directives=["a\nb"])
    assert product_problems([bad], ["users", "cron"]) == []
    assert len(product_problems([bad])) == 3
    # names and duplicates are always checked
    assert product_problems([bad, bad], ["users"]) == ["product 'shop': duplicate product name"]


def test_product_users():
    assert product_users(GOOD) == ["shop", "shop_dev"]
    assert product_users({"name": "x", "user": "www_x", "users": None}) == ["www_x"]


def test_select_products_in_the_order_asked_each_once():
    other = product(name="blog")
    selected = select_products([GOOD, other], ["blog", "shop", "blog"])
    assert [p["name"] for p in selected] == ["blog", "shop"]
    selected[0]["name"] = "changed"  # copies: the catalog stays as it was
    assert other["name"] == "blog"
    assert select_products([GOOD], []) == []
    assert select_products(None, []) == []


def test_select_products_unknown_name():
    with pytest.raises(KeyError) as err:
        select_products([GOOD], ["shop", "nope", "gone"])
    message = str(err.value.args[0])
    assert "unknown product(s) nope, gone" in message
    assert "catalog has: shop" in message


def test_filters():
    filters = FilterModule().filters()
    assert filters["hostkit_product_problems"] is hostkit_product_problems
    assert filters["hostkit_select_products"] is hostkit_select_products
    bad = product(domains=[])
    assert hostkit_product_problems([bad]) != []
    assert hostkit_product_problems([bad], "users", "cron") == []
    assert hostkit_select_products([GOOD], ("shop",))[0]["name"] == "shop"
    assert hostkit_select_products([GOOD], None) == []
    with pytest.raises(AnsibleFilterError, match="unknown product"):
        hostkit_select_products([GOOD], ["nope"])


def test_select_products_refuses_a_catalog_with_duplicate_names() -> None:
    from plugin_utils.products import select_products

    catalog = [{"name": "hello"}, {"name": "shop"}, {"name": "hello"}]
    with pytest.raises(KeyError, match="product 'hello': field 'name' is used by more than"):
        select_products(catalog, ["shop"])


@pytest.mark.parametrize(("change", "message"), [
    ({"healthcheck": "healthz"}, "field 'healthcheck' must be a path starting with /"),
    ({"database": "hello"}, "field 'database' must be a mapping"),
    ({"source": {"type": "tarball", "url": "https://x.test/a.tgz", "checksum": "abc"}},
     "field 'source.checksum' must be <algorithm>:<hex digest>"),
])
def test_healthcheck_database_and_checksum_are_checked(change: dict, message: str) -> None:
    from plugin_utils.products import product_problems

    product = {"name": "hello", "domains": ["hello.test"],
               "source": {"type": "local", "path": "products/hello"}, **change}
    problems = product_problems([product])
    assert any(p.startswith("product 'hello': ") and message in p for p in problems), problems
    fine = {k: v for k, v in product.items() if k not in change}
    fine["source"] = {"type": "tarball", "url": "https://x.test/a.tgz", "checksum": "sha256:ab12"}
    assert product_problems([{**fine, "healthcheck": "/healthz", "database": {"name": "h"}}]) == []


def test_runtime_reload_must_be_a_boolean() -> None:
    assert product_problems([product(runtime_reload=False)]) == []
    assert only(product_problems([product(runtime_reload="no")])) == (
        "product 'shop': field 'runtime_reload' must be true or false, got 'no'")


def test_database_cluster_defaults_to_the_product_and_is_checked() -> None:
    from plugin_utils.products import database_cluster, product_problems

    assert database_cluster({"name": "hello", "database": {"name": "hello"}}) == "hello"
    assert database_cluster({"name": "hello", "database": {"cluster": "main"}}) == "main"
    assert database_cluster({"name": "static"}) is None
    bad = product(database={"name": "shop", "cluster": "Main-1"})
    assert only(product_problems([bad])) == (
        "product 'shop': field 'database.cluster' must be a cluster name (lower case letters, "
        "digits and _, starting with a letter), got 'Main-1'")


def test_products_on_one_cluster_need_their_own_database_and_account() -> None:
    from plugin_utils.products import product_problems

    hello = {"name": "hello", "domains": ["hello.example.test"],
             "source": {"type": "local", "path": "products/hello"},
             "database": {"name": "app", "cluster": "main"}}
    shop = product(database={"name": "app", "user": "hello", "cluster": "main"})
    assert product_problems([hello, shop]) == [
        "product 'shop': field 'database.name' is 'app', as for product 'hello' on the same "
        "cluster 'main'",
        "product 'shop': field 'database.user' is 'hello', as for product 'hello' on the same "
        "cluster 'main'"]
    apart = dict(shop, database={"name": "app", "user": "hello", "cluster": "other"})
    assert product_problems([hello, apart]) == []


def test_sudo_files_one_per_product_with_rules() -> None:
    from plugin_utils.products import sudo_files
    products = [
        {"name": "shop", "users": [{"name": "shop_dev", "sudo": ["ALL=(shop) NOPASSWD: ALL"]},
                                   {"name": "shop_ro", "sudo": ["ALL=(shop) /bin/true"]}]},
        {"name": "blog", "users": [{"name": "blog_dev", "sudo": []}]},
        {"name": "wiki"},
        {"name": "news", "users": None},
    ]
    out = sudo_files(products, "/etc/sudoers.d", "sudoers.j2", tags=["common_sudo"])
    assert out == [{"path": "/etc/sudoers.d/hostkit-shop", "template": "sudoers.j2",
                    "vars": {"__common_product": products[0]}, "owner": "root",
                    "group": "root", "mode": "0440", "validate": "visudo -cf %s",
                    "tags": ["common_sudo"]}]


def test_absent_authorized_keys_only_for_users_given_no_keys() -> None:
    from plugin_utils.products import absent_authorized_keys
    products = [{"name": "shop", "users": [{"name": "shop_dev", "ssh_keys": []},
                                           {"name": "shop_ci", "ssh_keys": ["ssh-ed25519 A"]},
                                           {"name": "shop_old"}]}]
    assert absent_authorized_keys(products, tags=["common_users"]) == [
        {"path": "~shop_dev/.ssh/authorized_keys", "state": "absent", "tags": ["common_users"]}]
    assert absent_authorized_keys([]) == []


def test_missing_accounts_name_the_product_and_field() -> None:
    from plugin_utils.products import missing_accounts
    products = [
        {"name": "shop", "cron": [{"name": "report", "user": "shop_ops"}, {"user": ""}]},
        {"name": "blog", "user": "www-blog", "group": "www"},
    ]
    users = {"shop": ["1001"], "www-blog": ["1002"]}
    report = "product 'shop': cron job report: field 'user': user 'shop_ops' does not exist on"
    assert missing_accounts(products, users, {"shop": [], "www": []}) == [f"{report} this host"]
    assert missing_accounts(products, {}, {}) == [
        "product 'shop': field 'user': user 'shop' does not exist on this host",
        "product 'shop': field 'group': group 'shop' does not exist on this host",
        f"{report} this host",
        "product 'shop': cron job 1: field 'user': user 'shop' does not exist on this host",
        "product 'blog': field 'user': user 'www-blog' does not exist on this host",
        "product 'blog': field 'group': group 'www' does not exist on this host"]


def test_with_accounts_fills_in_user_and_group() -> None:
    from plugin_utils.products import with_accounts
    products = [{"name": "shop"}, {"name": "blog", "user": "www-blog", "group": ""}]
    assert with_accounts(products) == [
        {"name": "shop", "user": "shop", "group": "shop"},
        {"name": "blog", "user": "www-blog", "group": "blog"}]
    assert products[0] == {"name": "shop"}  # copies
