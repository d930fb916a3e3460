"""Documentation fragment: how the hostkit MySQL modules log in (module_utils/mysql_login.py,
LOGIN_ARGUMENT_SPEC)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  login_unix_socket:
    description: Unix socket of the server (used unless O(login_host) is given).
    type: path
    default: /run/mysqld/mysqld.sock
  login_host:
    description: Connect over TCP to this host instead of the unix socket.
    type: str
  login_port:
    description: TCP port with O(login_host).
    type: int
    default: 3306
  login_user:
    description:
      - Account to log in with. The default V(root) is authenticated by the socket's peer user
        (MariaDB C(unix_socket)), so run the module with C(become).
    type: str
    default: root
  login_password:
    description: Password of O(login_user), when it has one.
    type: str
  connect_timeout:
    description: Seconds to wait for a connection.
    type: int
    default: 10
requirements:
  - PyMySQL on the managed host (Debian C(python3-pymysql), EL C(python3-PyMySQL))
"""
