"""The operator process against what production clusters do to it: a child CRD deleted
while it is watched, a hung API call, a permission the chart lacks, and two replicas.

These tests start their own operators, so they run on a control plane of their own
(the session's operator acts on every namespace of the session's plane).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.cluster.apiproxy import running_proxy
from tests.cluster.controlplane import ControlPlane, running_control_plane
from tests.cluster.devcluster import install_project_objects, project_crds
from tests.cluster.layout import ensure_binaries
from tests.cluster.workload import WorkloadPolicy, running_workload
from tests.e2e.helpers import (
    child_names,
    children_by_kind,
    create_namespace,
    eventually,
    run_status,
    wait_for_phase,
)
from tests.e2e.operator_process import (
    RELEASE,
    RELEASE_NAMESPACE,
    OperatorProcess,
    install_chart,
    running_operator,
)
from tests.e2e.test_run_lifecycle import (
    EXAMPLE,
    EXPECTED_CHILDREN,
    RUN,
    example_without_validation,
)

pytestmark = pytest.mark.cluster
PYTORCHJOBS = "pytorchjobs.kubeflow.org"
_namespaces = itertools.count(1)


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    work_dir = tmp_path_factory.mktemp("solo-plane")
    with running_control_plane(ensure_binaries(), work_dir, project_crds()) as started:
        install_project_objects(started)
        yield started


@pytest.fixture(scope="module")
def chart_kubeconfig(plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_chart(plane, tmp_path_factory.mktemp("solo-chart"))


@pytest.fixture()
def namespace(plane: ControlPlane) -> str:
    name = f"solo-{next(_namespaces)}"
    create_namespace(plane, name)
    return name


def blocked(plane: ControlPlane, namespace: str) -> dict[str, Any] | None:
    status = run_status(plane, namespace, RUN)
    condition = next((c for c in status.get("conditions", []) if c["type"] == "Blocked"), None)
    return condition if condition and condition["status"] == "True" else None


def events(plane: ControlPlane, namespace: str, reason: str) -> list[dict[str, Any]]:
    out = plane.kubectl("get", "events", "-n", namespace, "-o", "json").stdout
    return [e for e in json.loads(out)["items"] if e["reason"] == reason]


def test_the_operator_outlives_its_childrens_crd_being_deleted_and_reinstalled(
    plane: ControlPlane, chart_kubeconfig: Path, namespace: str, tmp_path: Path
) -> None:
    # Every stage on a PyTorchJob loses its child with the CRD: four deletions in a run.
    policy = WorkloadPolicy(running_s=1.0)
    with (
        running_operator(chart_kubeconfig, tmp_path) as operator,
        running_workload(plane, namespace, policy),
    ):
        plane.kubectl("apply", "-n", namespace, "-f", str(EXAMPLE))
        for deletion in range(4):
            eventually(
                lambda: children_by_kind(plane, namespace, (PYTORCHJOBS,))[PYTORCHJOBS],
                90,
                f"a PyTorchJob child before deletion {deletion + 1}",
            )
            plane.kubectl("delete", "crd", PYTORCHJOBS, "--wait=true")
            condition = eventually(
                lambda: (c := blocked(plane, namespace)) and c["reason"] == "LauncherNotInstalled"
                and c,
                60,
                "the run to be Blocked on the missing PyTorchJob CRD",
            )  # fmt: skip
            assert "does not serve PyTorchJob" in condition["message"]
            assert operator.alive, operator.log_tail()
            plane.install_crds([plane.layout.pytorchjob_crd])
        status = wait_for_phase(plane, namespace, RUN, "Succeeded", 240)
        assert operator.alive, operator.log_tail()
    assert status["progress"] == "2/2"
    # The PyTorchJobs went with the CRD; the Jobs show that no stage ran twice.
    assert children_by_kind(plane, namespace, ("jobs.batch",))["jobs.batch"] == [
        name for name in EXPECTED_CHILDREN if name.endswith(("-base", "-filter", "-eval"))
    ]
    assert "has failed" not in operator.log_tail(10**8)


CHILD_COLLECTION = re.compile(r"/(pytorchjobs|trainjobs|jobs)(\?|$)")


def test_a_hung_api_call_fails_healthz_then_times_out_and_the_run_goes_on(
    plane: ControlPlane, chart_kubeconfig: Path, namespace: str, tmp_path: Path
) -> None:
    env = {"RLOOP_API_TIMEOUT_SECONDS": "15", "RLOOP_STUCK_RECONCILE_SECONDS": "2"}
    run_path = f"/apis/rloop.io/v1alpha1/namespaces/{namespace}/rloopruns/{RUN}"
    with running_proxy(plane) as proxy:
        kubeconfig = proxy.kubeconfig(chart_kubeconfig, tmp_path / "through-proxy")
        with (
            running_operator(kubeconfig, tmp_path, env) as operator,
            running_workload(plane, namespace, WorkloadPolicy(running_s=3.0)),
        ):
            plane.kubectl("apply", "-n", namespace, "-f", str(EXAMPLE))
            eventually(lambda: child_names(plane, namespace), 60, "the first child")
            # The reconciler reads the run first: from now on that read never comes back.
            proxy.hang(lambda method, path: method == "GET" and path.split("?")[0] == run_path)
            eventually(lambda: operator.health() == 500, 60, "/healthz to fail while it hangs")
            proxy.hang(None)
            eventually(
                lambda: len(child_names(plane, namespace)) >= 2,
                90,
                "the run to go on once the API answers again",
            )
            eventually(lambda: operator.health() == 200, 30, "/healthz to recover")
    listed = [p for method, p in proxy.requests if method == "GET" and CHILD_COLLECTION.search(p)]
    assert listed, "the operator listed and watched its children through the proxy"
    unfiltered = [
        path
        for path in listed
        if not parse_qs(urlsplit(path).query)
        .get("labelSelector", [""])[0]
        .startswith("rloop.io/run")
    ]
    assert unfiltered == [], "children are listed and watched by a server-side label selector"


def limited_service_account(plane: ControlPlane, tmp_path: Path) -> Path:
    """A ServiceAccount with the chart's ClusterRole minus update of rloopruns/finalizers,
    which OwnerReferencesPermissionEnforcement wants for a child's blockOwnerDeletion."""
    chart_role = json.loads(
        plane.kubectl("get", "clusterrole", RELEASE, "-o", "json").stdout
    )  # fmt: skip
    rules = [r for r in chart_role["rules"] if "rloopruns/finalizers" not in r["resources"]]
    name = "rloop-limited"
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": name}, "rules": rules}  # fmt: skip
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": RELEASE_NAMESPACE}],
    }  # fmt: skip
    plane.kubectl("create", "serviceaccount", name, "-n", RELEASE_NAMESPACE)
    for document in (role, binding):
        plane.kubectl("apply", "-f", "-", stdin=json.dumps(document))
    return plane.service_account_kubeconfig(RELEASE_NAMESPACE, name, tmp_path / "limited")


