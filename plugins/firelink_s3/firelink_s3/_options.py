"""The options of the S3 watch trigger: JSON Schema, offline checks and parsing (no boto3 here)."""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from firelink_core.plugin_api import Problem, duration_schema, parse_duration

__all__ = ["CONFIG_SCHEMA", "S3Options", "check_options", "parse_options", "split_s3_url"]

DEFAULT_POLL = 30.0
DEFAULT_LOOKBACK = 900.0

_GLOBS = {"type": "array", "items": {"type": "string", "minLength": 1}}

# URLs are checked by ``check_options`` rather than by schema patterns, whose failures read
# as regular expressions; ``check`` names the problem ("no bucket name in ...").
CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Watch an S3 bucket prefix: by listing it every `poll`, or by reading the "
    "bucket's event notifications from an SQS `queue`.",
    "properties": {
        "source": {
            "type": "string",
            "description": "s3://BUCKET/PREFIX: the bucket and the key prefix to watch (a plain "
            "S3 prefix: end it with / to watch a folder).",
        },
        "patterns": {
            **_GLOBS,
            "default": ["*"],
            "description": "Fire only for keys matching one of these globs, matched against the key "
            "relative to the prefix (fnmatch: * and ? also match /).",
        },
        "ignore_patterns": {
            **_GLOBS,
            "default": [],
            "description": "Never fire for keys matching one of these globs (relative to the prefix).",
        },
        "endpoint_url": {
            "type": "string",
            "description": "An S3-compatible endpoint (MinIO, SeaweedFS, Ceph...); path-style "
            "addressing is used. Also used for SQS when `queue` is set. Default: AWS.",
        },
        "region": {
            "type": "string",
            "minLength": 1,
            "description": "AWS region of the bucket (and queue). Default: boto3's usual chain "
            "(AWS_REGION, the profile), else the queue URL's region, else us-east-1.",
        },
        "profile": {
            "type": "string",
            "minLength": 1,
            "description": "A named profile of ~/.aws/config for credentials. Default: boto3's "
            "usual credential chain (environment, config files, instance role).",
        },
        "poll": duration_schema("Polling mode: time between two listings of the prefix.", "30s"),
        "start_from": {
            "enum": ["now", "beginning"],
            "default": "now",
            "description": "Polling mode, first start only: `now` ignores objects already there; "
            "`beginning` fires for every object under the prefix.",
        },
        "ordered_keys": {
            "type": "boolean",
            "default": False,
            "description": "Polling mode: new keys always sort after older ones (time-stamped "
            "names), so each poll lists only after the last key seen (one request when nothing "
            "is new). Overwrites of existing keys are then not detected.",
        },
        "lookback": duration_schema(
            "Polling mode: how far behind the newest LastModified seen an object "
            "may appear and still fire (covers slow multipart uploads, whose LastModified is "
            "their start). Keys modified in this window are kept in the cursor.",
            "15m",
        ),
        "queue": {
            "type": "string",
            "description": "Notification mode: URL of an SQS queue receiving this bucket's S3 "
            "event notifications (ObjectCreated). No listing at all; one queue per trigger.",
        },
    },
    "required": ["source"],
    "additionalProperties": False,
}

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_BUCKET_RULE = "3 to 63 lowercase letters, digits, dots or hyphens, starting and ending with a letter or digit"


def split_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix/`` -> ``("bucket", "some/prefix/")``; ``ValueError`` when malformed."""
    if not isinstance(url, str) or not url.startswith("s3://"):
        raise ValueError(f"expected s3://BUCKET/PREFIX, got {url!r}")
    bucket, _, prefix = url[len("s3://") :].partition("/")
    if not bucket:
        raise ValueError(f"no bucket name in {url!r} (expected s3://BUCKET/PREFIX)")
    if "${" not in bucket:
        if not _BUCKET.match(bucket) or ".." in bucket:
            raise ValueError(f"invalid bucket name {bucket!r}: {_BUCKET_RULE}")
        try:
            ipaddress.IPv4Address(bucket)
        except ValueError:
            pass
        else:
            raise ValueError(f"invalid bucket name {bucket!r}: it must not look like an IP address")
    return bucket, prefix


def _is_url(value: str) -> bool:
    if "${" in value:
        return True  # interpolated when the daemon loads the config
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def check_options(options: Mapping[str, Any]) -> list[Problem]:
    """Problems the schema cannot express; offline (no network, no credentials)."""
    problems: list[Problem] = []
    source = options.get("source")
    if isinstance(source, str):
        try:
            split_s3_url(source)
        except ValueError as exc:
            problems.append(Problem(("source",), str(exc)))
    for name in ("queue", "endpoint_url"):
        value = options.get(name)
        if isinstance(value, str) and not _is_url(value):
            problems.append(Problem((name,), f"expected an http:// or https:// URL, got {value!r}"))
    for name in ("poll", "lookback"):
        value = options.get(name)
        if value is None:
            continue
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            problems.append(Problem((name,), str(exc)))
            continue
        if name == "poll" and seconds <= 0:
            problems.append(Problem((name,), "the poll interval must be more than 0"))
    if options.get("queue") and options.get("ordered_keys"):
        problems.append(
            Problem(("ordered_keys",), "ordered_keys applies to polling; a trigger with `queue` lists nothing")
        )
    return problems


@dataclass(frozen=True)
class S3Options:
    """The parsed options of one S3 watch trigger."""

    bucket: str
    prefix: str
    patterns: tuple[str, ...] = ("*",)
    ignore_patterns: tuple[str, ...] = ()
    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    poll: float = DEFAULT_POLL
    start_from: Literal["now", "beginning"] = "now"
    ordered_keys: bool = False
    lookback: float = DEFAULT_LOOKBACK
    queue: str | None = None

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def wants(self, key: str) -> bool:
        """Whether ``key`` is under the prefix and passes ``patterns`` / ``ignore_patterns``."""
        if not key.startswith(self.prefix):
            return False
        rel = key[len(self.prefix) :]
        if not any(fnmatch.fnmatchcase(rel, p) for p in self.patterns):
            return False
        return not any(fnmatch.fnmatchcase(rel, p) for p in self.ignore_patterns)


def parse_options(options: Mapping[str, Any]) -> S3Options:
    """Build ``S3Options`` from validated options; ``ValueError`` naming the option otherwise."""
    problems = check_options(options)
    unknown = sorted(set(options) - set(CONFIG_SCHEMA["properties"]))
    if unknown:
        problems.append(Problem((unknown[0],), f"unknown option {unknown[0]!r}"))
    if "source" not in options:
        problems.append(Problem(("source",), "missing: the s3://BUCKET/PREFIX to watch"))
    if problems:
        raise ValueError("; ".join(f"{'.'.join(map(str, p.path))}: {p.message}" for p in problems))
    bucket, prefix = split_s3_url(options["source"])
    return S3Options(
        bucket=bucket,
        prefix=prefix,
        patterns=tuple(options.get("patterns") or ("*",)),
        ignore_patterns=tuple(options.get("ignore_patterns") or ()),
        endpoint_url=options.get("endpoint_url"),
        region=options.get("region"),
        profile=options.get("profile"),
        poll=parse_duration(options.get("poll", DEFAULT_POLL)),
        start_from=options.get("start_from", "now"),
        ordered_keys=bool(options.get("ordered_keys", False)),
        lookback=parse_duration(options.get("lookback", DEFAULT_LOOKBACK)),
        queue=options.get("queue"),
    )
