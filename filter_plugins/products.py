"""Jinja filters over products (see plugin_utils/products.py for the logic)."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError

from plugin_utils.accounts import product_accounts
from plugin_utils.product_trust import grant_target
from plugin_utils.products import (
    absent_authorized_keys,
    missing_accounts,
    product_problems,
    select_products,
    sudo_files,
    with_accounts,
)


def hostkit_product_problems(products: Any, *require: str, exceptions: Any = None) -> list[str]:
    """List of problems (empty when fine); `require` names checks, default all;
    `exceptions`: the operators' platform_product_exceptions."""
    if require:
        return product_problems(products, require, exceptions=exceptions)
    return product_problems(products, exceptions=exceptions)


def hostkit_select_products(catalog: Any, names: Any) -> list[dict[str, Any]]:
    """The catalog entries of the named products; an unknown name is an error."""
    try:
        return select_products(catalog, list(names or []))
    except KeyError as exc:
        raise AnsibleFilterError(str(exc.args[0])) from None


def hostkit_database_grant(database: Any) -> str:
    """`` `name`.* `` for a product's database name; an invalid name is an error, so that
    nothing but a plain identifier ever reaches a GRANT."""
    try:
        return grant_target(database)
    except ValueError as exc:
        raise AnsibleFilterError(f"hostkit_database_grant: {exc}") from None


def hostkit_sudo_files(products: Any, directory: str, template: str, **extra: Any
                       ) -> list[dict[str, Any]]:
    """hostkit_files entries: one sudo rule file per product whose users have rules."""
    return sudo_files(products or [], directory, template, **extra)


def hostkit_absent_authorized_keys(products: Any, **extra: Any) -> list[dict[str, Any]]:
    """hostkit_files entries: no authorized_keys for extra users with `ssh_keys: []`."""
    return absent_authorized_keys(products or [], **extra)


def hostkit_missing_accounts(products: Any, users: Any, groups: Any) -> list[str]:
    """Problems: the products' users, groups and cron users the host lacks."""
    return missing_accounts(products or [], users or [], groups or [])


def hostkit_with_accounts(products: Any) -> list[dict[str, Any]]:
    """The products with `user` and `group` filled in (the product's name by default)."""
    return with_accounts(products or [])


def hostkit_product_accounts(products: Any, base_dir: str, nologin_shell: str,
                             user_shell: str) -> dict[str, list[dict[str, Any]]]:
    """hostkit_accounts' groups and users: each product's group and system user, then its
    extra groups and extra users."""
    return product_accounts(products or [], base_dir, nologin_shell, user_shell)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "hostkit_product_problems": hostkit_product_problems,
            "hostkit_select_products": hostkit_select_products,
            "hostkit_database_grant": hostkit_database_grant,
            "hostkit_sudo_files": hostkit_sudo_files,
            "hostkit_absent_authorized_keys": hostkit_absent_authorized_keys,
            "hostkit_missing_accounts": hostkit_missing_accounts,
            "hostkit_with_accounts": hostkit_with_accounts,
            "hostkit_product_accounts": hostkit_product_accounts,
        }
