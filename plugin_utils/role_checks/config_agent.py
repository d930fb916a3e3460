"""Settings checks of role config_agent (tasks/validate.yml).

The agent program checks the configuration file the role renders from these variables
(`hostkit-config-agent --check-config`, the `validate` of that file), against a schema of
its own fields (`interval` as a float, ports as integers, ...); the checks here are about
the role's variables before anything is rendered, with the role's own limits (an interval
of at least 0.5 s), so they are not the program's schema.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from plugin_utils.products import product_problems
from plugin_utils.role_checks.common import (
    absolute_path,
    environment,
    http_url_or_empty,
    not_empty,
    number,
    port,
)

# What may go into the agent's EnvironmentFile (its AWS credentials).
AWS_ENVIRONMENT = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
PATHS = ("config_agent_www_root", "config_agent_install_dir", "config_agent_config_dir",
         "config_agent_state_dir")
# An octal mode as the role writes it into the agent's configuration ('0640', '640').
_FILE_MODE = re.compile(r"^0?[0-7][0-7][0-7]$")


def file_mode(settings: Mapping[str, Any]) -> list[str]:
    value = settings.get("config_agent_file_mode")
    if not _FILE_MODE.match(str(value)):
        return ["config_agent_file_mode must be an octal mode in quotes such as '0640', "
                f"got {value!r}"]
    return []


def problems(settings: Mapping[str, Any]) -> list[str]:
    return [
        *not_empty(settings, "config_agent_bucket",
                   ": the agent needs the global config bucket (set it, or "
                   "hostkit_global_config_bucket; leave the role out where there is no "
                   "global config)"),
        *not_empty(settings, "config_agent_key"),
        *http_url_or_empty(settings, "config_agent_endpoint_url"),
        *number(settings, "config_agent_interval", 0.5, unit="seconds"),
        *number(settings, "config_agent_backoff_max", 0.5, unit="seconds"),
        *file_mode(settings),
        *port(settings, "config_agent_db_port"),
        *port(settings, "config_agent_memcached_port"),
        *environment(settings, "config_agent_aws_environment", AWS_ENVIRONMENT),
        *(problem for name in PATHS for problem in absolute_path(settings, name)),
        *product_problems(settings.get("config_agent_products"), ("database",)),
    ]
