"""How the hostkit MySQL modules log in: the shared login options and a PyMySQL connection.

By default the modules log in as root over the server's unix socket (MariaDB authenticates
root by the socket's peer user, so no password exists or is needed); login_host switches to
TCP. No Ansible imports.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DEFAULT_SOCKET = "/run/mysqld/mysqld.sock"

LOGIN_ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "login_unix_socket": {"type": "path", "default": DEFAULT_SOCKET},
    "login_host": {"type": "str"},
    "login_port": {"type": "int", "default": 3306},
    "login_user": {"type": "str", "default": "root"},
    "login_password": {"type": "str", "no_log": True},
    "connect_timeout": {"type": "int", "default": 10},
}


def connect(driver: Any, params: Mapping[str, Any], **overrides: Any) -> Any:
    """A PyMySQL connection (autocommit) from the login options; `overrides` replace
    connection keywords (host, port, user, password)."""
    kwargs: dict[str, Any] = {
        "user": params.get("login_user") or "root",
        "connect_timeout": int(params.get("connect_timeout") or 10),
        "autocommit": True,
        "charset": "utf8mb4",
    }
    if params.get("login_password"):
        kwargs["password"] = params["login_password"]
    if params.get("login_host"):
        kwargs.update(host=params["login_host"], port=int(params.get("login_port") or 3306))
    else:
        kwargs["unix_socket"] = params.get("login_unix_socket") or DEFAULT_SOCKET
    kwargs.update({k: v for k, v in overrides.items() if v is not None})
    if "host" in overrides:
        kwargs.pop("unix_socket", None)
    return driver.connect(**kwargs)
