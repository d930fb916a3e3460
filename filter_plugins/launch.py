"""Jinja filters of the launch and publish playbooks (see module_utils/launch.py for the logic)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleFilterError

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from module_utils.launch import (  # noqa: E402
    LaunchPlanError,
    fleet_table,
    haproxy_servers_up,
    initial_db_positions,
    next_phase,
    plan_web_launch,
    sole_web_products,
    timeline,
    traffic_records,
    traffic_sites,
)


def hostkit_plan_web_launch(doc: Any, product: str, zones: Any, taken: Any = (),
                            count: Any = None, az: Any = None) -> dict[str, Any]:
    """The servers to launch for `product`: {product, count, current, new: [{name, az}]}."""
    try:
        return plan_web_launch(doc, product, zones, taken or (), count, az or None)
    except LaunchPlanError as exc:
        raise AnsibleFilterError(f"launch_web: {exc}") from None


def hostkit_initial_db_positions(groups: Any, products: Any, doc: Any) -> list[dict[str, Any]]:
    """Initial db positions of the products that have none (see module_utils/launch.py)."""
    try:
        return initial_db_positions(groups, products, doc or {})
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "hostkit_plan_web_launch": hostkit_plan_web_launch,
            "hostkit_traffic_sites": traffic_sites,
            "hostkit_next_phase": next_phase,
            "hostkit_launch_timeline": timeline,
            "hostkit_haproxy_servers_up": haproxy_servers_up,
            "hostkit_traffic_records": traffic_records,
            "hostkit_initial_db_positions": hostkit_initial_db_positions,
            "hostkit_fleet_table": fleet_table,
            "hostkit_sole_web_products": sole_web_products,
        }
