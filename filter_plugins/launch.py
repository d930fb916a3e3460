"""Jinja filters of the launch and publish playbooks (see plugin_utils/launch.py for the logic)."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError

from plugin_utils.launch import (
    LaunchPlanError,
    cluster_plan,
    db_place_plan,
    errant_transactions,
    fleet_table,
    haproxy_servers_up,
    next_phase,
    plan_role_launch,
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


def hostkit_cluster_plan(groups: Any, products: Any, doc: Any) -> dict[str, Any]:
    """What the global config needs so that it follows products.yml's database clusters
    (see plugin_utils/launch.py cluster_plan)."""
    try:
        return cluster_plan(groups, products, doc or {})
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from None


def hostkit_plan_role_launch(doc: Any, role: str, zones: Any, taken: Any = (), az: Any = None,
                             products: Any = None, cluster: Any = None, position: Any = None,
                             catalog: Any = ()) -> dict[str, Any]:
    """One new db, memcached or monitor server (see plugin_utils/launch.py)."""
    if isinstance(products, str):
        products = [p.strip() for p in products.split(",") if p.strip()]
    try:
        return plan_role_launch(doc or {}, str(role), zones, taken or (), az or None,
                                products or None, cluster or None, position or None,
                                catalog or ())
    except LaunchPlanError as exc:
        raise AnsibleFilterError(f"launch: {exc}") from None


def hostkit_db_place_plan(doc: Any, host: str, position: Any = None,
                          cluster: Any = None) -> dict[str, Any]:
    """Where a database server goes in its cluster (see plugin_utils/launch.py)."""
    try:
        return db_place_plan(doc or {}, str(host), position or None, cluster or None)
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
            "hostkit_cluster_plan": hostkit_cluster_plan,
            "hostkit_db_place_plan": hostkit_db_place_plan,
            "hostkit_plan_role_launch": hostkit_plan_role_launch,
            "hostkit_errant_transactions": errant_transactions,
            "hostkit_fleet_table": fleet_table,
            "hostkit_sole_web_products": sole_web_products,
        }
