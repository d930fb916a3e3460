"""Behaviour of the role common on a Debian 12 systemd container (Molecule verify).

The scenario's host_vars (molecule.yml) give the host the product `demo` (extra users
demo_dev with a key and sudo rules, demo_ro without keys) out of a catalog that also has
`other`, two firewall rules, and journald limits; prepare.yml left state to clean up.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import testinfra.utils.ansible_runner
import yaml

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]
).get_hosts("all")

REPO = Path(__file__).resolve().parents[5]
KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG3EsaT8esH1K+xrMbWjwkRepgPiiXzUvYGPvueO+h6i "
       "demo_dev@molecule")
STALE_KEY = "AAAAC3NzaC1lZDI1NTE5AAAAIEHMDC23eAib32LhV9MxkcD51V9/pQMUGsZiauvUFZBa"
SUDOERS = "/etc/sudoers.d/hostkit-demo"


def test_base_packages_from_the_catalog(host):
    catalog = yaml.safe_load((REPO / "image_builders" / "catalog.yml").read_text())
    base = catalog["components"]["base"]
    for name in base["packages"]["Debian"]:
        assert host.package(name).is_installed, name
    for unit in base["services"]["Debian"]:
        assert host.service(unit).is_enabled, unit


def test_ssh_and_cron_run(host):
    assert host.service("ssh").is_running
    assert host.service("cron").is_running


def test_timezone_is_utc(host):
    assert host.check_output("timedatectl show --property=Timezone --value") == "UTC"
    assert host.check_output("date +%Z") == "UTC"


def test_chrony_configured_enabled_and_skipped_without_cap_sys_time(host):
    conf = host.file("/etc/chrony/chrony.conf")
    assert "pool 2.debian.pool.ntp.org iburst" in conf.content_string
    assert host.run("chronyd -p -f /etc/chrony/chrony.conf").rc == 0
    assert host.service("chrony").is_enabled
    capbnd = int(host.check_output("awk '/^CapBnd/ {print $2}' /proc/1/status"), 16)
    if not capbnd & (1 << 25):  # no CAP_SYS_TIME: systemd skips the unit, nothing failed
        assert host.check_output("systemctl show chrony --property=ConditionResult --value") == "no"
        assert host.run("systemctl is-failed --quiet chrony").rc != 0
    else:
        assert host.service("chrony").is_running


def test_hostname_left_to_the_container_engine(host):
    assert host.check_output("hostname") == "common-debian12"


def test_product_system_user(host):
    user = host.user("demo")
    assert user.exists
    assert user.group == "demo"
    assert user.home == "/srv/www/demo"
    assert user.shell == "/usr/sbin/nologin"
    assert user.uid < 1000  # a system user


def test_only_the_hosts_products_get_users(host):
    assert not host.user("other").exists
    assert not host.user("other_dev").exists
    assert not host.file("/etc/sudoers.d/hostkit-other").exists


def test_extra_users_groups_and_shells(host):
    dev = host.user("demo_dev")
    assert dev.exists
    assert {"demo", "demo_ops"} <= set(dev.groups)
    assert dev.shell == "/bin/bash"
    ro = host.user("demo_ro")
    assert ro.shell == "/bin/sh"
    assert not host.file(f"{ro.home}/.ssh/authorized_keys").exists


def test_authorized_keys_are_exactly_the_listed_ones(host):
    keys = host.file("/home/demo_dev/.ssh/authorized_keys")
    assert keys.user == "demo_dev"
    assert KEY in keys.content_string
    assert STALE_KEY not in keys.content_string  # exclusive: prepare.yml's key is gone


def test_sudo_rules_in_effect(host):
    out = host.check_output("sudo -l -U demo_dev")
    assert "(demo) NOPASSWD: ALL" in out
    assert "(root) NOPASSWD: /usr/bin/systemctl reload apache2" in out
    # demo_ro has no rules
    assert "not allowed" in host.check_output("sudo -l -U demo_ro")


def test_sudoers_file_valid_and_private(host):
    f = host.file(SUDOERS)
    assert f.user == "root"
    assert f.mode == 0o440
    assert host.run(f"visudo -cf {SUDOERS}").rc == 0
    assert not host.file("/etc/sudoers.d/hostkit-gone").exists  # stale file removed


def test_visudo_refuses_a_broken_rule(host):
    path = "/tmp/hostkit-broken-sudoers"
    host.run(f"printf 'demo_dev ALL=(demo NOPASSWD ALL\\n' > {path}")
    try:
        assert host.run(f"visudo -cf {path}").rc != 0
    finally:
        host.run(f"rm -f {path}")


def _apply_sudo_rule(host, tmp_path, rule, excepted):
    """Apply the role again (sudo tasks only) with `rule` as demo_dev's first sudo rule,
    allowed as written by the operators' platform_product_exceptions when `excepted`."""
    inventory_dir = Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent
    host_vars = yaml.safe_load(
        (inventory_dir / "host_vars" / "common-debian12").read_text()
    )
    products = host_vars["platform_products"]
    products[0]["users"][0]["sudo"] = [rule]
    exceptions = host_vars["platform_product_exceptions"]
    if excepted:
        exceptions["demo"]["sudo"].append(rule)
    extra = tmp_path / "broken.json"
    extra.write_text(json.dumps({"platform_products": products,
                                 "platform_product_exceptions": exceptions}))
    playbook = tmp_path / "broken.yml"
    playbook.write_text("- hosts: all\n  roles: [common]\n")
    run = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(inventory_dir),
         str(playbook), "-e", f"@{extra}", "--tags", "common_sudo"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    return run.returncode, run.stdout + run.stderr


