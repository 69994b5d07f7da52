"""The operator's log across a kube-apiserver restart: seconds of connection refused are
one WARNING when they start and one when they end, not a traceback per failed call.

On a control plane of its own: its API server is stopped and started again.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.cluster.controlplane import ControlPlane
from tests.e2e.helpers import child_names, create_namespace, eventually
from tests.e2e.operator_process import RELEASE, RELEASE_NAMESPACE, install_chart, running_operator
from tests.e2e.test_operator_process import plane  # noqa: F401 (a control plane of its own)
from tests.e2e.test_run_lifecycle import EXAMPLE, RUN

pytestmark = pytest.mark.cluster
# Longer than a reconcile's poll of a phase whose pods wait (attempts.START_POLL_SECONDS),
# so reconciles, the child watches and the Lease all fail during it.
DOWN_S = 15.0
OUTAGE_STARTS = "WARNING.*the API server does not answer"
OUTAGE_ENDS = "WARNING.*the API server answers again"


def test_an_api_server_restart_is_one_warning_when_it_starts_and_one_when_it_ends(
    plane: ControlPlane,  # noqa: F811
    tmp_path: Path,
) -> None:
    chart_kubeconfig = install_chart(plane, tmp_path)
    create_namespace(plane, "outage")
    lease = {"RLOOP_LEASE_NAMESPACE": RELEASE_NAMESPACE, "RLOOP_LEASE_NAME": RELEASE}
    with running_operator(chart_kubeconfig, tmp_path, lease) as operator:
        plane.kubectl("apply", "-n", "outage", "-f", str(EXAMPLE))
        # No scheduler here: the base evaluation's pod stays Pending, and the operator
        # looks at the run every few seconds.
        eventually(lambda: child_names(plane, "outage"), 90, "the run's first child")
        before = len(operator.log_tail(10**8))

        plane.restart_apiserver(DOWN_S)

        eventually(
            lambda: re.search(OUTAGE_ENDS, operator.log_tail(10**8)[before:]),
            120,
            "the operator to say that the API server answers again",
        )
        log = operator.log_tail(10**8)[before:]
        assert operator.alive

    assert len(re.findall(OUTAGE_STARTS, log)) == 1, log
    assert len(re.findall(OUTAGE_ENDS, log)) == 1, log
    assert "Traceback" not in log, log
    assert not re.search(r"\b(ERROR|CRITICAL)\b", log), log
    assert RUN in plane.kubectl("get", "rloopruns", "-n", "outage").stdout
