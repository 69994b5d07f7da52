"""An API-server outage is one WARNING when it starts and one when it ends."""

from __future__ import annotations

import logging

import pytest
from kubernetes.client.exceptions import ApiException
from rloop_operator.api_outage import ApiOutage
from urllib3.exceptions import MaxRetryError


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def connection_refused() -> MaxRetryError:
    """What the kubernetes client raises while nothing listens on the API server's port."""
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except ConnectionRefusedError as refused:
            raise MaxRetryError(None, "/apis/rloop.io/v1alpha1", refused) from refused
    except MaxRetryError as error:
        return error


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_an_outage_is_one_warning_when_it_starts_and_one_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    outage = ApiOutage(clock)

    assert outage.failed("reconcile ns/run", connection_refused())
    assert outage.failed("watch pods in all namespaces", connection_refused())
    assert outage.failed("lease rloop-operator", ApiException(status=503, reason="Unavailable"))
    clock.now += 12
    outage.answered()
    outage.answered()

    assert warnings(caplog) == [
        "the API server does not answer (reconcile ns/run: ConnectionRefusedError: [Errno 111] "
        "Connection refused); reconciles, watches and the Lease wait for it and retry",
        "the API server answers again, after 12 s out (3 failed calls)",
    ]


def test_an_answer_that_is_not_transient_stays_the_callers_to_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outage = ApiOutage()

    assert not outage.failed("reconcile ns/run", ApiException(status=404, reason="Not Found"))
    assert not outage.failed("reconcile ns/run", ApiException(status=403, reason="Forbidden"))
    assert not outage.failed("reconcile ns/run", ValueError("a bug"))
    assert warnings(caplog) == []


def test_a_403_while_the_api_server_restarts_is_part_of_the_outage() -> None:
    # A restarted API server refuses every ServiceAccount until its RBAC caches load.
    outage = ApiOutage()
    outage.failed("reconcile ns/run", connection_refused())

    assert outage.failed("reconcile ns/run", ApiException(status=403, reason="Forbidden"))


def record(name: str, message: str) -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, message, None, None)


def test_kopfs_request_retries_join_the_outage_and_urllib3s_retries_are_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outage = ApiOutage()
    kopf_retry = record(
        "kopf._cogs.clients.watching",
        "Request attempt #1/9 failed; will retry: GET https://127.0.0.1:6443/apis/rloop.io/v1alpha1"
        "/rloopruns -> ClientConnectorError('Connect call failed')",
    )
    urllib3_retry = record(
        "urllib3.connectionpool",
        "Retrying (Retry(total=2)) after connection broken by 'NewConnectionError(...)': /apis",
    )
    escalation = record("kopf._cogs.clients.watching", "Request attempt #9/9 failed; escalating")

    assert not outage.filter_retry_records(kopf_retry)
    assert not outage.filter_retry_records(urllib3_retry)
    assert outage.filter_retry_records(escalation)
    assert outage.ongoing
    assert warnings(caplog) == [
        "the API server does not answer (kopf: ClientConnectorError('Connect call failed')); "
        "reconciles, watches and the Lease wait for it and retry"
    ]
