"""The trust boundary of product definitions (plugin_utils/product_trust.py through
plugin_utils/products.py): products.yml is written by product teams, so an entry must not
gain root on its hosts or touch another product. Each refusal names the product and the
field; the operators' platform_product_exceptions (never products.yml) allow the rare case."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from filter_plugins.products import hostkit_product_problems
from plugin_utils.products import product_problems

ROOT = Path(__file__).resolve().parents[2]
INJECTION = "x`.* TO 'e'@'%' IDENTIFIED BY 'p' WITH GRANT OPTION -- "

SHOP: dict[str, Any] = {
    "name": "shop",
    "domains": ["shop.example.test"],
    "source": {"type": "local", "path": "products/shop"},
    "docroot": "public",
    "user": "shop",
    "group": "shop",
    "users": [{"name": "shop_dev", "groups": ["shop", "shop_ops"],
               "sudo": ["ALL=(shop) NOPASSWD: ALL"]}],
    "groups": [{"name": "shop_ops", "gid": 2001}],
    "cron": [{"name": "nightly", "schedule": "0 3 * * *", "command": "php bin/n.php"}],
    "apache_directives": ["Header always set X-Frame-Options DENY"],
    "database": {"name": "shop", "user": "shop"},
}


def shop(**changes: Any) -> dict[str, Any]:
    entry = copy.deepcopy(SHOP)
    entry.update(changes)
    return entry


def dev(**changes: Any) -> dict[str, Any]:
    user = copy.deepcopy(SHOP["users"][0])
    user.update(changes)
    return user


def one(products: list[dict[str, Any]], exceptions: Any = None) -> str:
    problems = product_problems(products, exceptions=exceptions)
    assert len(problems) == 1, problems
    return problems[0]


def test_a_good_product_passes() -> None:
    assert product_problems([SHOP]) == []


# --- identifiers -------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["root", "www", "mysql", "sudo", "hostkit", "hostkit_x"])
def test_a_product_is_not_named_after_a_system_or_platform_account(name: str) -> None:
    assert one([shop(name=name, user=name, group=name, users=[], groups=[])]) == (
        f"product '{name}': field 'name' is the name of a system or platform account (or "
        "starts with 'hostkit')")


@pytest.mark.parametrize(("field", "value"), [
    ("user", "root"), ("user", "www-data"), ("user", "blog"), ("group", "sudo"),
    ("group", "shopping"),
])
def test_user_and_group_are_the_products_own(field: str, value: str) -> None:
    entry = shop(**{field: value}, users=[], cron=[])
    assert one([entry]).startswith(
        f"product 'shop': field '{field}' is '{value}': a product's users and groups are "
        "named 'shop' or 'shop_...'")


def test_extra_users_and_groups_are_the_products_own() -> None:
    problems = product_problems([shop(users=[dev(name="deploy", sudo=[])],
                                      groups=[{"name": "docker"}])])
    assert any(p.startswith("product 'shop': field 'users[0].name' is 'deploy'")
               for p in problems), problems
    assert any(p.startswith("product 'shop': field 'groups[0].name' is 'docker'")
               for p in problems), problems


@pytest.mark.parametrize("gid", [0, 27, 999, 60000, "x"])
def test_group_ids_are_ordinary(gid: Any) -> None:
    assert one([shop(groups=[{"name": "shop_ops", "gid": gid}])]).startswith(
        "product 'shop': field 'groups[0].gid' must be a whole number from 1000 to 59999")


@pytest.mark.parametrize("group", ["sudo", "root", "adm", "docker", "blog", "shadow"])
def test_extra_users_join_only_the_products_groups(group: str) -> None:
    assert one([shop(users=[dev(groups=["shop", group])])]).startswith(
        f"product 'shop': field 'users[0].groups' names group '{group}', which is not the "
        "product's")


def test_two_products_on_a_host_do_not_share_a_user_or_a_domain() -> None:
    blog = shop(name="blog", user="blog", group="blog", users=[], groups=[], cron=[],
                database={"name": "blog"})
    thief = shop(name="shop_x", user="shop_x", group="shop_x", users=[], groups=[],
                 cron=[], database={"name": "shop_x"}, domains=["shop.example.test"])
    problems = product_problems([SHOP, blog, thief])
    assert ("product 'shop_x': field 'domains' claims 'shop.example.test', which belongs to "
            "product 'shop'") in problems
    collision = shop(name="shop_dev", user="shop_dev", group="shop_dev", users=[], groups=[],
                     cron=[], database={"name": "shop_dev"}, domains=["dev.example.test"])
    assert ("product 'shop_dev': field 'users' claims 'shop_dev', which belongs to product "
            "'shop'") in product_problems([SHOP, collision])


@pytest.mark.parametrize("domain", ["localhost", "127.0.0.1", "shop", "a..test", "*", "-a.test"])
def test_domains_are_host_names(domain: str) -> None:
    assert one([shop(domains=[domain])]) == (
        f"product 'shop': field 'domains' has an invalid host name '{domain}'")


def test_a_wildcard_alias_is_still_allowed() -> None:
    assert product_problems([shop(domains=["shop.example.test", "*.shop.example.test"])]) == []


@pytest.mark.parametrize(("source", "field"), [
    ({"type": "local", "path": "/etc"}, "path"),
    ({"type": "local", "path": "../credentials/production"}, "path"),
    ({"type": "local", "path": "products/../../x"}, "path"),
    ({"type": "git", "repo": "/srv/www/blog/repo"}, "repo"),
    ({"type": "git", "repo": "ext::sh -c id"}, "repo"),
    ({"type": "git", "repo": "file:///srv/www/blog"}, "repo"),
    ({"type": "tarball", "url": "file:///etc/shadow"}, "url"),
    ({"type": "s3", "bucket": "Bad_Bucket", "key": "a.tgz"}, "bucket"),
])
def test_sources_stay_in_the_repository_or_on_the_network(source: dict[str, str],
                                                          field: str) -> None:
    assert one([shop(source=source)]).startswith(f"product 'shop': field 'source.{field}' must be")


@pytest.mark.parametrize("docroot", ["../blog", "public/../../blog", "a b", 'x"'])
def test_the_docroot_is_inside_the_release(docroot: str) -> None:
    assert one([shop(docroot=docroot)]).startswith(
        "product 'shop': field 'docroot' must be a directory inside the release")


# --- the database: no text of products.yml but an identifier reaches a GRANT -----------

@pytest.mark.parametrize(("database", "field"), [
    ({"name": INJECTION}, "name"), ({"name": "mysql"}, "name"),
    ({"name": "information_schema"}, "name"), ({"name": "hostkit"}, "name"),
    ({"name": "Shop"}, "name"), ({"name": "a" * 65}, "name"),
    ({"name": "shop", "user": "root"}, "user"), ({"name": "shop", "user": "hostkit_repl"}, "user"),
    ({"name": "shop", "user": "shop'@'%"}, "user"), ({"name": "shop", "user": "a" * 33}, "user"),
])
def test_database_names_and_accounts_are_plain_identifiers(database: dict[str, str],
                                                           field: str) -> None:
    assert one([shop(database=database)]).startswith(
        f"product 'shop': field 'database.{field}' ")


def test_the_injection_probe_is_refused_by_the_filter_every_role_calls() -> None:
    problems = hostkit_product_problems([shop(database={"name": INJECTION})], "database")
    assert len(problems) == 1, problems
    assert "field 'database.name' must be a MySQL database name" in problems[0]


# --- cron --------------------------------------------------------------------------------

@pytest.mark.parametrize("user", ["root", "www-data", "blog", "hostkit-failover"])
def test_cron_jobs_run_only_as_the_products_users(user: str) -> None:
    job = {"name": "evil", "schedule": "* * * * *", "command": "id", "user": user}
    assert one([shop(cron=[job])]) == (
        f"product 'shop': cron job evil: field 'user' names unknown user '{user}' "
        "(known: shop, shop_dev)")


def test_the_operators_may_allow_a_cron_user() -> None:
    job = {"name": "logs", "schedule": "0 * * * *", "command": "true", "user": "www-data"}
    assert product_problems([shop(cron=[job])],
                            exceptions={"shop": {"cron_users": ["www-data"]}}) == []
    # an exception for another product allows nothing here
    assert product_problems([shop(cron=[job])], exceptions={"blog": {"cron_users": ["www-data"]}})


# --- Apache directives -------------------------------------------------------------------

GOOD_DIRECTIVES = [
    'Header always set Strict-Transport-Security "max-age=63072000"',
    "RequestHeader unset Proxy",
    "RewriteEngine On",
    "RewriteCond %{HTTP_HOST} ^www\\.(.+)$ [NC]",
    "RewriteRule ^/(old|older)/(.*)$ /new/$2 [R=301,L]",
    "Redirect permanent /blog https://blog.example.test/",
    "RedirectMatch 301 ^/a(.*)$ /b$1",
    "ExpiresActive On",
    'ExpiresByType image/png "access plus 1 month"',
    "AddType application/wasm .wasm",
    "DirectoryIndex index.php",
    "ErrorDocument 404 /404.php",
    "Options -Indexes -FollowSymLinks +SymLinksIfOwnerMatch",
    "SetEnv APP_ENV production",
    "LimitRequestBody 10485760",
]


def test_directives_on_the_allow_list_pass() -> None:
    assert product_problems([shop(apache_directives=GOOD_DIRECTIVES)]) == []


@pytest.mark.parametrize(("line", "why"), [
    ('ErrorLog "|/bin/sh -c id"', "directive 'ErrorLog' is not on the allow-list"),
    ("CustomLog /etc/cron.d/x common", "directive 'CustomLog' is not on the allow-list"),
    ("Include /etc/shadow", "directive 'Include' is not on the allow-list"),
    ("IncludeOptional /srv/www/blog/*.conf", "directive 'IncludeOptional' is not on"),
    ("LoadModule cgi_module /usr/lib/apache2/modules/mod_cgi.so",
     "directive 'LoadModule' is not on"),
    ("<Directory />", "opens or closes a section (<Directory)"),
    ("</VirtualHost>", "opens or closes a section"),
    ("Alias /x /srv/www/blog/shared", "directive 'Alias' is not on"),
    ("RewriteMap m prg:/bin/sh", "directive 'RewriteMap' is not on"),
    ('SetHandler "proxy:unix:/run/php/hostkit-blog.sock|fcgi://localhost"',
     "directive 'SetHandler' is not on"),
    ("ProxyPass / http://169.254.169.254/", "directive 'ProxyPass' is not on"),
    ("RewriteRule ^ http://169.254.169.254/latest/meta-data/ [P]", "RewriteRule flag 'P'"),
    ("RewriteRule ^ - [H=proxy:unix:/run/php/hostkit-blog.sock|fcgi://x]",
     "RewriteRule flag 'H=proxy"),
    ("RewriteRule ^(.*)$ proxy:unix:/run/php/hostkit-blog.sock|fcgi://x/$1",
     "RewriteRule may not rewrite to a handler or proxy"),
    ("Options +ExecCGI", "Options may only turn off options"),
    ("Options Includes", "Options may only turn off options"),
    ("Options +FollowSymLinks", "Options may only turn off options"),
    ("SetEnv HOSTKIT_CONFIG_DIR /srv/www/blog/shared/config", "the HOSTKIT_ environment"),
    ('Header set X "expr=%{file:/srv/www/blog/shared/config/runtime.json}"',
     "reads files through an expression function"),
    ("Header set A b \\", "ends with a line continuation"),
    ("Header set A b\r", "spans lines or holds control characters"),
    ("", "is empty"),
    ("# a comment", "does not start with a directive name"),
])
def test_directives_off_the_allow_list_are_refused(line: str, why: str) -> None:
    problem = one([shop(apache_directives=["Header set X-A 1", line])])
    assert problem.startswith(f"product 'shop': field 'apache_directives' line 2 {why}"), problem


def test_the_operators_may_allow_a_directive_name_but_never_a_piped_log() -> None:
    exceptions = {"shop": {"apache_directives": ["LogLevel", "ErrorLog"]}}
    assert product_problems([shop(apache_directives=["LogLevel warn rewrite:trace2"])],
                            exceptions=exceptions) == []
    assert one([shop(apache_directives=['ErrorLog "|/usr/bin/logger"'])], exceptions) == (
        "product 'shop': field 'apache_directives' line 1 directive 'ErrorLog' pipes to a "
        "command")


# --- sudo --------------------------------------------------------------------------------

@pytest.mark.parametrize("rule", [
    "ALL=(shop) NOPASSWD: ALL", "ALL=(shop, shop_dev) ALL", "ALL=(shop:shop_ops) PASSWD: ALL",
    "ALL = (shop) NOPASSWD: /usr/bin/php /srv/www/shop/current/bin/console cache:clear"
    .replace(" cache:clear", ""),
    "ALL=(shop) NOPASSWD: /usr/bin/systemctl --user restart app, /usr/bin/id",
])
def test_sudo_rules_as_the_products_own_users_pass(rule: str) -> None:
    assert product_problems([shop(users=[dev(sudo=[rule])])]) == []


@pytest.mark.parametrize(("rule", "why"), [
    ("ALL=(ALL) NOPASSWD: ALL",
     "may only run as the product's own users (shop, shop_dev), got 'ALL'"),
    ("ALL=(root) ALL", "may only run as the product's own users"),
    ("ALL=(blog) NOPASSWD: ALL", "may only run as the product's own users"),
    ("ALL=(shop, #0) ALL", "may only run as the product's own users"),
    ("ALL=(%shop) ALL", "may only run as the product's own users"),
    ("ALL=(shop:root) ALL", "may only run as the product's own groups"),
    ("ALL=(shop:ALL) ALL", "may only run as the product's own groups"),
    ("NOPASSWD: ALL", "must be written"),
    ("ALL", "must be written"),
    ("ALL=(shop) ALL : ALL=(root) ALL", "must be written"),
    ("ALL=(shop) SETENV: ALL", "must be written"),
    ("ALL=(shop) NOPASSWD: bin/console", "commands must be ALL or an absolute path"),
    ("ALL=(shop) NOPASSWD: /usr/bin/*", "commands must be ALL or an absolute path"),
    ("ALL=(shop) NOPASSWD: /usr/bin/../../bin/sh", "commands must be ALL or an absolute path"),
    ("ALL=(shop) NOPASSWD: /bin/echo \"x\"", "commands must be ALL or an absolute path"),
    ("ALL=(shop) NOPASSWD: !/bin/sh", "commands must be ALL or an absolute path"),
    ("myhost=(shop) ALL", "must be written"),
])
def test_sudo_rules_beyond_the_products_users_are_refused(rule: str, why: str) -> None:
    problem = one([shop(users=[dev(sudo=[rule])])])
    assert problem.startswith(f"product 'shop': field 'users[0].sudo[0]' {why}"), problem


def test_the_operators_may_allow_a_sudo_rule_as_written() -> None:
    rule = "ALL=(root) NOPASSWD: /usr/bin/systemctl reload apache2"
    products = [shop(users=[dev(sudo=[rule])])]
    assert product_problems(products, exceptions={"shop": {"sudo": [rule]}}) == []
    # only the rule as written: another root rule is still refused
    other = "ALL=(root) NOPASSWD: /usr/bin/systemctl restart apache2"
    assert one([shop(users=[dev(sudo=[rule, other])])], {"shop": {"sudo": [rule]}}).startswith(
        "product 'shop': field 'users[0].sudo[1]' may only run as")


def test_the_operators_may_allow_a_group() -> None:
    products = [shop(users=[dev(groups=["shop", "adm"])])]
    assert product_problems(products, exceptions={"shop": {"user_groups": ["adm"]}}) == []


@pytest.mark.parametrize(("exceptions", "message"), [
    (["shop"], "platform_product_exceptions must map product names to exceptions"),
    ({"shop": ["sudo"]}, "platform_product_exceptions: product 'shop' must map fields"),
    ({"shop": {"root": ["yes"]}},
     "platform_product_exceptions: product 'shop': unknown field 'root'"),
    ({"shop": {"sudo": "ALL"}},
     "platform_product_exceptions: product 'shop': field 'sudo' must be a list"),
])
def test_a_malformed_exceptions_setting_is_a_problem(exceptions: Any, message: str) -> None:
    assert one([SHOP], exceptions).startswith(message)


# --- what must keep passing ----------------------------------------------------------------

def _inventory_products() -> list[Path]:
    return sorted(ROOT.glob("inventory/*/group_vars/all/products.yml"))


@pytest.mark.parametrize("path", _inventory_products(), ids=lambda p: p.parts[-4])
def test_inventory_products_pass_and_grant_nothing_else(path: Path) -> None:
    """products.yml (the product teams' file) holds platform_products only: it cannot set
    platform_product_exceptions or a role's variables."""
    data = yaml.safe_load(path.read_text())
    assert set(data) == {"platform_products"}, f"{path}: {sorted(data)}"
    assert product_problems(data["platform_products"]) == []


def _fixture_products() -> list[tuple[str, list[dict[str, Any]], Any]]:
    """(where, products, exceptions) of every Molecule scenario that defines products."""
    found = []
    for path in sorted(ROOT.glob("roles/*/molecule/*/*.yml")):
        docs = list(yaml.safe_load_all(path.read_text()))
        stack: list[Any] = docs
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                for key, value in node.items():
                    if key.endswith("_products") and isinstance(value, list) and value \
                            and all(isinstance(p, dict) for p in value):
                        found.append((f"{path.relative_to(ROOT)}:{key}", value,
                                      node.get("platform_product_exceptions")))
                    else:
                        stack.append(value)
            elif isinstance(node, list):
                stack.extend(node)
    return found


FIXTURES = _fixture_products()


def test_the_molecule_fixtures_are_found() -> None:
    where = " ".join(w for w, _, _ in FIXTURES)
    for role in ("apache", "common", "php"):
        assert f"roles/{role}/molecule/" in where, where


@pytest.mark.parametrize(("where", "products", "exceptions"), FIXTURES,
                         ids=[w for w, _, _ in FIXTURES])
def test_molecule_fixture_products_pass(where: str, products: list[dict[str, Any]],
                                        exceptions: Any) -> None:
    # the scenarios' hosts carry only the products they name (hostkit_products)
    ids = {"roles/common/molecule/default/molecule.yml:platform_products": ["demo"]}
    chosen = [p for p in products if p.get("name") in ids.get(where, [p.get("name")])]
    # a fixture may leave out what its role does not need (apache: no source)
    checks = ("domains", "docroot", "users", "cron", "apache_directives", "database")
    assert product_problems(chosen, checks, exceptions=exceptions) == [], where


def test_the_common_fixtures_other_product_is_refused_as_intended() -> None:
    """common's scenario keeps `other` (sudo ALL=(ALL) ALL) off its host: on a host of its
    own it would stop the run."""
    where = "roles/common/molecule/default/molecule.yml:platform_products"
    products = dict(FIXTURES_BY_WHERE)[where]
    other = [p for p in products if p["name"] == "other"]
    assert any("field 'users[0].sudo[0]' may only run as" in p for p in product_problems(other))


FIXTURES_BY_WHERE = [(w, p) for w, p, _ in FIXTURES]
