"""S3 side of the MariaDB backups: multipart upload of a stream with checksums, JSON
objects, listings, metadata, downloads that verify, deletion of every version.

boto3 only (no Ansible): the backup program on the database servers and the unit tests
(moto in-process) use it alike. Every call goes through a client with retries (botocore
"standard" mode). Runs on Python 3.9 (EL 9) too.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, BinaryIO

from host_programs.backup.core import BackupError
from module_utils.aws import aws_client

MIN_PART_SIZE = 5 * 1024 * 1024  # S3's smallest part (all but the last)
MAX_PARTS = 10000
READ_CHUNK = 1024 * 1024


def make_client(endpoint_url: str | None = None, region: str | None = None,
                patience: str = "transfer") -> Any:
    """The backups' S3 client (module_utils/aws.py): patient enough for large uploads."""
    return aws_client("s3", region or None, endpoint_url or None, patience=patience)


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


@dataclass(frozen=True)
class UploadResult:
    key: str
    size: int
    sha256: str
    etag: str
    parts: int


class _Digests:
    """MD5 of each part (S3 checks it: Content-MD5) and SHA-256 of the whole stream."""

    def __init__(self) -> None:
        self.sha256 = hashlib.sha256()
        self.part_md5: list[bytes] = []
        self.size = 0

    def composite_etag(self) -> str:
        joined = hashlib.md5(b"".join(self.part_md5), usedforsecurity=False).hexdigest()
        return f"{joined}-{len(self.part_md5)}"


def _read_part(stream: BinaryIO, size: int) -> bytes:
    """Up to `size` bytes: a pipe may return less than asked; read until full or EOF."""
    chunks, have = [], 0
    while have < size:
        chunk = stream.read(min(READ_CHUNK, size - have))
        if not chunk:
            break
        chunks.append(chunk)
        have += len(chunk)
    return b"".join(chunks)


