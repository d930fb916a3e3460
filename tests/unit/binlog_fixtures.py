"""Synthetic MariaDB binary log files for the backup tests: the magic number, a format
description event, the GTID list event at the top of the file, then transactions (a GTID
event, a query, a commit), and a rotate event when the file is closed. The layout follows
the real files (19-byte event headers, CRC32 checksums at the end of each event)."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable

MAGIC = b"\xfebin"


def event(kind: int, timestamp: int, server_id: int, body: bytes, position: int) -> bytes:
    length = 19 + len(body) + 4
    header = struct.pack("<IBIIIH", timestamp, kind, server_id, length, position + length, 0)
    payload = header + body
    return payload + struct.pack("<I", zlib.crc32(payload) & 0xFFFFFFFF)


def binlog(transactions: Iterable[tuple[int, int, int, int]], start: dict[int, tuple[int, int]],
           created: int, server_id: int = 11, rotate_to: str | None = None) -> bytes:
    """transactions: (timestamp, domain, server, seq); start: the GTID list at the top."""
    out = bytearray(MAGIC)

    def add(kind: int, ts: int, sid: int, body: bytes) -> None:
        out.extend(event(kind, ts, sid, body, len(out)))

    add(15, created, server_id, struct.pack("<H", 4) + b"10.11.18-MariaDB".ljust(50, b"\0")
        + struct.pack("<I", created) + b"\x13" + bytes(40))
    entries = b"".join(struct.pack("<IIQ", d, s, q) for d, (s, q) in sorted(start.items()))
    add(163, created, server_id, struct.pack("<I", len(start)) + entries)
    for ts, domain, server, seq in transactions:
        add(162, ts, server, struct.pack("<QIB", seq, domain, 0))
        add(2, ts, server, b"\0" * 13 + b"insert into t values (1)")
        add(16, ts, server, struct.pack("<Q", seq))
    if rotate_to:
        add(4, 0, server_id, struct.pack("<Q", 4) + rotate_to.encode())
    return bytes(out)
