"""Settings checks of role memcached (tasks/validate.yml)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from plugin_utils.role_checks.common import (
    address_list,
    is_list,
    listen_address,
    port,
    whole_number,
)

# Options that a memcached_ variable owns: memcached_extra_options must not set them.
RESERVED_OPTIONS = ("-l", "--listen", "-p", "--port", "-U", "--udp-port", "-m",
                    "--memory-limit", "-c", "--conn-limit", "-u", "--user")


def extra_options(settings: Mapping[str, Any]) -> list[str]:
    value = settings.get("memcached_extra_options")
    if not is_list(value):
        return ["memcached_extra_options must be a list of options"]
    found = []
    for option in value:
        words = str(option).split("=")[0].split()
        if words and words[0] in RESERVED_OPTIONS:
            found.append(f"memcached_extra_options: {option} sets what a memcached_ variable "
                         "owns (address, port, UDP, memory, connections, user)")
    return found


def problems(settings: Mapping[str, Any], host_addresses: Iterable[str] = ()) -> list[str]:
    """`host_addresses`: every address of the host (the listen address must be one)."""
    return [
        *listen_address(settings, "memcached_listen_address",
                        [*host_addresses, "127.0.0.1", "::1"]),
        *whole_number(settings, "memcached_memory_mb", 1, unit="megabytes"),
        *whole_number(settings, "memcached_max_connections", 1),
        *port(settings, "memcached_port"),
        *address_list(settings, "memcached_allowed_sources"),
        *extra_options(settings),
    ]
