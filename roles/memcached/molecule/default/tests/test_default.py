"""Behaviour of the memcached role: private address only, web tier only, settings applied.

Runs against memcached-server (Molecule's Ansible inventory); the client side runs inside
the web-client container (group role_web, allowed by default) and, for the source that
is not allowed, in this test process on the Docker host.
"""

import contextlib
import socket

import pytest
import testinfra

testinfra_hosts = ["memcached-server"]

CLIENT = "docker://web-client"

# Sends one memcached command line and prints everything up to the server's reply end.
CLIENT_CODE = """
import socket, sys
addr, port, command = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with socket.create_connection((addr, port), timeout=5) as s:
    s.sendall(command.encode() + b"\\r\\nquit\\r\\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
print(data.decode())
"""


@pytest.fixture(scope="module")
def server_address(host):
    facts = host.ansible("setup", "gather_subset=network")["ansible_facts"]
    return facts["ansible_default_ipv4"]["address"]


@pytest.fixture(scope="module")
def settings(host):
    return host.ansible.get_variables()


@pytest.fixture(scope="module")
def client():
    return testinfra.get_host(CLIENT)


@pytest.fixture(scope="module")
def client_address(client):
    return client.check_output("hostname -I").split()[0]


def memcached_command(client, address, port, command):
    """Run one memcached command from the client container; return {stat: value}."""
    out = client.check_output("python3 -c %s %s %s %s", CLIENT_CODE, address, str(port), command)
    stats = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "STAT":
            stats[parts[1]] = " ".join(parts[2:])
    assert out.rstrip().endswith("END"), out
    return stats


def test_service_running_and_enabled(host):
    service = host.service("memcached")
    assert service.is_running
    assert service.is_enabled


def test_listens_on_private_address_only(host, server_address):
    out = host.check_output("ss -ltnH 'sport = :11211'")
    local = {line.split()[3] for line in out.splitlines() if line.strip()}
    assert local == {f"{server_address}:11211"}, out
    assert "0.0.0.0:11211" not in local and "*:11211" not in local


def test_udp_disabled(host):
    assert host.check_output("ss -lunH 'sport = :11211'").strip() == ""


def test_web_client_gets_stats(client, server_address):
    stats = memcached_command(client, server_address, 11211, "stats")
    assert int(stats["pid"]) > 0
    assert "curr_connections" in stats


def test_configured_memory_and_connections(client, server_address, settings):
    stats = memcached_command(client, server_address, 11211, "stats settings")
    assert int(stats["maxbytes"]) == settings["memcached_memory_mb"] * 1024 * 1024
    assert int(stats["maxconns"]) == settings["memcached_max_connections"]
    assert stats["udpport"] == "0"
    assert stats["tcpport"] == "11211"


def test_firewall_allows_only_the_web_client(host, client_address):
    rule = host.file("/etc/nftables.d/memcached.nft")
    assert rule.exists
    ruleset = host.check_output("nft list chain inet hostkit input")
    assert "policy drop" in ruleset
    lines = [line.strip() for line in ruleset.splitlines() if "dport 11211" in line]
    assert lines == [f"ip saddr {client_address} tcp dport 11211 accept"], ruleset


def test_source_not_allowed_is_dropped(host, server_address):
    # The Docker host (this test process) is not in memcached_allowed_sources. First show
    # it reaches the server at all: SSH is open in the common role's ruleset, so tcp/22
    # connects (or is refused at once where no sshd runs); it does not time out.
    with contextlib.suppress(ConnectionRefusedError):
        socket.create_connection((server_address, 22), timeout=2).close()
    # memcached's port: the packets are dropped, so the connection times out.
    with pytest.raises(TimeoutError):
        socket.create_connection((server_address, 11211), timeout=2).close()


def test_memcstat_answers(host, server_address):
    # From the server itself (its own address is reached over lo, which is accepted).
    out = host.check_output("memcstat --servers=%s:11211", server_address)
    assert "pid:" in out
