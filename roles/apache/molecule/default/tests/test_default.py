"""Behaviour of the apache role: virtual hosts by Host header, 404 for unknown hosts,
hardening and security headers, compression, cache headers, local-only status page,
firewall, logs and their rotation.

Requests to 127.0.0.1 run inside the container (python3 urllib); the request that must be
refused as not local runs in this test process on the Docker host, against the
container's address.
"""

import json
import urllib.error
import urllib.request

import pytest

REQUEST_CODE = r"""
import json, sys, urllib.error, urllib.request
url, headers = sys.argv[1], json.loads(sys.argv[2])
try:
    resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10)
    status, hdrs, body = resp.status, resp.headers, resp.read()
except urllib.error.HTTPError as err:
    status, hdrs, body = err.code, err.headers, err.read()
print(json.dumps({"status": status, "headers": {k.lower(): v for k, v in hdrs.items()},
                  "body": body.decode("latin-1")}))
"""

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "SAMEORIGIN",
    "referrer-policy": "strict-origin-when-cross-origin",
}


def get(host, path, vhost=None, **headers):
    """GET http://127.0.0.1<path> from inside the container, with Host: vhost."""
    if vhost:
        headers["Host"] = vhost
    out = host.check_output("python3 -c %s %s %s", REQUEST_CODE, "http://127.0.0.1" + path,
                            json.dumps(headers))
    return json.loads(out)


@pytest.fixture(scope="module")
def address(host):
    return host.check_output(
        "python3 -c %s", "import socket; print(socket.gethostbyname(socket.gethostname()))")


def test_event_mpm_and_modules(host):
    modules = host.check_output("apache2ctl -M 2>/dev/null")
    for module in ("mpm_event_module", "proxy_fcgi_module", "headers_module", "deflate_module",
                   "expires_module", "status_module", "setenvif_module", "dir_module"):
        assert module in modules
    assert "mpm_prefork_module" not in modules
    assert host.run("apache2ctl -t").rc == 0


@pytest.mark.parametrize("vhost", ["demo.test", "www.demo.test"])
def test_product_answers_on_its_domains(host, vhost):
    answer = get(host, "/", vhost)
    assert answer["status"] == 200
    assert "demo static page" in answer["body"]
    # the product's apache_directives are inside its virtual host
    assert answer["headers"].get("x-hostkit-product") == "demo"


def test_unknown_host_gets_404(host):
    for vhost in ("unknown.test", "old.test", None):
        answer = get(host, "/", vhost)
        assert answer["status"] == 404
        assert "x-hostkit-product" not in answer["headers"]


def test_no_version_and_security_headers(host):
    for answer in (get(host, "/", "demo.test"), get(host, "/nope", "unknown.test")):
        assert answer["headers"]["server"] == "Apache"
        for name, value in SECURITY_HEADERS.items():
            assert answer["headers"].get(name) == value
        assert "Apache/" not in answer["body"]  # no signature on error pages


def test_dot_files_are_hidden(host):
    assert get(host, "/.git/config", "demo.test")["status"] == 404


def test_gzip_for_text(host):
    for path in ("/", "/style.css"):
        answer = get(host, path, "demo.test", **{"Accept-Encoding": "gzip"})
        assert answer["status"] == 200
        assert answer["headers"].get("content-encoding") == "gzip"
        assert "Accept-Encoding" in answer["headers"].get("vary", "")
    plain = get(host, "/style.css", "demo.test")
    assert "content-encoding" not in plain["headers"]


def test_cache_headers_for_static_assets(host):
    answer = get(host, "/style.css", "demo.test")
    assert answer["headers"]["cache-control"] == "public, max-age=86400"
    assert "expires" in answer["headers"]
    # An HTML page is not a static asset: no long cache lifetime.
    assert "max-age=86400" not in get(host, "/", "demo.test")["headers"].get("cache-control", "")


def test_server_status_from_localhost(host):
    answer = get(host, "/server-status?auto")
    assert answer["status"] == 200
    assert "Total Accesses" in answer["body"]  # ExtendedStatus On
    assert "ServerMPM: event" in answer["body"]


def test_server_status_refused_from_elsewhere(address):
    # From the Docker host: reaches port 80 through the firewall rule, but is not local.
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"http://{address}/", timeout=10)
    assert err.value.code == 404  # the default host: port 80 is open in the firewall
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"http://{address}/server-status", timeout=10)
    assert err.value.code == 403


def test_firewall_rule(host):
    rule = host.file("/etc/nftables.d/apache.nft")
    assert rule.exists
    assert "tcp dport 80 accept" in rule.content_string
    assert "tcp dport 80 accept" in host.check_output("nft list ruleset")


def test_vhost_files(host):
    vhost = host.file("/etc/apache2/sites-enabled/hostkit-demo.conf")
    assert vhost.is_file
    text = vhost.content_string
    assert "ServerName demo.test" in text
    assert "ServerAlias www.demo.test" in text
    assert 'DocumentRoot "/srv/www/demo/current/public"' in text
    assert "proxy:unix:/run/php/hostkit-demo.sock|fcgi://localhost" in text
    assert "SetEnv HOSTKIT_CONFIG_DIR /srv/www/demo/shared/config" in text
    assert not host.file("/etc/apache2/sites-enabled/000-default.conf").exists
    assert not host.file("/etc/apache2/sites-enabled/hostkit-old.conf").exists  # purged
    assert not host.file("/etc/apache2/conf-enabled/security.conf").exists


def test_logs_per_product_are_rotated(host):
    get(host, "/", "demo.test")
    log = host.file("/var/log/apache2/hostkit-demo-access.log")
    assert log.exists
    assert "GET / " in log.content_string
    debug = host.run("logrotate --debug /etc/logrotate.d/apache2")
    assert "/var/log/apache2/hostkit-demo-access.log" in debug.stdout + debug.stderr


def test_configtest_helper_rejects_a_bad_candidate(host):
    bad = host.run("printf 'NoSuchDirective on\\n' | hostkit-apache-configtest - "
                   "/etc/apache2/sites-enabled/hostkit-demo.conf")
    assert bad.rc != 0
    assert "Invalid command 'NoSuchDirective'" in bad.stderr
    assert "/etc/apache2/sites-enabled/hostkit-demo.conf" in bad.stderr  # real path, not the copy
    good = host.run("hostkit-apache-configtest /etc/apache2/sites-enabled/hostkit-demo.conf "
                    "/etc/apache2/sites-enabled/hostkit-demo.conf")
    assert good.rc == 0, good.stderr
    assert host.run("ls /tmp | grep -c hostkit-apache-configtest").stdout.strip() == "0"
