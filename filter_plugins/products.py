"""Jinja filters over products (see plugin_utils/products.py for the logic)."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError

from plugin_utils.products import product_problems, select_products


def hostkit_product_problems(products: Any, *require: str) -> list[str]:
    """List of problems (empty when fine); `require` names checks, default all."""
    return product_problems(products, require) if require else product_problems(products)


def hostkit_select_products(catalog: Any, names: Any) -> list[dict[str, Any]]:
    """The catalog entries of the named products; an unknown name is an error."""
    try:
        return select_products(catalog, list(names or []))
    except KeyError as exc:
        raise AnsibleFilterError(str(exc.args[0])) from None


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "hostkit_product_problems": hostkit_product_problems,
            "hostkit_select_products": hostkit_select_products,
        }
