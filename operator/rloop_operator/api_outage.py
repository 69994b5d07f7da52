"""A transient outage of the API server: one WARNING when it starts, one when it ends.

A kube-apiserver restart (a control-plane upgrade, a crash) is seconds of connection
refused, then 429 "storage is (re)initializing" and 503 while it starts, then 403 for
every ServiceAccount until its RBAC caches have loaded (seen with the test API server).
Every reconcile, child watch and Lease renewal in between fails, and each would log its
own error: a traceback per reconcile, a line per watch retry, urllib3's retries, kopf's
"Request attempt #N/9 failed; will retry". They all report here instead. The first
transient failure starts the outage with one WARNING that says what failed and why;
failures while it lasts are DEBUG; the first call that succeeds ends it with one WARNING
that says how long it lasted. A failure that is not transient (a 404, a 422, a 403 while
the API server answers everything else) stays the caller's to log, as before.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError as Urllib3Error

log = logging.getLogger(__name__)

# The API server's own answers while it starts or sheds load.
TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})
# Answers that are transient only inside an outage: 403 before its RBAC caches load, 500
# while its storage is not ready.
RESTART_STATUSES = frozenset({403, 500})
KOPF_RETRY = "failed; will retry"
URLLIB3_RETRY = "Retrying ("
ERROR_CHARS = 200


def describe(error: BaseException) -> str:
    """One line: the status and reason of an API answer, else the innermost cause."""
    if isinstance(error, ApiException):
        return f"{error.status} {error.reason}"
    cause = error.__cause__ or error.__context__
    while cause is not None:
        error, cause = cause, cause.__cause__ or cause.__context__
    return f"{type(error).__name__}: {error}"


class ApiOutage:
    """Whether the API server is out, for every thread of the operator."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._since: float | None = None
        self._failures = 0

    @property
    def ongoing(self) -> bool:
        return self._since is not None

    def is_transient(self, error: BaseException) -> bool:
        if isinstance(error, ApiException):
            restarting = self.ongoing and error.status in RESTART_STATUSES
            return error.status in TRANSIENT_STATUSES or restarting
        return isinstance(error, Urllib3Error | ConnectionError | TimeoutError)

    def failed(self, where: str, error: BaseException) -> bool:
        """`where` failed with `error`: True when that is (part of) an outage, accounted for
        here; False when it is not transient and the caller logs it."""
        if not self.is_transient(error):
            return False
        self._failed(where, describe(error))
        return True

    def _failed(self, where: str, why: str) -> None:
        with self._lock:
            self._failures += 1
            if self._since is not None:
                log.debug("API server still out: %s: %s", where, why)
                return
            self._since = self.clock()
        log.warning(
            "the API server does not answer (%s: %s); reconciles, watches and the Lease "
            "wait for it and retry",
            where,
            why,
        )

    def answered(self) -> None:
        """A call succeeded: an outage, if one was going on, has ended."""
        with self._lock:
            if self._since is None:
                return
            seconds, failures = self.clock() - self._since, self._failures
            self._since, self._failures = None, 0
        log.warning(
            "the API server answers again, after %.0f s out (%d failed calls)", seconds, failures
        )

    def filter_retry_records(self, record: logging.LogRecord) -> bool:
        """A logging filter: kopf's request retries join the outage and urllib3's connection
        retries are dropped (a retry that fails ends in an error reported here); every
        other record passes."""
        message = record.getMessage()
        if record.name.startswith("kopf.") and KOPF_RETRY in message:
            error = message.split(" -> ", 1)[-1]  # the error's repr, with any response body
            self._failed("kopf", error if len(error) <= ERROR_CHARS else error[:ERROR_CHARS] + "…")
            return False
        return not (record.name.startswith("urllib3.") and message.startswith(URLLIB3_RETRY))


# One API server per operator process, so one outage.
outage = ApiOutage()


def quiet_retries_during_outages() -> None:
    """Route the retry records of kopf and urllib3 through `outage` on every handler of the
    root logger (where kopf's logging set-up puts them)."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(outage.filter_retry_records)
