"""S3 calls that ride out an object store that blinks, stalls or throttles.

A phase that dies on a one-second blip costs a pod restart and a model load on every
GPU, so retries come in two layers, each for what it does well:

- botocore's standard mode sends each HTTP request up to 3 times within seconds, so a
  throttled or reset part of a multipart upload is sent again alone, not the whole file;
- `call` retries a whole store operation while it fails transiently (no connection, a
  timeout, 5xx, throttling), waiting 0.5 s doubling up to 10 s plus up to 1 s of
  jitter and logging each wait, until `retry_seconds` (RLOOP_STORE_RETRY_SECONDS,
  default 120 s) have passed; then it raises StoreUnavailable with the last error. So a
  call gives up after at least the window, and at most one wait and one attempt more.

Timeouts bound a silence on the connection, not a whole call. A server answers a small
request (metadata, a listing, an object below the multipart threshold) at once, so those
wait `read_timeout` (15 s); the parts of a large upload and its CompleteMultipartUpload,
which a server may answer only once it has assembled a multi-GB object, wait
`upload_read_timeout` (60 s). While any attempt runs longer than `slow_call_seconds`,
a line says so every `slow_call_seconds`: a stalled server is never silent.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar
from urllib.parse import urlparse

import tenacity

from rloop_trainer.errors import MissingObject, PhaseError, StoreUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRY_SECONDS_ENV = "RLOOP_STORE_RETRY_SECONDS"
MULTIPART_THRESHOLD = 64 * 2**20
MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
# S3 and S3-compatible servers' names for "too many requests" and "try again".
_RETRYABLE_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "TooManyRequests",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "RequestThrottled",
        "RequestTimeout",
        "InternalError",
        "ServiceUnavailable",
    }
)


@dataclass(frozen=True)
class StoreSettings:
    """How long store calls wait and retry; the module docstring says why these values.
    Only the retry window comes from the environment; tests set the rest."""

    retry_seconds: float = 120.0
    connect_timeout: float = 5.0
    read_timeout: float = 15.0
    upload_read_timeout: float = 60.0
    slow_call_seconds: float = 10.0

    @classmethod
    def from_env(cls) -> StoreSettings:
        raw = os.environ.get(RETRY_SECONDS_ENV)
        if raw is None:
            return cls()
        try:
            seconds = float(raw)
        except ValueError:
            seconds = -1.0
        if not seconds >= 0:
            raise PhaseError(
                f"{RETRY_SECONDS_ENV}={raw!r} is not a number of seconds; set it to e.g. 120 "
                "(how long store calls retry an unavailable object store) or unset it"
            )
        return cls(retry_seconds=seconds)


_configured: StoreSettings | None = None


def settings() -> StoreSettings:
    return _configured or StoreSettings.from_env()


def configure(new: StoreSettings | None = None) -> None:
    """Use `new` (None: the defaults and RLOOP_STORE_RETRY_SECONDS) from now on, and build
    the clients again on next use, reading the credentials and the endpoint again."""
    global _configured
    _configured = new
    client.cache_clear()


def endpoint() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")


@cache
def client(large_upload: bool = False) -> Any:
    """The S3 client; `large_upload` waits longer for answers (see the module docstring)."""
    import boto3
    from botocore.config import Config

    config = settings()
    timeout = config.upload_read_timeout if large_upload else config.read_timeout
    boto_config = Config(
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=config.connect_timeout,
        read_timeout=timeout,
    )
    # A fresh session reads the credentials from the environment now, not when boto3 first ran.
    return boto3.session.Session().client("s3", endpoint_url=endpoint(), config=boto_config)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and what it wraps: boto3 and s3transfer re-raise errors inside their own."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        wrapped = getattr(current, "last_exception", None)
        current = (
            wrapped
            if isinstance(wrapped, BaseException)
            else current.__cause__ or current.__context__
        )


def error_code(exc: BaseException) -> tuple[str, int] | None:
    """(S3 error code, HTTP status) of the S3 answer inside `exc`; None if S3 never answered."""
    from botocore.exceptions import ClientError

    for cause in _causes(exc):
        if isinstance(cause, ClientError):
            status = cause.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            return str(cause.response.get("Error", {}).get("Code", "")), int(status)
    return None


def is_transient(exc: BaseException) -> bool:
    """Whether the same call may succeed later: the store was down, silent, or throttling.

    Answers such as 403 and 404 are permanent; so are a certificate S3 does not accept
    and missing credentials.
    """
    from botocore.exceptions import (
        ConnectionError as BotoConnectionError,
    )
    from botocore.exceptions import (
        HTTPClientError,
        IncompleteReadError,
        SSLError,
    )

    if isinstance(exc, PhaseError):
        return False  # ours, already decided (e.g. the writer fence said stop)
    answer = error_code(exc)
    if answer is not None:
        code, status = answer
        return status >= 500 or status == 429 or code in _RETRYABLE_CODES
    transient = (BotoConnectionError, HTTPClientError, IncompleteReadError, ConnectionError)
    return any(
        isinstance(cause, (*transient, TimeoutError)) and not isinstance(cause, SSLError)
        for cause in _causes(exc)
    )


def call(
    what: str,
    uri: str,
    operation: Callable[[], T],
    before_attempt: Callable[[], None] | None = None,
) -> T:
    """`operation()`, retried while it fails transiently, for `retry_seconds`.

    `what` names the call in the log ("upload"); `before_attempt` runs before every
    attempt (the writer fence), so a write retried after a long outage is checked again.
    Any S3 or connection error becomes a PhaseError naming `uri` and the likely fix.
    """
    config = settings()

    def attempt() -> T:
        with _watch(what, uri, config.slow_call_seconds):
            if before_attempt is not None:
                before_attempt()
            return operation()

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(is_transient),
        stop=tenacity.stop_after_delay(config.retry_seconds),
        wait=tenacity.wait_exponential(multiplier=0.5, max=10.0) + tenacity.wait_random(0, 1),
        before_sleep=lambda state: _log_wait(what, uri, state, config),
        reraise=True,
    )
    try:
        result: T = retrying(attempt)
    except PhaseError:
        raise
    except Exception as exc:
        raise store_error(uri, exc, config) from exc
    return result


def _log_wait(what: str, uri: str, state: tenacity.RetryCallState, config: StoreSettings) -> None:
    error = state.outcome.exception() if state.outcome is not None else None
    log.warning(
        "object store: %s %s failed (%s); retrying in %.1fs, %.0fs of %.0fs spent (%s)",
        what,
        uri,
        _one_line(error),
        state.upcoming_sleep,
        state.seconds_since_start or 0.0,
        config.retry_seconds,
        RETRY_SECONDS_ENV,
    )


@contextlib.contextmanager
def _watch(what: str, uri: str, every: float) -> Iterator[None]:
    """Log every `every` seconds while the block runs: a stalled server is never silent."""
    done = threading.Event()
    started = time.monotonic()

    def warn_while_waiting() -> None:
        while not done.wait(every):
            log.warning(
                "object store: %s %s has taken %.0fs so far; still waiting for the server",
                what,
                uri,
                time.monotonic() - started,
            )

    threading.Thread(target=warn_while_waiting, name="store-watch", daemon=True).start()
    try:
        yield
    finally:
        done.set()


def _one_line(error: BaseException | None) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def store_error(uri: str, exc: Exception, config: StoreSettings) -> PhaseError:
    """The PhaseError a person can act on, for a store call on `uri` that failed with `exc`."""
    from botocore.exceptions import NoCredentialsError

    answer = error_code(exc)
    where = f"endpoint {endpoint() or 'AWS default'}"
    if answer is not None and not is_transient(exc):
        code, status = answer
        if code in MISSING_CODES:
            return MissingObject.at(uri)
        if code == "NoSuchBucket":
            bucket = urlparse(uri).netloc
            return MissingObject(
                f"bucket {bucket!r} of {uri} does not exist at {where}; create it or fix the URI"
            )
        if status in (401, 403):
            cause = probe_refusal(uri)
            key_id = os.environ.get("AWS_ACCESS_KEY_ID")
            return PhaseError(refusal_message(uri, code or str(status), cause, endpoint(), key_id))
        return PhaseError(f"S3 at {where} answered {code} ({status}) for {uri}: {_one_line(exc)}")
    if any(isinstance(cause, NoCredentialsError) for cause in _causes(exc)):
        return PhaseError(
            f"no S3 credentials for {uri}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "(on a cluster: spec.storage.credentialsSecret)"
        )
    return StoreUnavailable(
        f"cannot reach the object store for {uri} ({where}) within {config.retry_seconds:.0f}s "
        f"of retries ({RETRY_SECONDS_ENV}): {_one_line(exc)}; check AWS_ENDPOINT_URL and "
        "the network"
    )


def probe_refusal(uri: str) -> str:
    """Why S3 refused `uri`, asked of a one-key listing of its bucket: a refused HEAD has
    no body, a listing's answer names the cause. '' when the listing is allowed."""
    bucket = urlparse(uri).netloc
    try:
        client().list_objects_v2(Bucket=bucket, MaxKeys=1)
    except Exception as exc:
        answer = error_code(exc)
        return answer[0] if answer is not None else ""
    return ""


