"""hostkit-failover: the failover watcher of the monitor hosts, and the planned switchover.

`hostkit-failover run` (a systemd service, roles/failover_watcher) watches the database
master of every cluster named in its configuration (all clusters of the global config
when none is named): every round it checks the master directly and asks each replica
whether it still hears the master (host_programs/failover/decide.py decides), and after a verdict
of death it fails over: fence, promote, publish in the global config, repoint (module_utils/
failover_run.py). Each failover is a journal in the state directory, written before and
after every step; a watcher that is restarted in the middle finishes it first. Old masters
that are fenced in the global config and come back are made read-only and cut off again.
A cluster serves one or several products: one journal, and one publish that moves all of
them in one epoch.

`hostkit-failover switchover --cluster C|--product P [--new-master S]`
(playbooks/failover.yml) makes a planned switchover: master read-only, wait for the new
master to apply everything, promote, publish, repoint. `ack` acknowledges the last
automatic failover (anti-flap), `abandon` gives up an unfinished journal when an operator
takes over, `status` prints the state file, `check` is a Nagios plugin reading it.

Decisions are logged with UTC timestamps (milliseconds) to stderr (the journal of systemd);
the state file (<state_dir>/state.json) tells monitoring what the watcher sees. No Ansible
imports; Python 3.9+.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from host_programs.failover import decide as fo
from host_programs.failover.check import check
from host_programs.failover.config import (
    DEFAULT_CONFIG,
    PROGRAM,
    WatcherConfig,
    WatcherError,
    read_config,
)
from host_programs.failover.document import cluster_named
from host_programs.failover.fence import make_fencer
from host_programs.failover.logs import log_event, setup_logging
from host_programs.failover.loop import Watcher
from host_programs.failover.state import StateDir
from host_programs.failover.switchover import abandon, switchover
from module_utils.global_config import GlobalConfig, GlobalConfigError, make_client

# --------------------------------------------------------------------------- entry point


def build(config: WatcherConfig) -> Watcher:
    for name, value in config.aws_environment.items():
        os.environ.setdefault(name, value)
    store = GlobalConfig(make_client(config.region, config.endpoint_url, max_attempts=2,
                                     connect_timeout=2, read_timeout=5),
                         config.bucket, config.key)
    return Watcher(config, store, make_fencer(config.fence))


def _which_cluster(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--cluster", help="the database cluster")
    which.add_argument("--product", help="a product: its database cluster")


def _document_for(config: WatcherConfig) -> dict[str, Any] | None:
    """The global config, read once (for an operator's command naming a product)."""
    return build(config).document.get(force=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROGRAM, description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="configuration file (JSON)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="watch the masters and fail over (the service)")
    s = sub.add_parser("switchover", help="planned switchover of one cluster's master")
    _which_cluster(s)
    s.add_argument("--new-master")
    a = sub.add_parser("ack", help="acknowledge the last automatic failover (anti-flap)")
    _which_cluster(a)
    a.add_argument("--journal", help="only this failover (default: the last one)")
    b = sub.add_parser("abandon", help="give up an unfinished failover or switchover (the "
                                       "operator takes over)")
    _which_cluster(b)
    b.add_argument("--reason", required=True)
    sub.add_parser("status", help="print the state file")
    c = sub.add_parser("check", help="Nagios plugin: the watcher's state")
    c.add_argument("--max-age", type=float, default=30.0)
    sub.add_parser("check-config", help="check the configuration file")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        config = read_config(args.config)
        if args.command == "check-config":
            print(f"{args.config}: ok")
            return 0
        if args.command in ("status", "check", "ack", "abandon"):
            state = StateDir(config.state_dir)
            if args.command in ("abandon", "ack"):
                name = args.cluster or cluster_named(_document_for(config), None, args.product)
            if args.command == "abandon":
                print(f"{abandon(state, name, args.reason)}: abandoned")
                return 0
            if args.command == "ack":
                state.ack(name, args.journal)
                print(f"cluster {name}: acknowledgement written; the watcher takes it at its "
                      "next round")
                return 0
            if args.command == "status":
                print(json.dumps(state.load_state(), indent=2, sort_keys=True))
                return 0
            code, line = check(state.load_state(), args.max_age, time.time())
            print(line)
            return code
        watcher = build(config)
        if args.command == "switchover":
            name = cluster_named(watcher.document.get(force=True), args.cluster, args.product)
            print(json.dumps(switchover(watcher, name, args.new_master), indent=2))
            return 0
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        watcher.run(stop)
        return 0
    except (WatcherError, fo.FailoverError, GlobalConfigError) as exc:
        log_event("error", "refused", error=str(exc))
        print(f"{PROGRAM}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
