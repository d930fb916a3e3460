"""hostkit-failover: the failover watcher of the monitor hosts and the planned switchover."""