def test_a_permission_the_operator_lacks_shows_on_the_run_until_it_is_granted(
    plane: ControlPlane, chart_kubeconfig: Path, namespace: str, tmp_path: Path
) -> None:
    operator = OperatorProcess(limited_service_account(plane, tmp_path), tmp_path / "log")
    operator.start()
    try:
        plane.kubectl("apply", "-n", namespace, "-f", "-", stdin=example_without_validation())
        condition = eventually(
            lambda: (c := blocked(plane, namespace)) and c["reason"] == "CreateForbidden" and c,
            60,
            "the refused child on the run's Blocked condition",
        )
        assert (
            "the API server refused to create PyTorchJob tiny-i00-rl (403 Forbidden)"
            in (condition["message"])
        )
        assert "cannot set blockOwnerDeletion" in condition["message"]
        # The reconciler posts its events right after it writes the status.
        refused = eventually(
            lambda: events(plane, namespace, "CreateForbidden"), 30, "the refusal's event"
        )
        assert all(e["type"] == "Warning" for e in refused)
        assert all("cannot set blockOwnerDeletion" in e["message"] for e in refused)
        assert child_names(plane, namespace) == []
        grant = {"apiGroups": ["rloop.io"], "resources": ["rloopruns/finalizers"],
                 "verbs": ["update"]}  # fmt: skip
        plane.kubectl(
            "patch", "clusterrole", "rloop-limited", "--type=json",
            "-p", json.dumps([{"op": "add", "path": "/rules/-", "value": grant}]),
        )  # fmt: skip
        eventually(lambda: child_names(plane, namespace), 60, "the child once permitted")
        assert blocked(plane, namespace) is None
    finally:
        operator.stop()


def lease_holder(plane: ControlPlane) -> str:
    lease = plane.kubectl("get", "lease", RELEASE, "-n", RELEASE_NAMESPACE, "-o", "json").stdout
    return str(json.loads(lease)["spec"].get("holderIdentity") or "")


def created_by(plane: ControlPlane, namespace: str) -> dict[str, str]:
    """{child: the replica that created it}, from the ChildCreated events."""
    found = {}
    for event in events(plane, namespace, "ChildCreated"):
        child = re.match(r"(?:created|resumed) \S+ (\S+):", event["message"])
        assert child is not None, event["message"]
        found[child.group(1)] = str(event["reportingInstance"])
    return found


def test_of_two_replicas_only_the_leader_acts_and_the_other_takes_over_when_it_dies(
    plane: ControlPlane, chart_kubeconfig: Path, namespace: str, tmp_path: Path
) -> None:
    lease = {"RLOOP_LEASE_NAMESPACE": RELEASE_NAMESPACE, "RLOOP_LEASE_NAME": RELEASE}
    first, second = (
        OperatorProcess(chart_kubeconfig, tmp_path / f"{pod}.log", {**lease, "POD_NAME": pod})
        for pod in ("replica-a", "replica-b")
    )
    try:
        first.start()
        eventually(lambda: lease_holder(plane).startswith("replica-a_"), 30, "replica-a to lead")
        second.start()
        with running_workload(plane, namespace, WorkloadPolicy(running_s=2.0)):
            plane.kubectl("apply", "-n", namespace, "-f", str(EXAMPLE))
            eventually(lambda: len(child_names(plane, namespace)) >= 2, 60, "two children")
            first.kill()
            before_kill = set(created_by(plane, namespace))
            wait_for_phase(plane, namespace, RUN, "Succeeded", 240)
        assert lease_holder(plane).startswith("replica-b_")
        second.stop()
        assert lease_holder(plane) == "", "a replica that stops gives the Lease up"
    finally:
        second.stop()
        first.stop()
    created = created_by(plane, namespace)
    assert sorted(created) == EXPECTED_CHILDREN, "each child was created once"
    by_replica = {name: instance.split("_")[0] for name, instance in created.items()}
    assert {by_replica[name] for name in before_kill} == {"replica-a"}
    assert {by_replica[name] for name in set(created) - before_kill} == {"replica-b"}
