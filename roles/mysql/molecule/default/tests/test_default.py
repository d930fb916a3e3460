"""Behaviour of the mysql role on a single master: the server, its settings, accounts,
read_only at run time but not in the file, and a crash that is not restarted."""

import re
import time

testinfra_hosts = ["mysql-master"]


def sql(host, query):
    return host.check_output("mariadb -N -B -e %s", query).strip()


def test_service_enabled_and_socket_masked(host):
    assert host.service("mariadb").is_running
    assert host.service("mariadb").is_enabled
    assert host.run("systemctl is-enabled mariadb.socket").stdout.strip() == "masked"
    assert host.check_output("systemctl show mariadb -p Restart") == "Restart=no"


def test_listens_on_the_private_address_only(host):
    address = host.check_output("hostname -I").split()[0]
    listening = host.check_output("ss -ltnH 'sport = :3306'")
    assert {line.split()[3] for line in listening.splitlines()} == {f"{address}:3306"}


def test_settings_reach_the_server(host):
    address = host.check_output("hostname -I").split()[0]
    a, b, c, d = (int(x) for x in address.split("."))
    assert sql(host, "SELECT @@server_id") == str((a << 24) + (b << 16) + (c << 8) + d)
    assert sql(host, "SELECT @@max_connections") == "123"
    assert sql(host, "SELECT @@log_bin, @@binlog_format, @@gtid_strict_mode, @@log_slave_updates,"
                     " @@sync_binlog, @@innodb_flush_log_at_trx_commit, @@slave_net_timeout") == \
        "1\tROW\t1\t1\t1\t1\t10"
    assert sql(host, "SELECT @@rpl_semi_sync_master_enabled, @@rpl_semi_sync_slave_enabled, "
                     "@@rpl_semi_sync_master_wait_point") == "1\t0\tAFTER_SYNC"


def test_read_only_in_the_file_but_the_master_writable(host):
    conf = host.file("/etc/mysql/mariadb.conf.d/60-hostkit-server.cnf").content_string
    assert re.search(r"^read_only = ON$", conf, re.M)
    assert sql(host, "SELECT @@read_only") == "0"


def test_accounts(host):
    assert sql(host, "SELECT Host, plugin FROM mysql.user WHERE User='root'") == \
        "localhost\tunix_socket"
    assert sql(host, "SELECT Host FROM mysql.user WHERE User='hello'") == "10.77.0.0/255.255.0.0"
    grants = sql(host, "SHOW GRANTS FOR 'hello'@'10.77.0.0/255.255.0.0'")
    assert "ON `hello`.*" in grants
    assert sql(host, "SELECT COUNT(*) FROM mysql.user WHERE User='hostkit_repl'") == "1"
    monitor = sql(host, "SHOW GRANTS FOR 'hostkit_monitor'@'localhost'")
    assert "PROCESS, BINLOG MONITOR, SLAVE MONITOR" in monitor
    assert "hello" in sql(host, "SHOW DATABASES").split()
    assert sql(host, "SELECT COUNT(*) FROM mysql.user WHERE User=''") == "0"


def test_root_has_no_tcp_login(host):
    address = host.check_output("hostname -I").split()[0]
    result = host.run("mariadb -uroot -h%s -e 'SELECT 1'", address)
    assert result.rc != 0 and "Access denied" in result.stderr


def test_firewall_rule(host):
    rule = host.file("/etc/nftables.d/mysql.nft")
    assert rule.exists
    assert "tcp dport 3306 accept" in host.check_output("nft list chain inet hostkit input")


def test_crashed_server_stays_down(host):
    host.run("pkill -9 -x mariadbd")
    time.sleep(8)
    assert host.run("mariadb -e 'SELECT 1'").rc != 0
    assert host.run("pgrep -x mariadbd").rc == 1
    host.check_output("systemctl start mariadb")
    assert sql(host, "SELECT @@read_only") == "1"  # a restarted master comes back read-only
    host.check_output("mariadb -e 'SET GLOBAL read_only = 0'")
