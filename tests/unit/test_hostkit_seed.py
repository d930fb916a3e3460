"""roles/mysql/files/hostkit_seed.py: the stream of a physical copy from a donor to a new
replica, over a real socket on 127.0.0.1 (the unpacking command is `cat > FILE` here)."""

from __future__ import annotations

import importlib.util
import io
import socket
import threading
import time
from pathlib import Path
from typing import Any

PATH = Path(__file__).resolve().parents[2] / "roles" / "mysql" / "files" / "hostkit_seed.py"
spec = importlib.util.spec_from_file_location("hostkit_seed", PATH)
assert spec and spec.loader
seed: Any = importlib.util.module_from_spec(spec)
spec.loader.exec_module(seed)

TOKEN = b"0123456789abcdef0123456789abcdef"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def receiving(port: int, out: Path, peer: str = "127.0.0.1", timeout: float = 10,
              idle: float = 5) -> tuple[threading.Thread, dict[str, Any]]:
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["bytes"] = seed.receive("127.0.0.1", port, peer, TOKEN,
                                           ["sh", "-c", f"cat > {out}"], timeout, idle)
        except seed.SeedError as exc:
            result["error"] = str(exc)
    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def test_the_stream_arrives_whole(tmp_path: Path) -> None:
    port, out = free_port(), tmp_path / "copy"
    data = bytes(range(256)) * 40000  # 10 MB
    thread, result = receiving(port, out)
    sent = seed.send("127.0.0.1", port, TOKEN, io.BytesIO(data), timeout=5)
    thread.join(10)
    assert sent == len(data) == result["bytes"]
    assert out.read_bytes() == data


def connect(port: int) -> socket.socket:
    """A raw connection to the receiver, once it listens."""
    for _ in range(100):
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=5)
        except ConnectionRefusedError:
            time.sleep(0.05)
    raise AssertionError("the receiver never listened")


def closed(conn: socket.socket) -> bool:
    """Whether the receiver closed the connection (an orderly close, or a reset because the
    refused client's data was left unread)."""
    try:
        return conn.recv(10) == b""
    except ConnectionResetError:
        return True


def test_a_wrong_token_is_refused_and_the_donor_still_gets_in(tmp_path: Path) -> None:
    port, out = free_port(), tmp_path / "copy"
    thread, result = receiving(port, out)
    intruder = connect(port)
    intruder.sendall(seed.token_line(b"x" * 32) + b"evil")
    assert closed(intruder)
    intruder.close()
    seed.send("127.0.0.1", port, TOKEN, io.BytesIO(b"good"), timeout=5)
    thread.join(10)
    assert out.read_bytes() == b"good" and result["bytes"] == 4


def test_only_the_donor_address_is_accepted(tmp_path: Path) -> None:
    port, out = free_port(), tmp_path / "copy"
    thread, result = receiving(port, out, peer="127.0.0.9", timeout=1.5)
    other = connect(port)
    other.sendall(seed.token_line(TOKEN) + b"data")
    assert closed(other)  # a right token from the wrong address is closed too
    other.close()
    thread.join(10)
    assert "no donor connected from 127.0.0.9 in time" in result["error"]
    assert not out.exists()


def test_a_donor_that_stops_sending_fails_the_copy(tmp_path: Path) -> None:
    port, out = free_port(), tmp_path / "copy"
    thread, result = receiving(port, out, idle=0.5)
    conn = connect(port)
    conn.sendall(seed.token_line(TOKEN) + b"partial")
    time.sleep(1.5)
    thread.join(10)
    conn.close()
    assert "the donor sent nothing for 0.5 s (after 7 bytes)" in result["error"]


def test_an_unpacker_that_fails_fails_the_copy(tmp_path: Path) -> None:
    port = free_port()
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            seed.receive("127.0.0.1", port, "127.0.0.1", TOKEN,
                         ["sh", "-c", "cat >/dev/null; exit 3"], 10, 5)
        except seed.SeedError as exc:
            result["error"] = str(exc)
    thread = threading.Thread(target=run)
    thread.start()
    seed.send("127.0.0.1", port, TOKEN, io.BytesIO(b"data"), timeout=5)
    thread.join(10)
    assert "exited with 3 after 4 bytes" in result["error"]


def test_the_command_line(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_bytes(b"short\n")
    assert seed.main(["send", "--to", "127.0.0.1", "--port", "1", "--token-file",
                      str(token)]) == 1
    token.write_bytes(TOKEN + b"\n")
    assert seed.read_token(str(token)) == TOKEN
