"""What a product definition may ask of a host: the trust boundary of `platform_products`.

`products.yml` is written by product teams, so each of its entries is untrusted input: it
must not be able to gain root or to touch another product. The rules here are what
plugin_utils/products.py applies to the fields that reach root-owned configuration:

- the names a product owns (its system user and group, extra users and groups) are its own
  name or start with `<name>_`, and no product is named after a system or platform account;
- Apache directives of a virtual host come from an allow-list of directive names;
- sudo rules run only as the product's own users (and groups);
- database names and accounts are plain MySQL identifiers, never a system schema or a
  platform account.

The rare exception is the operators' to grant, in the platform setting
`platform_product_exceptions` (see README.md, "Trust model"), never in products.yml. No
Ansible imports: unit-tested in tests/unit/test_products.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

# MySQL identifiers as the platform writes them (quoted with backticks in GRANT): a
# database name of at most 64 characters, an account name of at most 32 (MySQL's limit).
DATABASE_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
DB_USER_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
# The server's own schemas: a grant on one of them is a grant on the server.
SYSTEM_DATABASES = frozenset({"mysql", "information_schema", "performance_schema", "sys"})
SYSTEM_DB_USERS = frozenset({"root", "mysql", "mariadb_sys", "healthcheck"})
# The platform's own accounts (unix and MySQL) are named hostkit*; no product may be.
PLATFORM_PREFIX = "hostkit"

# Accounts and groups of Debian 12 and EL 9 base systems and of the platform's packages:
# a product named like one of them would own it (its user and group are its name).
SYSTEM_NAMES = frozenset({
    "adm", "apache", "audio", "backup", "bin", "cdrom", "chrony", "crontab", "daemon",
    "dbus", "dialout", "dip", "disk", "docker", "fax", "floppy", "ftp", "games", "gnats",
    "halt", "haproxy", "input", "irc", "kmem", "kvm", "list", "lp", "mail", "man",
    "memcache", "memcached", "messagebus", "mysql", "netdev", "news", "nginx", "nobody",
    "nogroup", "operator", "plugdev", "polkitd", "postfix", "proxy", "render", "root",
    "sasl", "sgx", "shadow", "shutdown", "src", "ssh", "sshd", "sssd", "staff", "sudo",
    "sync", "sys", "systemd", "tape", "tss", "tty", "users", "utmp", "uucp", "video",
    "voice", "wheel", "www", "www_data",
})

# Apache directives a product may add to its virtual host (compared without case). Left
# out on purpose, among others: logs (a piped log runs a command as root), Include*,
# LoadModule/LoadFile, Define, sections (<Directory />, <If>, ...), Alias*/ScriptAlias
# (files outside the product's tree), AddHandler/SetHandler/Action (another product's
# PHP pool, CGI), Proxy* and RewriteMap (prg: runs a program), Require/AllowOverride,
# DocumentRoot/ServerName/ServerAlias, output filters (INCLUDES runs commands).
APACHE_DIRECTIVES = frozenset(name.lower() for name in (
    "Header", "RequestHeader",
    "RewriteEngine", "RewriteCond", "RewriteRule",
    "Redirect", "RedirectMatch", "RedirectPermanent", "RedirectTemp",
    "ExpiresActive", "ExpiresByType", "ExpiresDefault",
    "AddType", "AddCharset", "AddDefaultCharset", "AddLanguage", "DefaultLanguage",
    "DirectoryIndex", "FallbackResource", "ErrorDocument", "FileETag",
    "Options",
    "SetEnv", "SetEnvIf", "SetEnvIfNoCase", "UnsetEnv", "BrowserMatch", "BrowserMatchNoCase",
    "LimitRequestBody", "LimitXMLRequestBody",
))
# Options a product may turn on (FollowSymLinks, ExecCGI, Includes, All are not here).
APACHE_OPTIONS = frozenset({"indexes", "multiviews", "symlinksifownermatch"})
# RewriteRule flags a product may use: no P/proxy (to anywhere, the instance metadata
# service included), no H/handler (another product's PHP pool), no T/type.
REWRITE_FLAGS = frozenset({
    "l", "last", "r", "redirect", "nc", "nocase", "qsa", "qsappend", "qsd", "qsdiscard",
    "qsl", "qslast", "ne", "noescape", "end", "f", "forbidden", "g", "gone", "c", "chain",
    "s", "skip", "e", "env", "co", "cookie", "b", "bnp", "backrefnoplus", "bne", "bctls",
    "dpi", "discardpath", "ns", "nosubreq", "pt", "passthrough", "n", "next",
})
DIRECTIVE_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")
APACHE_TOKEN_RE = re.compile(r'"(?:[^"\\]|\\.)*"|\'[^\']*\'|\S+')
# ap_expr functions that read files (vhost context is not "restricted").
FILE_FUNCTION_RE = re.compile(r"(?i)(\bfile(size|mod)?\s*\(|%\{\s*file(size|mod)?\s*:)")
CONTROL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

# sudo: `ALL=(runas users[:runas groups]) [NOPASSWD:|PASSWD:|NOEXEC:]... commands`.
SUDO_RULE_RE = re.compile(
    r"^ALL\s*=\s*\((?P<users>[^():]*)(?::(?P<groups>[^():]*))?\)\s*"
    r"(?P<tags>(?:(?:NOPASSWD|PASSWD|NOEXEC)\s*:\s*)*)(?P<commands>[^:]+)$")
SUDO_COMMAND_RE = re.compile(r"^/(?:[A-Za-z0-9_.+-]+/)*[A-Za-z0-9_.+-]+(?: +[A-Za-z0-9_./+@%-]+)*$")
DOT_SEGMENT_RE = re.compile(r"(^|/)\.\.?(/|$)")

# What platform_product_exceptions may list per product.
EXCEPTION_FIELDS = ("apache_directives", "cron_users", "sudo", "user_groups")


def reserved_name(name: str) -> bool:
    """A product name that would own a system or platform account."""
    return name in SYSTEM_NAMES or name.startswith(PLATFORM_PREFIX)


def owned_name(product: str, value: str) -> bool:
    """A unix user or group name that belongs to the product: its name or `<name>_...`."""
    return value == product or value.startswith(f"{product}_")


def database_name_problem(value: Any) -> str | None:
    """Why `value` cannot be a product's database name (None when it can)."""
    if not isinstance(value, str) or not DATABASE_RE.match(value):
        return ("must be a MySQL database name (lower case letters, digits and _, starting "
                f"with a letter, at most 64 characters), got {value!r}")
    if value in SYSTEM_DATABASES or value.startswith(PLATFORM_PREFIX):
        return f"names a system or platform schema: {value!r}"
    return None