class S3Store:
    """One bucket, one client with retries."""

    def __init__(self, bucket: str, client: Any | None = None, endpoint_url: str | None = None,
                 region: str | None = None) -> None:
        if not bucket:
            raise BackupError("no bucket configured")
        self.bucket = bucket
        self.client = client or make_client(endpoint_url, region)
        # The check before a backup starts: an S3 that does not answer fails it in seconds,
        # not after the retries a transfer deserves.
        self.check_client = client or make_client(endpoint_url, region, patience="default")

    # ----------------------------------------------------------------- checks, small objects

    def check_bucket(self) -> None:
        try:
            self.check_client.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            code = _error_code(exc)
            if code in ("404", "NoSuchBucket", "NotFound"):
                raise BackupError(f"bucket {self.bucket} does not exist") from None
            raise BackupError(f"bucket {self.bucket} is not reachable: {exc}") from None

    def get_json(self, key: str) -> dict[str, Any] | None:
        """The JSON object at `key`, or None when there is none."""
        try:
            reply = self.client.get_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            if _error_code(exc) in ("NoSuchKey", "404", "NotFound"):
                return None
            raise BackupError(f"s3://{self.bucket}/{key}: cannot read: {exc}") from None
        body = reply["Body"].read()
        try:
            doc = json.loads(body)
        except ValueError:
            raise BackupError(f"s3://{self.bucket}/{key} is not JSON") from None
        if not isinstance(doc, dict):
            raise BackupError(f"s3://{self.bucket}/{key} is not a JSON object")
        return doc

    def put_json(self, key: str, doc: Mapping[str, Any]) -> str:
        body = (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()
        md5 = hashlib.md5(body, usedforsecurity=False)
        reply = self.client.put_object(
            Bucket=self.bucket, Key=key, Body=body, ContentType="application/json",
            ContentMD5=base64.b64encode(md5.digest()).decode())
        return str(reply.get("ETag", "")).strip('"')

    def tag(self, key: str, tags: Mapping[str, str]) -> None:
        """Object tags (S3 allows letters, digits, spaces and + - = . _ : / @ in values)."""
        tag_set = [{"Key": k, "Value": str(v)} for k, v in sorted(tags.items())]
        self.client.put_object_tagging(Bucket=self.bucket, Key=key,
                                       Tagging={"TagSet": tag_set})

    def head_metadata(self, key: str) -> dict[str, str]:
        reply = self.client.head_object(Bucket=self.bucket, Key=key)
        return {str(k).lower(): str(v) for k, v in (reply.get("Metadata") or {}).items()}

    def list(self, prefix: str) -> dict[str, tuple[int, datetime]]:
        """{key: (size, last modified)} of every current object under `prefix`."""
        found: dict[str, tuple[int, datetime]] = {}
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []) or []:
                found[item["Key"]] = (int(item["Size"]), item["LastModified"])
        return found

    # ----------------------------------------------------------------- uploads

    def upload_stream(self, key: str, stream: BinaryIO, part_size: int,
                      metadata: Mapping[str, str] | None = None,
                      before_complete: Callable[[], None] | None = None) -> UploadResult:
        """Upload everything `stream` yields as one object, by multipart upload.

        Each part carries its MD5 (S3 refuses a part that arrives different); the SHA-256 of
        the whole stream is computed on the way. `before_complete` runs after the stream
        ended and before the upload is completed: it raises when the producer failed, and
        the upload is then aborted, like on any other error (nothing is left behind). After
        completion the object's size and ETag are checked against what was sent."""
        if part_size < MIN_PART_SIZE:
            raise BackupError(f"part size {part_size} is below S3's minimum {MIN_PART_SIZE}")
        created = self.client.create_multipart_upload(
            Bucket=self.bucket, Key=key, Metadata=dict(metadata or {}),
            ContentType="application/octet-stream")
        upload_id = created["UploadId"]
        digests = _Digests()
        parts: list[dict[str, Any]] = []
        try:
            while True:
                data = _read_part(stream, part_size)
                if not data and parts:
                    break
                if len(parts) >= MAX_PARTS:
                    raise BackupError(f"stream for {key} needs more than {MAX_PARTS} parts of "
                                      f"{part_size} bytes: raise the part size")
                if not data:
                    raise BackupError(f"the stream for {key} was empty")
                md5 = hashlib.md5(data, usedforsecurity=False)
                digests.sha256.update(data)
                digests.part_md5.append(md5.digest())
                digests.size += len(data)
                number = len(parts) + 1
                reply = self.client.upload_part(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number,
                    Body=data, ContentMD5=base64.b64encode(md5.digest()).decode())
                etag = str(reply["ETag"]).strip('"')
                if etag != md5.hexdigest() and "aws:kms" not in str(
                        reply.get("ServerSideEncryption", "")):
                    raise BackupError(f"part {number} of {key}: S3 stored ETag {etag}, "
                                      f"sent MD5 {md5.hexdigest()}")
                parts.append({"PartNumber": number, "ETag": reply["ETag"]})
                if len(data) < part_size:
                    break
            if before_complete is not None:
                before_complete()
            done = self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id,
                MultipartUpload={"Parts": parts})
        except BaseException as exc:
            problem = self._abort(key, upload_id)
            if problem:
                raise BackupError(f"{exc}; {problem}") from exc
            raise
        result = UploadResult(key, digests.size, digests.sha256.hexdigest(),
                              str(done.get("ETag", "")).strip('"'), len(parts))
        self._verify(result, digests, kms="aws:kms" in str(done.get("ServerSideEncryption", "")))
        return result

    def _abort(self, key: str, upload_id: str) -> str:
        """Abort a multipart upload; '' when done, else what went wrong (the caller has a
        more important error to report alongside)."""
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except Exception as exc:
            return (f"could not abort the multipart upload of {key} (upload id {upload_id}): "
                    f"{exc}")
        return ""

    def _verify(self, result: UploadResult, digests: _Digests, kms: bool) -> None:
        head = self.client.head_object(Bucket=self.bucket, Key=result.key)
        if int(head["ContentLength"]) != result.size:
            raise BackupError(f"{result.key}: S3 holds {head['ContentLength']} bytes, "
                              f"{result.size} were sent")
        # Under SSE-KMS the ETag is not derived from MD5; each part's Content-MD5 was
        # checked by S3 on arrival instead.
        if not kms and result.etag != digests.composite_etag():
            raise BackupError(f"{result.key}: S3 ETag {result.etag} does not match the parts "
                              f"sent ({digests.composite_etag()})")

    def upload_file_range(self, key: str, path: str, start: int, end: int,
                          metadata: Mapping[str, str], part_size: int) -> UploadResult:
        """Bytes [start, end) of a file as one object (a binary log or a segment of one).
        Small ranges go in one PUT with Content-MD5, large ones by multipart upload."""
        if end <= start:
            raise BackupError(f"{key}: empty range {start}-{end} of {path}")
        with open(path, "rb") as handle:
            handle.seek(start)
            if end - start <= part_size:
                data = handle.read(end - start)
                if len(data) != end - start:
                    raise BackupError(f"{path} is shorter than {end} bytes")
                sha256 = hashlib.sha256(data).hexdigest()
                md5 = hashlib.md5(data, usedforsecurity=False)
                meta = dict(metadata, sha256=sha256)
                reply = self.client.put_object(
                    Bucket=self.bucket, Key=key, Body=data, Metadata=meta,
                    ContentMD5=base64.b64encode(md5.digest()).decode())
                return UploadResult(key, len(data), sha256, str(reply.get("ETag", "")).strip('"'),
                                    1)
            sha = hashlib.sha256()
            left = end - start
            while left:
                chunk = handle.read(min(READ_CHUNK, left))
                if not chunk:
                    raise BackupError(f"{path} is shorter than {end} bytes")
                sha.update(chunk)
                left -= len(chunk)
            handle.seek(start)
            bounded = _Bounded(handle, end - start)
            result = self.upload_stream(key, bounded, part_size,  # type: ignore[arg-type]
                                        metadata=dict(metadata, sha256=sha.hexdigest()))
        if result.sha256 != sha.hexdigest():
            self.delete_all_versions([key])
            raise BackupError(f"{path} changed while {key} was uploaded")
        return result

    # ----------------------------------------------------------------- downloads

    def download(self, key: str, sink: Callable[[bytes], Any], expected_sha256: str = "",
                 expected_size: int | None = None) -> tuple[int, str]:
        """Stream `key` into `sink` chunk by chunk; (size, sha256). With expectations given,
        a mismatch is an error (the caller must discard what the sink received)."""
        try:
            reply = self.client.get_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            raise BackupError(f"s3://{self.bucket}/{key}: cannot download: {exc}") from None
        sha = hashlib.sha256()
        size = 0
        body = reply["Body"]
        while True:
            chunk = body.read(READ_CHUNK)
            if not chunk:
                break
            sha.update(chunk)
            size += len(chunk)
            sink(chunk)
        digest = sha.hexdigest()
        if expected_size is not None and size != expected_size:
            raise BackupError(f"s3://{self.bucket}/{key}: downloaded {size} bytes, expected "
                              f"{expected_size}")
        if expected_sha256 and digest != expected_sha256:
            raise BackupError(f"s3://{self.bucket}/{key}: SHA-256 {digest} does not match the "
                              f"recorded {expected_sha256}")
        return size, digest

    # ----------------------------------------------------------------- deletion, cleanup

    def delete_all_versions(self, keys: Iterable[str]) -> int:
        """Delete every version (and delete marker) of each key: in a versioned bucket a
        plain delete only hides an object. Returns how many versions went."""
        doomed: list[dict[str, str]] = []
        paginator = self.client.get_paginator("list_object_versions")
        for key in sorted(set(keys)):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=key):
                for item in (page.get("Versions") or []) + (page.get("DeleteMarkers") or []):
                    if item["Key"] == key:
                        doomed.append({"Key": key, "VersionId": item.get("VersionId") or "null"})
        for start in range(0, len(doomed), 1000):
            batch = doomed[start:start + 1000]
            reply = self.client.delete_objects(Bucket=self.bucket,
                                               Delete={"Objects": batch, "Quiet": True})
            errors = reply.get("Errors") or []
            if errors:
                first = errors[0]
                raise BackupError(f"could not delete {len(errors)} object version(s), e.g. "
                                  f"{first.get('Key')}: {first.get('Message')}")
        return len(doomed)

    def abort_stale_uploads(self, prefix: str, now: datetime, older_than: timedelta) -> list[str]:
        """Abort multipart uploads under `prefix` started before now - older_than (left by a
        process that was killed outright). Returns their keys."""
        aborted = []
        paginator = self.client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for upload in page.get("Uploads") or []:
                if now - upload["Initiated"] > older_than:
                    problem = self._abort(upload["Key"], upload["UploadId"])
                    if problem:
                        raise BackupError(problem)
                    aborted.append(upload["Key"])
        return aborted

    def open_uploads(self, prefix: str) -> list[str]:
        reply = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=prefix)
        return [u["Key"] for u in reply.get("Uploads") or []]


class _Bounded:
    """A read-only view of the next `left` bytes of a file."""

    def __init__(self, handle: BinaryIO, left: int) -> None:
        self.handle, self.left = handle, left

    def read(self, size: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        want = self.left if size is None or size < 0 else min(size, self.left)
        data = self.handle.read(want)
        self.left -= len(data)
        return data
