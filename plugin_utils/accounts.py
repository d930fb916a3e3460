"""Which groups and users differ from what the host has (hostkit_accounts).

The host's accounts are read with one remote command (`getent passwd`, a separator line,
`getent group`; read_tables parses its output) into two tables:
  passwd: name -> [password, uid, gid, gecos, home, shell]
  group:  name -> [password, gid, members (comma-separated)]
and each wanted group or user is compared with them on the fields its entry sets. Only the
entries that differ go to ansible.builtin.group or ansible.builtin.user, which make the change
(and decide the rest, such as a new account's uid): an idempotent run reads and changes
nothing. Fields that count only when an account is created (system, create_home) are not
compared.

Plain Python, no Ansible imports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# The fields of a group or user entry; the same names as the options of
# ansible.builtin.group and ansible.builtin.user, to which an entry is passed as it is.
GROUP_FIELDS = ("name", "gid", "system")
USER_FIELDS = ("name", "group", "groups", "append", "system", "home", "create_home", "shell",
               "comment")

Table = Mapping[str, Sequence[str]]

# The remote command: both databases through NSS, as the group and user modules see them.
SEPARATOR = "--hostkit-accounts--"
READ_COMMAND = f"getent passwd && echo {SEPARATOR} && getent group"


class AccountsError(ValueError):
    """An entry that is not a mapping with a name, or with a field the task does not know."""


def entries(items: Any, kind: str, fields: Sequence[str]) -> list[dict[str, Any]]:
    """The entries of `groups` or `users`, checked: mappings with a name and known fields."""
    if items is None:
        return []
    if not isinstance(items, list):
        raise AccountsError(f"{kind} must be a list, not {type(items).__name__}")
    out = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping) or not str(item.get("name") or ""):
            raise AccountsError(f"{kind}[{index}] must be a mapping with a name")
        unknown = sorted(set(item) - set(fields))
        if unknown:
            raise AccountsError(f"{kind}[{index}] ({item['name']}): unknown field(s) "
                                f"{', '.join(unknown)}; known: {', '.join(fields)}")
        out.append({k: v for k, v in item.items() if v is not None})
    return out


def read_tables(output: str) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(passwd, group) from READ_COMMAND's output; the first of two rows of a name wins, as
    NSS lookups by name answer."""
    if SEPARATOR not in output.splitlines():
        raise AccountsError("the accounts read from the host lack the group database")
    passwd_text, _, group_text = output.partition(f"\n{SEPARATOR}\n")
    tables: list[dict[str, list[str]]] = []
    for text, width in ((passwd_text, 7), (group_text, 4)):
        table: dict[str, list[str]] = {}
        for line in text.splitlines():
            fields = line.split(":")
            if len(fields) == width and fields[0] and fields[0] != SEPARATOR:
                table.setdefault(fields[0], fields[1:])
        tables.append(table)
    return tables[0], tables[1]


def group_differs(entry: Mapping[str, Any], group: Table) -> str:
    """Why the group must be created or changed; '' when the host has it as wanted."""
    row = group.get(entry["name"])
    if row is None:
        return "missing"
    if "gid" in entry and str(entry["gid"]) != str(row[1]):
        return f"gid {row[1]}, wanted {entry['gid']}"
    return ""


def _member_of(name: str, primary_gid: str, group: Table) -> set[str]:
    """The groups a user belongs to: its primary group and those that list it."""
    return {g for g, row in group.items()
            if str(row[1]) == primary_gid or name in str(row[2] or "").split(",")}


def user_differs(entry: Mapping[str, Any], passwd: Table, group: Table) -> str:
    """Why the user must be created or changed; '' when the host has it as wanted."""
    name = entry["name"]
    row = passwd.get(name)
    if row is None:
        return "missing"
    _, _, gid, gecos, home, shell = (list(row) + [""] * 6)[:6]
    if "group" in entry:
        wanted = group.get(str(entry["group"]))
        if wanted is None or str(wanted[1]) != str(gid):
            return f"primary group is not {entry['group']}"
    for field, actual in (("home", home), ("shell", shell), ("comment", gecos)):
        if field in entry and str(entry[field]) != str(actual):
            return f"{field} {actual!r}, wanted {entry[field]!r}"
    if "groups" in entry:
        wanted_groups = {str(g) for g in entry["groups"] or []}
        member = _member_of(name, str(gid), group)
        primary = {g for g, r in group.items() if str(r[1]) == str(gid)}
        if entry.get("append", False):
            missing = sorted(wanted_groups - member)
            if missing:
                return f"not in {', '.join(missing)}"
        elif wanted_groups != member - primary:
            return f"groups {sorted(member - primary)}, wanted {sorted(wanted_groups)}"
    return ""


def to_change(groups: Any, users: Any, passwd: Table, group: Table
              ) -> tuple[list[tuple[dict[str, Any], str]], list[tuple[dict[str, Any], str]]]:
    """(group entries, user entries) that differ from the host, each with the reason."""
    wanted_groups = entries(groups, "groups", GROUP_FIELDS)
    wanted_users = entries(users, "users", USER_FIELDS)
    return ([(g, why) for g in wanted_groups if (why := group_differs(g, group))],
            [(u, why) for u in wanted_users if (why := user_differs(u, passwd, group))])


def product_accounts(products: Any, base_dir: str, nologin_shell: str, user_shell: str
                     ) -> dict[str, list[dict[str, Any]]]:
    """The groups and users of the products (hostkit_accounts' `groups` and `users`): per
    product its group and system user (home under `base_dir`, no login shell, the home made
    by the product role), then its extra groups and extra users."""
    groups: list[dict[str, Any]] = []
    users: list[dict[str, Any]] = []
    products = list(products or [])
    for product in products:
        group = product.get("group") or product["name"]
        groups.append({"name": group, "system": True})
        users.append({"name": product.get("user") or product["name"], "group": group,
                      "system": True, "home": f"{base_dir}/{product['name']}",
                      "create_home": False, "shell": nologin_shell,
                      "comment": f"hostkit product {product['name']}"})
    for product in products:
        for extra in product.get("groups") or []:
            groups.append({"name": extra["name"], **({"gid": extra["gid"]}
                                                    if extra.get("gid") is not None else {})})
    for product in products:
        for extra in product.get("users") or []:
            users.append({"name": extra["name"], "groups": list(extra.get("groups") or []),
                          "append": True, "shell": extra.get("shell") or user_shell,
                          "create_home": True, "comment": f"hostkit product {product['name']}"})
    return {"groups": groups, "users": users}