def database_user_problem(value: Any, platform_users: Iterable[str] = ()) -> str | None:
    """Why `value` cannot be a product's database account (None when it can)."""
    if not isinstance(value, str) or not DB_USER_RE.match(value):
        return ("must be a MySQL account name (lower case letters, digits and _, starting "
                f"with a letter, at most 32 characters), got {value!r}")
    if (value in SYSTEM_DB_USERS or value.startswith(PLATFORM_PREFIX)
            or value in set(platform_users)):
        return f"names a system or platform account: {value!r}"
    return None


def grant_target(database: Any) -> str:
    """The GRANT target of a product's database, `` `name`.* ``, from a valid name only."""
    problem = database_name_problem(database)
    if problem:
        raise ValueError(f"database name {problem}")
    return f"`{database}`.*"


def _tokens(line: str) -> list[str]:
    return APACHE_TOKEN_RE.findall(line)


def _unquote(token: str) -> str:
    if len(token) >= 2 and token[0] == token[-1] and token[0] in "\"'":
        return token[1:-1]
    return token


def _options_problem(args: list[str]) -> str | None:
    for arg in args:
        flag = _unquote(arg).lower()
        if flag.startswith("-") or flag == "none":
            continue
        if flag.lstrip("+") not in APACHE_OPTIONS:
            return (f"Options may only turn off options or turn on "
                    f"{', '.join(sorted(APACHE_OPTIONS))}, got '{arg}'")
    return None


def _rewrite_rule_problem(args: list[str]) -> str | None:
    if len(args) < 2:
        return None  # apachectl configtest says what is missing
    target = _unquote(args[1])
    if "|" in target or target.lower().startswith("proxy:"):
        return f"RewriteRule may not rewrite to a handler or proxy, got '{args[1]}'"
    if len(args) > 2:
        flags = _unquote(args[2]).strip("[]").split(",")
        for flag in flags:
            key = flag.split("=", 1)[0].strip().lower()
            if key not in REWRITE_FLAGS:
                return f"RewriteRule flag '{flag.strip()}' is not allowed"
    return None


def _setenv_problem(args: list[str]) -> str | None:
    if any(PLATFORM_PREFIX in _unquote(a).lower() for a in args):
        return "the HOSTKIT_ environment variables are the platform's"
    return None


