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
    haproxy_servers_up,
    next_phase,
    plan_web_launch,
    stale_records,
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


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "hostkit_plan_web_launch": hostkit_plan_web_launch,
            "hostkit_traffic_sites": traffic_sites,
            "hostkit_next_phase": next_phase,
            "hostkit_launch_timeline": timeline,
            "hostkit_haproxy_servers_up": haproxy_servers_up,
            "hostkit_traffic_records": traffic_records,
            "hostkit_stale_records": stale_records,
        }
