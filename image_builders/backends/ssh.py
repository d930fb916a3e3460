"""Run build steps on a remote machine over SSH (the ec2 backend's step runner).

A step is a POSIX shell script. `SSHRunner.exec` feeds it on stdin to `sudo -n sh -eu` (or
plain `sh -eu` when logged in as root), exactly as the docker backend feeds it to
`docker exec -i CONTAINER sh -eu`, so the same rendered step behaves the same on both:
it stops at its first failing command, its stdout and stderr come back merged, and its
exit code is the step's result.

Host keys: a build instance is created seconds before we connect and makes its SSH host
key at first boot, so no known_hosts entry can exist for it. The runner therefore accepts
the key it is shown on its first connection, keeps it in memory only (it is never written
to any known_hosts file), and refuses a different key if it has to reconnect to the same
address later. The window is one fresh instance reached over a security group that admits
only the builder's own address range.
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path
from types import TracebackType

import paramiko

from image_builders.backends import BackendError

TIMEOUT_RC = 124  # what coreutils' timeout(1) returns; the docker backend uses it too
_CHUNK = 32768
_POLL = 0.2
_KEY_CLASSES: tuple[type[paramiko.PKey], ...] = (
    paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey,
)


class SSHError(BackendError):
    """The runner could not reach or log in to its host."""


def load_private_key(key: str | os.PathLike[str]) -> paramiko.PKey:
    """A private key from PEM/OpenSSH text or from the path of a key file."""
    if isinstance(key, str) and "-----BEGIN" in key:
        text = key
    else:
        try:
            text = Path(key).read_text()
        except OSError as exc:
            raise SSHError(f"cannot read the SSH private key {key}: {exc}") from None
    for cls in _KEY_CLASSES:
        try:
            return cls.from_private_key(io.StringIO(text))
        except (paramiko.SSHException, ValueError):
            continue
    raise SSHError("the SSH private key is not an unencrypted ed25519, ECDSA or RSA key")


class HostKeyChanged(paramiko.SSHException):
    """The host showed a different key than on the runner's first connection."""


class _PinFirstKey(paramiko.MissingHostKeyPolicy):
    """Accept the first host key seen and pin it for later reconnections (see module doc)."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.key: paramiko.PKey | None = None

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str,
                         key: paramiko.PKey) -> None:
        if self.key is None:
            self.key = key
            return
        if key != self.key:
            raise HostKeyChanged(
                f"the SSH host key of {self.address} changed since the first connection "
                f"({self.key.fingerprint} then {key.fingerprint}); refusing to continue")


class SSHRunner:
    """Runs step scripts as root on one host over SSH.

    The connection is made on first use (or by `connect()`), retrying for up to `wait`
    seconds because a new instance's sshd and its authorized key take a while to appear.
    """

    def __init__(self, host: str, port: int = 22, user: str = "root",
                 private_key: str | os.PathLike[str] | None = None, *, sudo: bool = True,
                 connect_timeout: float = 10.0, wait: float = 300.0,
                 retry_interval: float = 3.0) -> None:
        if private_key is None:
            raise SSHError(f"no SSH private key given for {user}@{host}:{port}")
        self.host, self.port, self.user = host, int(port), user
        self.pkey = load_private_key(private_key)
        self.sudo = sudo and user != "root"
        self.connect_timeout = connect_timeout
        self.wait = wait
        self.retry_interval = retry_interval
        self._policy = _PinFirstKey(self.address)
        self._client: paramiko.SSHClient | None = None

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def host_key_fingerprint(self) -> str:
        """SHA256 fingerprint of the host key accepted on first connection ('' before)."""
        return self._policy.key.fingerprint if self._policy.key is not None else ""

    @property
    def command(self) -> str:
        return "sudo -n sh -eu" if self.sudo else "sh -eu"

    # --- connection -------------------------------------------------------------------
    def _try_connect(self) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(self._policy)
        try:
            client.connect(self.host, port=self.port, username=self.user, pkey=self.pkey,
                           timeout=self.connect_timeout, banner_timeout=self.connect_timeout,
                           auth_timeout=self.connect_timeout, allow_agent=False,
                           look_for_keys=False)
        except BaseException:
            client.close()
            raise
        return client

    def connect(self) -> None:
        """Connect, retrying until `wait` seconds have passed; raise SSHError naming the
        address and the last error when the host never answers."""
        if self._transport_active():
            return
        self.close()
        deadline = time.monotonic() + self.wait
        attempts = 0
        while True:
            attempts += 1
            try:
                self._client = self._try_connect()
                return
            except HostKeyChanged as exc:
                raise SSHError(str(exc)) from None
            except (OSError, EOFError, paramiko.SSHException) as exc:
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SSHError(
                    f"cannot connect over SSH to {self.user}@{self.address} within "
                    f"{self.wait:.0f}s ({attempts} attempts); last error: {last}")
            time.sleep(min(self.retry_interval, remaining))

    def _transport_active(self) -> bool:
        if self._client is None:
            return False
        transport = self._client.get_transport()
        return transport is not None and transport.is_active()

    def close(self) -> None:
        """Close the connection (safe to call more than once)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> SSHRunner:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # --- steps ------------------------------------------------------------------------
    def exec(self, script: str, timeout: float = 1800) -> tuple[int, str]:
        """Run `script` as root with `sh -eu`; return its exit code and merged output.

        When it runs longer than `timeout` seconds the session is closed and the result
        is (124, output so far + a note)."""
        self.connect()
        assert self._client is not None
        transport = self._client.get_transport()
        if transport is None:
            raise SSHError(f"the SSH connection to {self.address} is gone")
        try:
            channel = transport.open_session(timeout=self.connect_timeout)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise SSHError(f"cannot open an SSH session on {self.address}: {exc}") from None
        try:
            return self._run(channel, script.encode(), timeout)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise SSHError(f"the SSH session on {self.address} broke during a step: "
                           f"{type(exc).__name__}: {exc}") from None
        finally:
            channel.close()

    def _run(self, channel: paramiko.Channel, stdin: bytes,
             timeout: float) -> tuple[int, str]:
        """Feed stdin and collect output at the same time (a long script must not wait
        for output, nor output for the script), until EOF and the exit status."""
        channel.set_combine_stderr(True)
        channel.exec_command(self.command)
        deadline = time.monotonic() + timeout
        output = bytearray()
        pending = self._send_some(channel, memoryview(stdin))
        while True:
            if time.monotonic() > deadline:
                return self._timed_out(output, timeout)
            if pending:
                pending = self._send_some(channel, pending)
            channel.settimeout(0.0 if pending else _POLL)
            try:
                data = channel.recv(_CHUNK)
            except TimeoutError:
                if pending and not channel.send_ready():
                    time.sleep(0.01)  # the remote window is full: let sh read
                continue
            if not data:
                break
            output += data
        while not channel.exit_status_ready():
            if time.monotonic() > deadline:
                return self._timed_out(output, timeout)
            time.sleep(_POLL / 4)
        return channel.recv_exit_status(), output.decode(errors="replace")

    @staticmethod
    def _send_some(channel: paramiko.Channel, pending: memoryview) -> memoryview:
        """Send what the channel's window takes now; close stdin once all is sent."""
        if pending and channel.send_ready():
            pending = pending[channel.send(pending[:_CHUNK].tobytes()):]
        if not pending:
            channel.shutdown_write()
        return pending

    def _timed_out(self, output: bytearray, timeout: float) -> tuple[int, str]:
        note = f"\n(timed out after {timeout:.0f}s on {self.address})"
        return TIMEOUT_RC, output.decode(errors="replace") + note
