#!/usr/bin/python3
"""hostkit-seed: a physical copy of a database server, streamed from a donor to a new replica.

On the new replica (its MariaDB stopped, its data thrown away):

    hostkit-seed receive --bind ADDR --port P --peer DONOR_ADDR --token-file F \\
                         --dir DIR [--timeout S] [--unpack 'mbstream -x -C DIR']

accepts one connection, from the donor's address only, that starts with the token of
TOKEN_FILE (a one-time secret both ends got from Ansible), and pipes everything after it into
`mbstream -x -C DIR`. Exit 0 only when the whole stream arrived and mbstream unpacked it.

On the donor (a running server of the same cluster):

    mariabackup --backup --stream=xbstream ... | hostkit-seed send --to ADDR --port P \\
                                                                   --token-file F

sends the token, then standard input, to the receiver. The stream is a mariabackup xbstream:
what is received is checked by mbstream, then by `mariabackup --prepare` (the role's next
step). No third-party modules; Python 3.9+ (EL 9).
"""

from __future__ import annotations

import argparse
import hmac
import os
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import BinaryIO

CHUNK = 1 << 20
TOKEN_BYTES = 64  # the token line is padded to this length


class SeedError(Exception):
    """The copy did not arrive whole; the message says why."""


def read_token(path: str) -> bytes:
    with open(path, "rb") as handle:
        token = handle.read().strip()
    if not 16 <= len(token) < TOKEN_BYTES:
        raise SeedError(f"{path}: the token must be 16 to {TOKEN_BYTES - 1} characters")
    return token


def token_line(token: bytes) -> bytes:
    return token.ljust(TOKEN_BYTES - 1, b" ") + b"\n"


def _recv_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        part = conn.recv(size - len(data))
        if not part:
            break
        data += part
    return data


def accept_donor(listener: socket.socket, peer: str, token: bytes, deadline: float
                 ) -> socket.socket:
    """The donor's connection: from `peer` and starting with the token. Others are closed
    (and said on stderr); waiting ends at `deadline` (monotonic)."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise SeedError(f"no donor connected from {peer} in time")
        listener.settimeout(left)
        try:
            conn, _ = listener.accept()
        except socket.timeout:
            raise SeedError(f"no donor connected from {peer} in time") from None
        address = conn.getpeername()[0]
        if address != peer:
            print(f"hostkit-seed: refused a connection from {address} (only {peer})",
                  file=sys.stderr)
            conn.close()
            continue
        conn.settimeout(30)
        got = _recv_exactly(conn, TOKEN_BYTES)
        if not hmac.compare_digest(got, token_line(token)):
            print(f"hostkit-seed: refused a connection from {address}: wrong token",
                  file=sys.stderr)
            conn.close()
            continue
        return conn


def copy_stream(source: socket.socket, sink: BinaryIO, idle: float) -> int:
    """Everything the donor sends after the token, into `sink`; bytes copied. A donor that
    sends nothing for `idle` seconds is a failed copy."""
    source.settimeout(idle)
    total = 0
    while True:
        try:
            data = source.recv(CHUNK)
        except socket.timeout:
            raise SeedError(f"the donor sent nothing for {idle:g} s (after {total} bytes)"
                            ) from None
        if not data:
            return total
        sink.write(data)
        total += len(data)


def receive(bind: str, port: int, peer: str, token: bytes, unpack: Sequence[str],
            timeout: float, idle: float = 120.0) -> int:
    """Listen, take the donor's stream and unpack it with `unpack` (its standard input).
    Returns the bytes received; SeedError when anything went wrong."""
    listener = socket.socket(socket.AF_INET6 if ":" in bind else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((bind, port))
    listener.listen(4)
    print(f"hostkit-seed: listening on {bind}:{port} for {peer}", file=sys.stderr, flush=True)
    try:
        conn = accept_donor(listener, peer, token, time.monotonic() + timeout)
    finally:
        listener.close()
    with conn, subprocess.Popen(list(unpack), stdin=subprocess.PIPE) as proc:
        assert proc.stdin is not None
        try:
            total = copy_stream(conn, proc.stdin, idle)
        except BaseException:
            proc.kill()
            raise
        finally:
            proc.stdin.close()
        code = proc.wait()
    if code != 0:
        raise SeedError(f"{shlex.join(unpack)} exited with {code} after {total} bytes")
    if total == 0:
        raise SeedError("the donor sent an empty stream")
    return total


def send(to: str, port: int, token: bytes, source: BinaryIO, timeout: float,
         retries: float = 30.0) -> int:
    """Connect to the receiver (retrying while it is not listening yet), send the token
    and then everything of `source`. Returns the bytes sent."""
    deadline = time.monotonic() + retries
    while True:
        try:
            conn = socket.create_connection((to, port), timeout=timeout)
            break
        except OSError as exc:
            if time.monotonic() >= deadline:
                raise SeedError(f"cannot connect to {to}:{port}: {exc}") from None
            time.sleep(0.5)
    total = 0
    with conn:
        conn.sendall(token_line(token))
        while True:
            data = source.read(CHUNK)
            if not data:
                break
            conn.sendall(data)
            total += len(data)
        conn.shutdown(socket.SHUT_WR)
    return total


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hostkit-seed", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("receive", help="take one donor's stream and unpack it")
    r.add_argument("--bind", required=True)
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--peer", required=True, help="the donor's address")
    r.add_argument("--token-file", required=True)
    r.add_argument("--dir", required=True, help="where mbstream unpacks the copy")
    r.add_argument("--timeout", type=float, default=300.0,
                   help="seconds to wait for the donor to connect")
    r.add_argument("--idle", type=float, default=120.0,
                   help="seconds without data after which the copy has failed")
    r.add_argument("--unpack", help="unpacking command (default: mbstream -x -C DIR)")
    s = sub.add_parser("send", help="send standard input to a receiver")
    s.add_argument("--to", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--token-file", required=True)
    s.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        token = read_token(args.token_file)
        if args.command == "receive":
            os.makedirs(args.dir, mode=0o700, exist_ok=True)
            unpack = shlex.split(args.unpack) if args.unpack else ["mbstream", "-x", "-C",
                                                                    args.dir]
            total = receive(args.bind, args.port, args.peer, token, unpack, args.timeout,
                            args.idle)
            what = "received"
        else:
            total = send(args.to, args.port, token, sys.stdin.buffer, args.timeout)
            what = "sent"
    except (SeedError, OSError) as exc:
        print(f"hostkit-seed: {exc}", file=sys.stderr)
        return 1
    seconds = time.monotonic() - started
    print(f"hostkit-seed: {what} {total} bytes in {seconds:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