def test_role_refuses_a_broken_sudo_rule_and_keeps_the_old_file(host, tmp_path):
    """A rule visudo rejects (let through by the operators' exception, so that it reaches
    the template): the run fails at the template's validation and the file stays."""
    before = host.file(SUDOERS).sha256sum
    rc, out = _apply_sudo_rule(host, tmp_path, "ALL=(demo NOPASSWD ALL", excepted=True)
    assert rc != 0, out
    assert "failed to validate" in out, out
    assert host.file(SUDOERS).sha256sum == before


@pytest.mark.parametrize("rule", ["ALL=(ALL) NOPASSWD: ALL", "ALL=(root) ALL", "ALL",
                                  "ALL=(other) NOPASSWD: ALL"])
def test_role_refuses_a_sudo_rule_beyond_the_products_users(host, tmp_path, rule):
    """Without an operators' exception, a rule that runs as anyone but the product's own
    users stops the run before anything changes, naming the product and the field."""
    before = host.file(SUDOERS).sha256sum
    rc, out = _apply_sudo_rule(host, tmp_path, rule, excepted=False)
    assert rc != 0, out
    assert "product 'demo': field 'users[0].sudo[0]'" in out, out
    assert host.file(SUDOERS).sha256sum == before
    assert "(ALL) NOPASSWD: ALL" not in host.check_output("sudo -l -U demo_dev")


def test_sshd_effective_settings(host):
    settings = dict(
        line.split(" ", 1) for line in host.check_output("sshd -T").splitlines() if " " in line
    )
    # prepare.yml's 50-cloud-init.conf says "PasswordAuthentication yes": 00-hostkit wins.
    assert settings["passwordauthentication"] == "no"
    assert settings["permitrootlogin"] in ("without-password", "prohibit-password")
    assert settings["kbdinteractiveauthentication"] == "no"
    assert settings["x11forwarding"] == "no"
    assert settings["maxauthtries"] == "3"


def test_running_sshd_offers_public_keys_only(host):
    cmd = host.run(
        "ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
        "-o PubkeyAuthentication=no -o ConnectTimeout=5 demo_dev@127.0.0.1 true"
    )
    assert cmd.rc != 0
    assert "Permission denied (publickey)" in cmd.stderr


def test_journald_limits_in_effect(host):
    conf = host.check_output("systemd-analyze cat-config systemd/journald.conf")
    assert "SystemMaxUse=200M" in conf
    assert "MaxRetentionSec=2week" in conf
    # journald was restarted with the limit: its latest report of the system journal says so
    report = host.check_output(
        "journalctl -u systemd-journald -b --no-pager -o cat | grep 'System Journal' | tail -n 1"
    )
    assert "max 200.0M" in report, report


def test_logrotate_rotates_hostkit_logs(host):
    host.run("rm -rf /var/log/hostkit/probe.log* /tmp/hostkit-logrotate.state")
    host.run("echo line > /var/log/hostkit/probe.log")
    try:
        host.check_output(
            "logrotate --force --state /tmp/hostkit-logrotate.state /etc/logrotate.d/hostkit"
        )
        assert host.file("/var/log/hostkit/probe.log.1").exists
    finally:
        host.run("rm -rf /var/log/hostkit/probe.log* /tmp/hostkit-logrotate.state")


def test_nftables_ruleset(host):
    assert host.service("nftables").is_enabled
    ruleset = host.check_output("nft list ruleset")
    assert "table inet hostkit" in ruleset
    assert "policy drop;" in ruleset
    assert "tcp dport 22 accept" in ruleset
    assert "tcp dport 443 accept" in ruleset
    assert "ip saddr 10.20.0.0/16 tcp dport 8080 accept" in ruleset
    assert "ip6 saddr fd00:20::/64 tcp dport 8080 accept" in ruleset
    assert host.run("nft -c -f /etc/nftables.conf").rc == 0


def test_nft_rule_checker_refuses_a_bad_rule_file(host):
    path = "/tmp/hostkit-bad.nft"
    host.run(f"echo 'tcp dport 80 acept' > {path}")
    try:
        assert host.run(f"/usr/local/sbin/hostkit-nft-check {path}").rc != 0
    finally:
        host.run(f"rm -f {path}")
    assert host.run("/usr/local/sbin/hostkit-nft-check /etc/nftables.d/common.nft").rc == 0


def _container_ip(name: str) -> str:
    return subprocess.run(
        ["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
         name], capture_output=True, text=True, check=True,
    ).stdout.strip()


def _connects(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=2):
            return True
    except OSError:
        return False


@pytest.mark.parametrize(("port", "reachable"), [(443, True), (8080, False), (9999, False)])
def test_firewall_filters_traffic_from_outside(host, port, reachable):
    """From the machine running Molecule (not in 10.20.0.0/16): 443 is open to any source,
    8080 only to 10.20.0.0/16, 9999 to nobody. A listener on each port proves the
    difference is the firewall's."""
    unit = f"hostkit-probe-{port}"
    host.run(f"systemd-run --unit={unit} python3 -m http.server {port}")
    try:
        for _ in range(50):  # wait for the listener
            if host.run(f"ss -Htln 'sport = :{port}' | grep -q LISTEN").rc == 0:
                break
            time.sleep(0.1)
        probe = f"import socket; socket.create_connection(('127.0.0.1', {port}), 2)"
        assert host.run(f'python3 -c "{probe}"').rc == 0  # it listens: from inside, lo is open
        assert _connects(_container_ip("common-debian12"), port) is reachable
    finally:
        host.run(f"systemctl stop {unit}")
