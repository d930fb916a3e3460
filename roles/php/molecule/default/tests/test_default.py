"""Behaviour of the php role (with the apache role in front): each product's PHP runs in
its own PHP-FPM pool as the product's user, with the product's limits, opcache on, and
sessions in files or memcached as the product says.

Requests go to 127.0.0.1 inside the container (python3 urllib) with the product's Host.
"""

import json

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

POOL_DIR = "/etc/php/8.2/fpm/pool.d"


def get(host, path, vhost, **headers):
    headers["Host"] = vhost
    out = host.check_output("python3 -c %s %s %s", REQUEST_CODE, "http://127.0.0.1" + path,
                            json.dumps(headers))
    return json.loads(out)


def page(host, vhost, path="/"):
    answer = get(host, path, vhost)
    assert answer["status"] == 200, answer
    return json.loads(answer["body"])


@pytest.mark.parametrize(("vhost", "user"), [("demo.test", "demo"), ("www.demo.test", "demo"),
                                             ("shop.test", "shop")])
def test_php_runs_as_the_product_user(host, vhost, user):
    assert page(host, vhost)["user"] == user


def test_pool_processes_run_as_the_product_user(host):
    page(host, "shop.test")  # ondemand: a child exists only after a request
    ps = host.check_output("ps -eo user:20,args")
    for product in ("demo", "shop"):
        workers = [line.split()[0] for line in ps.splitlines()
                   if f"php-fpm: pool hostkit-{product}" in line]
        assert workers, ps
        assert set(workers) == {product}
    assert "php-fpm: pool www" not in ps


def test_front_controller_and_environment(host):
    info = page(host, "demo.test", "/some/route?x=1")
    assert info["uri"] == "/some/route?x=1"  # FallbackResource /index.php
    assert info["config_dir"] == "/srv/www/demo/shared/config"


def test_limits_from_the_product(host):
    demo = page(host, "demo.test")
    assert demo["memory_limit"] == "96M"
    assert demo["max_execution_time"] == "20"
    assert demo["upload_max_filesize"] == "4M"
    assert demo["post_max_size"] == "4M"
    assert demo["open_basedir"] == "/srv/www/demo:/tmp:/var/lib/php/hostkit-sessions/demo"
    shop = page(host, "shop.test")
    assert shop["memory_limit"] == "64M"
    assert shop["max_execution_time"] == "30"  # php_pool_defaults
    assert shop["open_basedir"] == "/srv/www/shop:/tmp"
    pools = {name: host.file(f"{POOL_DIR}/hostkit-{name}.conf").content_string
             for name in ("demo", "shop")}
    assert "pm = dynamic" in pools["demo"]
    assert "pm.max_children = 3" in pools["demo"]
    assert "pm = ondemand" in pools["shop"]
    assert "pm.max_children = 2" in pools["shop"]


def test_opcache_is_on(host):
    assert page(host, "demo.test")["opcache"] is True
    assert "opcache.enable => On" in host.check_output("php-fpm8.2 -i")


def test_sessions_in_files_for_demo(host):
    assert page(host, "demo.test")["session_save_handler"] == "files"
    sessions = host.file("/var/lib/php/hostkit-sessions/demo")
    assert sessions.is_directory
    assert sessions.user == "demo"
    assert sessions.mode == 0o700
    answer = get(host, "/session.php", "demo.test")
    assert answer["status"] == 200
    session_id = answer["body"].split()[0]
    session_file = host.file(f"/var/lib/php/hostkit-sessions/demo/sess_{session_id}")
    assert session_file.exists
    assert session_file.user == "demo"


def test_sessions_in_memcached_for_shop(host):
    shop = page(host, "shop.test")
    assert shop["session_save_handler"] == "memcached"
    assert shop["session_save_path"] == "127.0.0.1:11211"
    dump = host.run("php-fpm8.2 -tt")
    assert dump.rc == 0
    assert "session.save_handler" in dump.stderr and "memcached" in dump.stderr


def test_sockets_only_for_the_web_server(host):
    for product in ("demo", "shop"):
        sock = host.file(f"/run/php/hostkit-{product}.sock")
        assert sock.is_socket
        assert (sock.user, sock.group, sock.mode) == ("www-data", "www-data", 0o660)


def test_only_hostkit_pools(host):
    assert not host.file(f"{POOL_DIR}/www.conf").exists
    pools = host.check_output(f"ls {POOL_DIR}").split()
    assert sorted(pools) == ["hostkit-demo.conf", "hostkit-shop.conf"]
    assert host.run("php-fpm8.2 -t").rc == 0
    assert "hostkit-old" not in host.run("php-fpm8.2 -tt").stderr  # the stale pool is gone


def test_php_answers_through_apache_headers(host):
    answer = get(host, "/", "demo.test", **{"Accept-Encoding": "gzip"})
    headers = answer["headers"]
    assert headers["server"] == "Apache"
    assert "x-powered-by" not in headers  # expose_php off
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["cache-control"] == "private, no-store"  # PHP answers are not cached
    assert headers.get("content-encoding") == "gzip"


def test_missing_script_is_404(host):
    # Apache hands .php requests to the pool; a script that does not exist is FPM's 404.
    assert get(host, "/nope.php", "demo.test")["status"] == 404
