"""base: the minimal server every role image starts from (time, cron, SSH, firewall, Python)."""

from image_builders.recipe import Recipe

image = Recipe("base", roles=("common",))

# EL 9: EPEL (munin, nagios, php-pecl-memcached) needs CodeReady Builder enabled.
image.run("dnf install -y -q dnf-plugins-core epel-release\n"
          "dnf config-manager --set-enabled crb", only="RedHat")
image.install("base")
# Hygiene removes the SSH host keys; Debian has no unit that makes new ones at first boot
# (EL has sshd-keygen@.service), so the image brings one.
image.write("/etc/systemd/system/ssh-host-keys.service", src="ssh-host-keys.service",
            only="Debian")
image.enable("base")
image.enable(units=("ssh-host-keys.service",), only="Debian")
image.run("install -d -m 0755 /etc/hostkit")
image.hygiene()
