"""Day two on the sandbox: two products on one database cluster, through two incidents.

hello and notes share the database cluster `hello` (products.yml) and the memcached pool. The
sequence an operator lives through:

1. `make up` (the session's sandbox);
2. kill -9 of the master: one failover moves both products;
3. `make up` again: it passes, names the fenced old master, and changes nothing on the
   servers (the live positions are the truth, not the labels);
4. rejoin of the old master (playbooks/rejoin.yml): physical copy, all 4 positions held;
5. `make up`: changed=0 on every host;
6. a planned switchover (playbooks/failover.yml -e cluster=hello);
7. `make up`: changed=0 on every host;
8. kill -9 of the new master within the hour: the rejoin acknowledged the first failover,
   so this one is not held back;
9. redundancy restored by a new server (playbooks/launch.yml -e role=db -e cluster=hello).

After every step both products answer through the edge, and no write acknowledged to either
product is missing from the master. At the end the new server is removed and the cluster is
put back in its initial positions for the other modules.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from module_utils.global_config import remove_server
from tests.platform import failover_site as fs
from tests.platform.day_two_site import both_serve, full, incident, make_up, run

pytestmark = [pytest.mark.platform, pytest.mark.sandbox]


@pytest.fixture(scope="module")
def site(request: pytest.FixtureRequest) -> Iterator[fs.Site]:
    sandbox = fs.sandbox_site()
    request.getfixturevalue("sandbox_up")
    fs.restore(sandbox)
    yield sandbox
    # Leave the sandbox as the other modules expect it: the launched server gone, the
    # cluster in its initial positions.
    launched = [s for s in sandbox.doc()["servers"] if s.startswith("hostkit-db-")
                and s not in sandbox.dbs]
    for server in launched:
        sandbox.store().update(lambda d, s=server: remove_server(d, s), "test_day_two")
        fs.sh("docker", "rm", "-f", server, check=False)
    fs.restore(sandbox)


def test_two_products_on_one_cluster_through_two_incidents(site: fs.Site) -> None:
    figures: dict[str, Any] = {}
    both_serve("make up")

    first = incident(site)                                                      # 2
    figures["first_failover"] = first
    after = make_up(site, "the failover")                                       # 3
    assert f"{first['old']} is fenced in the global config" in after["output"]

    started = time.monotonic()
    rejoined = run(site, "playbooks/rejoin.yml", "-e", f"host={first['old']}")  # 4
    figures["rejoin_s"] = round(time.monotonic() - started, 1)
    positions = full(site)
    assert first["old"] in positions.values(), positions
    assert "seeded with a physical copy" in rejoined.stdout
    both_serve("the rejoin")

    make_up(site, "the rejoin")                                                 # 5

    master = str(site.positions()["master"])                                    # 6
    run(site, "playbooks/failover.yml", "-e", "cluster=hello")
    assert site.positions()["master"] != master
    full(site)
    both_serve("the switchover")

    make_up(site, "the switchover")                                             # 7

    second = incident(site)                                                     # 8
    figures["second_failover"] = second

    started = time.monotonic()                                                  # 9
    launched = run(site, "playbooks/launch.yml", "-e", "role=db", "-e", "cluster=hello")
    figures["launch_db_s"] = round(time.monotonic() - started, 1)
    positions = full(site)
    new = [s for s in positions.values() if s not in site.dbs]
    assert len(new) == 1, positions
    assert "seeded with a physical copy" in launched.stdout
    both_serve("the replacement")
    print("day two figures: " + json.dumps(figures))