ARGUMENT_CHECKS = {
    "options": _options_problem,
    "rewriterule": _rewrite_rule_problem,
    "setenv": _setenv_problem,
    "unsetenv": _setenv_problem,
    "setenvif": _setenv_problem,
    "setenvifnocase": _setenv_problem,
    "browsermatch": _setenv_problem,
    "browsermatchnocase": _setenv_problem,
}


def apache_directive_problem(line: str, extra: Iterable[str] = ()) -> str | None:
    """Why one line of a product's `apache_directives` is refused (None when it is not).
    `extra`: directive names the operators allow this product besides the allow-list."""
    if CONTROL_RE.search(line):
        return "spans lines or holds control characters"
    stripped = line.strip()
    if stripped.endswith("\\"):
        return "ends with a line continuation"
    tokens = _tokens(stripped)
    if not tokens:
        return "is empty"
    name = tokens[0]
    if name.startswith("<"):
        return f"opens or closes a section ({name}): sections are not allowed"
    if not DIRECTIVE_NAME_RE.match(name):
        return f"does not start with a directive name, got '{name}'"
    allowed = APACHE_DIRECTIVES | {str(x).lower() for x in extra}
    if name.lower() not in allowed:
        return (f"directive '{name}' is not on the allow-list (an operator may allow it in "
                "platform_product_exceptions)")
    if name.lower().endswith("log") and "|" in stripped:
        return f"directive '{name}' pipes to a command"
    if FILE_FUNCTION_RE.search(stripped):
        return "reads files through an expression function (file, filesize, filemod)"
    check = ARGUMENT_CHECKS.get(name.lower())
    return check(tokens[1:]) if check else None


def _runas_problem(kind: str, names: str, allowed: set[str]) -> str | None:
    for entry in (n.strip() for n in names.split(",")):
        if entry not in allowed:
            return (f"may only run as the product's own {kind} "
                    f"({', '.join(sorted(allowed))}), got '{entry}'")
    return None


def sudo_rule_problem(rule: str, users: Iterable[str], groups: Iterable[str]) -> str | None:
    """Why a sudo rule of a product's user is refused (None when it is not): the rule is
    `ALL=(<users>[:<groups>]) [NOPASSWD:] <commands>`, its RunAs users and groups are the
    product's own, and each command is ALL (as them) or an absolute path with plain
    arguments."""
    match = SUDO_RULE_RE.match(rule.strip()) if isinstance(rule, str) else None
    if not match:
        return ("must be written 'ALL=(<product user>[,...][:<product group>]) "
                f"[NOPASSWD:] <command>[, ...]', got {rule!r}")
    problem = _runas_problem("users", match["users"], set(users))
    if problem is None and match["groups"] is not None and match["groups"].strip():
        problem = _runas_problem("groups", match["groups"], set(groups))
    if problem:
        return problem
    for command in (c.strip() for c in match["commands"].split(",")):
        if command != "ALL" and (not SUDO_COMMAND_RE.match(command)
                                 or DOT_SEGMENT_RE.search(command.split()[0])):
            return ("commands must be ALL or an absolute path with plain arguments (no "
                    f"wildcards, quotes, escapes or '..'), got '{command}'")
    return None


def exceptions_problems(exceptions: Any) -> list[str]:
    """platform_product_exceptions: product name -> {field: list of strings}."""
    name = "platform_product_exceptions"
    if exceptions is None:
        return []
    if not isinstance(exceptions, Mapping):
        return [f"{name} must map product names to exceptions, got {exceptions!r}"]
    problems = []
    for product, fields in exceptions.items():
        if not isinstance(fields, Mapping):
            problems.append(f"{name}: product '{product}' must map fields "
                            f"({', '.join(EXCEPTION_FIELDS)}) to lists, got {fields!r}")
            continue
        for field, values in fields.items():
            if field not in EXCEPTION_FIELDS:
                problems.append(f"{name}: product '{product}': unknown field '{field}' "
                                f"(known: {', '.join(EXCEPTION_FIELDS)})")
            elif not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                problems.append(f"{name}: product '{product}': field '{field}' must be a "
                                "list of strings")
    return problems


def allowed(exceptions: Any, product: str, field: str) -> list[str]:
    """What the operators allow `product` in `field` (nothing for a malformed setting:
    exceptions_problems reports it)."""
    if not isinstance(exceptions, Mapping):
        return []
    fields = exceptions.get(product)
    values = fields.get(field) if isinstance(fields, Mapping) else None
    return [v for v in values if isinstance(v, str)] if isinstance(values, list) else []
