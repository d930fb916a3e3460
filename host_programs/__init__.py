"""The programs hostkit runs on its servers, each installed as one unit by its role
(plugin_utils/host_programs.py computes what it needs; see host_programs/README.md):

- config_agent: the web servers' config agent (roles/config_agent);
- failover: the failover watcher of the monitor hosts (roles/failover_watcher);
- backup: the database servers' backup program (roles/mysql_backup);
- common: what they share (settings files, atomic writes and locks, the fleet questions).

Python 3.9+ (EL 9's system Python), no Ansible imports.
"""
