"""The one way hostkit builds an AWS client: modules, host programs, plugins, the image
builders and the sandbox script all call `aws_client`, so every AWS call has the same retry
policy and its timeouts are said in one place.

The retry policy is botocore's "standard" mode: throttling, 5xx answers, connection errors
and timeouts are retried with exponential backoff and jitter (the policy amazon.aws's
AWSRetry applies around calls, done by botocore itself). What differs between callers is
only how long they may wait, chosen by name (PATIENCE):

- `quick`: the failover watcher's own calls on its decision path (a failover must not hang
  on a slow S3 or EC2; it retries at its next round);
- `default`: modules, plugins, the config agent;
- `transfer`: bulk transfers (backup uploads and downloads, AMI copies).

With an endpoint (an emulator such as moto), S3 uses path-style addressing. Without one,
boto3 still honours AWS_ENDPOINT_URL. No Ansible imports; Python 3.9+.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

try:
    import boto3
    from botocore.config import Config
except ImportError as exc:  # reported when a client is asked for
    BOTO_IMPORT_ERROR: ImportError | None = exc
else:
    BOTO_IMPORT_ERROR = None

RETRY_MODE = "standard"


@dataclass(frozen=True)
class Patience:
    max_attempts: int
    connect_timeout: float
    read_timeout: float


PATIENCE = {
    "quick": Patience(max_attempts=2, connect_timeout=2, read_timeout=3),
    "default": Patience(max_attempts=5, connect_timeout=5, read_timeout=15),
    "transfer": Patience(max_attempts=8, connect_timeout=10, read_timeout=120),
}

# Environment variables of credentials and the client() arguments they map to.
CREDENTIAL_VARIABLES = {"AWS_ACCESS_KEY_ID": "aws_access_key_id",
                        "AWS_SECRET_ACCESS_KEY": "aws_secret_access_key",
                        "AWS_SESSION_TOKEN": "aws_session_token"}


class AwsClientError(RuntimeError):
    """boto3 is missing or the request for a client is wrong; the message says which."""


def choose_patience(patience: str = "default", attempts: int | None = None,
                    connect_timeout: float | None = None,
                    read_timeout: float | None = None) -> Patience:
    """The named patience, with any number a caller's own settings give instead (the config
    agent's timeouts, one attempt where the caller retries by itself)."""
    if patience not in PATIENCE:
        raise AwsClientError(f"unknown patience '{patience}' (known: {', '.join(PATIENCE)})")
    chosen = PATIENCE[patience]
    return Patience(
        max_attempts=chosen.max_attempts if attempts is None else attempts,
        connect_timeout=chosen.connect_timeout if connect_timeout is None else connect_timeout,
        read_timeout=chosen.read_timeout if read_timeout is None else read_timeout)


def client_config(service: str, patience: str = "default",
                  endpoint_url: str | None = None, **numbers: Any) -> Any:
    """The botocore Config of a client: the retry policy and the patience's timeouts
    (`numbers`: attempts, connect_timeout, read_timeout, see choose_patience)."""
    chosen = choose_patience(patience, **numbers)
    if BOTO_IMPORT_ERROR is not None:
        raise AwsClientError(f"the Python package boto3 is required: {BOTO_IMPORT_ERROR}")
    return Config(retries={"mode": RETRY_MODE, "max_attempts": chosen.max_attempts},
                  connect_timeout=chosen.connect_timeout, read_timeout=chosen.read_timeout,
                  s3={"addressing_style": "path"} if service == "s3" and endpoint_url else None)


def aws_client(service: str, region: str | None = None, endpoint_url: str | None = None,
               patience: str = "default", credentials: Mapping[str, str] | None = None,
               session: Any = None, **numbers: Any) -> Any:
    """A boto3 client of `service` with the retry policy and the named patience.

    `credentials` maps AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN to
    values (other keys are ignored); without them boto3 finds credentials the usual way.
    `session` (a boto3 Session) is used instead of the default one when given; `numbers`
    (attempts, connect_timeout, read_timeout) replace the patience's own."""
    config = client_config(service, patience, endpoint_url, **numbers)
    keys = {arg: str(credentials[var]) for var, arg in CREDENTIAL_VARIABLES.items()
            if credentials and credentials.get(var)}
    maker = session.client if session is not None else boto3.client
    return maker(service, region_name=region or None, endpoint_url=endpoint_url or None,
                 config=config, **keys)
