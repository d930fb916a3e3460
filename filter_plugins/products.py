"""Jinja filters over products (see module_utils/products.py for the logic)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleFilterError

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from module_utils.products import product_problems, select_products  # noqa: E402


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