def refusal_message(
    uri: str, code: str, cause: str, endpoint_url: str | None, access_key_id: str | None
) -> str:
    """What a refused call (`code`, e.g. 403) on `uri` means, given the error code `cause`
    of a listing of its bucket with the same credentials (probe_refusal)."""
    where = f"endpoint {endpoint_url or 'AWS default'}"
    refused = f"S3 at {where} refused {uri} ({code})"
    bucket = urlparse(uri).netloc
    if cause == "InvalidAccessKeyId":
        return (
            f"{refused}: it does not know the access key id {access_key_id!r}; either "
            "AWS_ACCESS_KEY_ID is wrong or the endpoint is (AWS_ENDPOINT_URL points at a "
            "store that holds other keys)"
        )
    if cause == "SignatureDoesNotMatch":
        return (
            f"{refused}: the secret key does not match the access key id {access_key_id!r}; "
            "check AWS_SECRET_ACCESS_KEY"
        )
    if cause == "NoSuchBucket":
        return f"{refused}: bucket {bucket!r} does not exist there; create it or fix the URI"
    return (
        f"{refused}: the credentials are valid there but not allowed this call; grant the "
        f"key s3:GetObject, s3:PutObject, s3:DeleteObject and s3:ListBucket on {bucket!r}, "
        "or check that AWS_ENDPOINT_URL is the store you meant"
    )
