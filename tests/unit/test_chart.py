"""The Helm chart: `helm lint --strict`, and what `helm template` renders for each value."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from rloop_operator.launchers import LAUNCHERS

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "rloop-operator"
RELEASE = "rloop"
NAMESPACE = "rloop-system"
APP_VERSION = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]

Grant = tuple[str, str, str]  # (apiGroup, resource, verb)
Render = Callable[..., list[dict[str, Any]]]

# The operator's whole API surface: kopf's watches and rloop_operator/kube.py's calls,
# with the children's kinds and the objects they need taken from the launcher registry.
CHILD_GRANTS: set[Grant] = {
    (launcher.resource.group, launcher.resource.plural, verb)
    for launcher in LAUNCHERS
    for verb in ("list", "watch", "create", "delete")
}
PREREQUISITES = [r for launcher in LAUNCHERS for r in launcher.prerequisite_resources]
NAMESPACED_GRANTS: set[Grant] = {
    *{("rloop.io", "rloopruns", verb) for verb in ("get", "list", "watch")},
    ("rloop.io", "rloopruns/status", "patch"),
    ("rloop.io", "rloopruns/finalizers", "update"),
    *CHILD_GRANTS,
    *{(r.group, r.plural, "get") for r in PREREQUISITES if r.namespaced},
    ("", "persistentvolumeclaims", "get"),
    ("", "pods", "list"),
    ("", "pods", "watch"),
    ("kueue.x-k8s.io", "workloads", "list"),
    ("", "events", "create"),
}
CLUSTER_GRANTS: set[Grant] = {
    ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
    *{(r.group, r.plural, "get") for r in PREREQUISITES if not r.namespaced},
}
NAMESPACE_GRANTS: set[Grant] = {("", "namespaces", "list"), ("", "namespaces", "watch")}
LEASE_GRANTS: set[Grant] = {
    ("coordination.k8s.io", "leases", v) for v in ("get", "create", "update")
}
LEADER = f"{RELEASE}-rloop-operator-leader"

# One values file per option, each passing the schema; `helm lint --strict` runs on all.
OPTION_VALUES: dict[str, dict[str, Any]] = {
    "defaults": {},
    "replicas": {"replicas": 2},
    "watchNamespaces": {"watchNamespaces": ["team-a", "team-b"]},
    "serviceMonitor": {"metrics": {"port": 9191, "serviceMonitor": {"enabled": True}}},
    "grafanaDashboard": {"metrics": {"grafanaDashboard": {"enabled": True}}},
    "resources": {
        "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}
    },
    "image": {"image": {"repository": "registry.local/op", "tag": "dev", "pullPolicy": "Always"}},
    "scheduling": {
        "nodeSelector": {"pool": "system"},
        "tolerations": [{"key": "system", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {}},
        "priorityClassName": "system-cluster-critical",
    },
    "extraEnv": {"extraEnv": [{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}]},
    "existingServiceAccount": {"serviceAccount": {"create": False, "name": "ops"}},
    "noRbac": {"rbac": {"create": False}},
}


@pytest.fixture(scope="session")
def helm() -> str:
    built = subprocess.run(
        [str(ROOT / "hack" / "helm.sh")], capture_output=True, text=True, check=True
    )
    return built.stdout.strip()


def _helm_template(
    helm: str, tmp_path: Path, values: dict[str, Any]
) -> subprocess.CompletedProcess[str]:
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    command = [helm, "template", RELEASE, str(CHART), "-n", NAMESPACE, "-f", str(values_file)]
    return subprocess.run(command, capture_output=True, text=True, check=False)


@pytest.fixture
def render(helm: str, tmp_path: Path) -> Render:
    def rendered(**values: Any) -> list[dict[str, Any]]:
        result = _helm_template(helm, tmp_path, values)
        assert result.returncode == 0, result.stderr
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]

    return rendered


def only(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [doc] = [doc for doc in docs if doc["kind"] == kind]
    return doc


def operator_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    pod = only(docs, "Deployment")["spec"]["template"]["spec"]
    containers: list[dict[str, Any]] = pod["containers"]
    [container] = containers
    return container


def grants(role: dict[str, Any]) -> set[Grant]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def dockerfile_instruction(name: str) -> list[str]:
    lines = (ROOT / "operator" / "Dockerfile").read_text().splitlines()
    [line] = [line for line in lines if line.startswith(f"{name} ")]
    exec_form: list[str] = json.loads(line.removeprefix(f"{name} "))
    return exec_form


@pytest.mark.parametrize("option", sorted(OPTION_VALUES))
def test_chart_passes_strict_lint(helm: str, tmp_path: Path, option: str) -> None:
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(OPTION_VALUES[option]))
    command = [helm, "lint", "--strict", str(CHART), "-f", str(values_file)]
    lint = subprocess.run(command, capture_output=True, text=True, check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_chart_crd_is_the_top_level_crd() -> None:
    chart_crd = CHART / "crds" / "rlooprun.yaml"
    assert chart_crd.exists(), "copy crds/rlooprun.yaml to helm/rloop-operator/crds/"
    assert chart_crd.read_bytes() == (ROOT / "crds" / "rlooprun.yaml").read_bytes(), (
        "helm/rloop-operator/crds/rlooprun.yaml differs from crds/rlooprun.yaml: copy it over"
    )


def test_default_install_is_a_cluster_wide_operator(render: Render) -> None:
    docs = render()
    kinds = sorted(doc["kind"] for doc in docs)
    assert kinds == sorted([
        "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
        "Service", "Deployment",
    ])  # fmt: skip
    assert dockerfile_instruction("CMD") == ["--log-format=json", "--all-namespaces"]
    assert operator_container(docs)["args"] == dockerfile_instruction("CMD")


def test_deployment_runs_one_standalone_operator_as_the_image_does(render: Render) -> None:
    docs = render()
    spec = only(docs, "Deployment")["spec"]
    assert spec["replicas"] == 1
    command = operator_container(docs)["command"]
    assert "--standalone" in command
    assert command == dockerfile_instruction("ENTRYPOINT")


def test_replicas_elect_a_leader_on_a_lease_in_the_release_namespace(render: Render) -> None:
    docs = render(**OPTION_VALUES["replicas"])
    assert only(docs, "Deployment")["spec"]["replicas"] == 2
    env = {var["name"]: var.get("value") for var in operator_container(docs)["env"]}
    assert (env["RLOOP_LEASE_NAMESPACE"], env["RLOOP_LEASE_NAME"]) == (
        NAMESPACE,
        f"{RELEASE}-rloop-operator",
    )
    [role] = [d for d in docs if d["kind"] == "Role" and d["metadata"]["name"] == LEADER]
    assert role["metadata"]["namespace"] == NAMESPACE
    assert grants(role) == LEASE_GRANTS
    [binding] = [d for d in docs if d["kind"] == "RoleBinding" and d["metadata"]["name"] == LEADER]
    assert binding["roleRef"]["name"] == LEADER


def test_images_default_to_the_app_version(render: Render) -> None:
    container = operator_container(render())
    assert container["image"] == f"ghcr.io/rloop-io/rloop-operator:{APP_VERSION}"
    env = {var["name"]: var.get("value") for var in container["env"]}
    assert env["RLOOP_TRAINER_IMAGE"] == f"ghcr.io/rloop-io/rloop-trainer:{APP_VERSION}"


def test_image_values_choose_the_operator_and_trainer_images(render: Render) -> None:
    container = operator_container(
        render(
            **OPTION_VALUES["image"],
            trainerImage={"repository": "registry.local/trainer", "tag": "t1"},
        )
    )
    assert container["image"] == "registry.local/op:dev"
    assert container["imagePullPolicy"] == "Always"
    env = {var["name"]: var.get("value") for var in container["env"]}
    assert env["RLOOP_TRAINER_IMAGE"] == "registry.local/trainer:t1"


def test_pod_runs_hardened_with_a_writable_tmp(render: Render) -> None:
    docs = render()
    pod = only(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = operator_container(docs)
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    [mount] = container["volumeMounts"]
    assert mount["mountPath"] == "/tmp"
    [volume] = pod["volumes"]
    assert volume["name"] == mount["name"]
    assert "emptyDir" in volume


def test_pod_user_is_the_operator_image_user(render: Render) -> None:
    pod = only(render(), "Deployment")["spec"]["template"]["spec"]
    [user] = [
        line.removeprefix("USER ")
        for line in (ROOT / "operator" / "Dockerfile").read_text().splitlines()
        if line.startswith("USER ")
    ]
    context = pod["securityContext"]
    assert user == f"{context['runAsUser']}:{context['runAsGroup']}"


def test_probes_ask_kopf_liveness_endpoint(render: Render) -> None:
    container = operator_container(render())
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    [liveness_flag] = [arg for arg in container["command"] if arg.startswith("--liveness=")]
    for probe in ("livenessProbe", "readinessProbe"):
        http = container[probe]["httpGet"]
        assert liveness_flag == f"--liveness=http://0.0.0.0:{ports[http['port']]}{http['path']}"


def test_metrics_port_reaches_the_operator_and_the_service(render: Render) -> None:
    docs = render(metrics={"port": 9191})
    container = operator_container(docs)
    env = {var["name"]: var.get("value") for var in container["env"]}
    assert env["RLOOP_METRICS_PORT"] == "9191"
    assert {"name": "metrics", "containerPort": 9191, "protocol": "TCP"} in container["ports"]
    service = only(docs, "Service")
    [port] = service["spec"]["ports"]
    assert (port["name"], port["port"], port["targetPort"]) == ("metrics", 9191, "metrics")
    pod_labels = only(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_cluster_wide_rbac_grants_exactly_what_the_operator_uses(render: Render) -> None:
    docs = render()
    assert grants(only(docs, "ClusterRole")) == NAMESPACED_GRANTS | CLUSTER_GRANTS
    binding = only(docs, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == only(docs, "ClusterRole")["metadata"]["name"]


@pytest.mark.parametrize("option", ["defaults", "watchNamespaces"])
def test_the_operator_may_read_no_secrets_but_may_set_owner_references(
    render: Render, option: str
) -> None:
    docs = render(**OPTION_VALUES[option])
    roles = [doc for doc in docs if doc["kind"] in ("ClusterRole", "Role")]
    granted = set().union(*(grants(role) for role in roles))
    assert not [grant for grant in granted if grant[1] in ("secrets", "*")]
    assert ("rloop.io", "rloopruns/finalizers", "update") in granted


def test_watch_namespaces_confines_the_operator_to_them(render: Render) -> None:
    docs = render(**OPTION_VALUES["watchNamespaces"])
    args = operator_container(docs)["args"]
    assert args == ["--log-format=json", "--namespace=team-a", "--namespace=team-b"]
    assert grants(only(docs, "ClusterRole")) == CLUSTER_GRANTS | NAMESPACE_GRANTS
    roles = {
        doc["metadata"]["namespace"]: doc
        for doc in docs
        if doc["kind"] == "Role" and doc["metadata"]["name"] != LEADER
    }
    assert sorted(roles) == ["team-a", "team-b"]
    assert all(grants(role) == NAMESPACED_GRANTS for role in roles.values())
    bindings = [
        doc for doc in docs if doc["kind"] == "RoleBinding" and doc["metadata"]["name"] != LEADER
    ]
    assert sorted(binding["metadata"]["namespace"] for binding in bindings) == sorted(roles)
    env = {var["name"]: var.get("value") for var in operator_container(docs)["env"]}
    assert env["RLOOP_WATCH_NAMESPACES"] == "team-a,team-b"
    for binding in bindings:
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": roles[binding["metadata"]["namespace"]]["metadata"]["name"],
        }


@pytest.mark.parametrize("option", ["defaults", "watchNamespaces", "existingServiceAccount"])
def test_bindings_name_the_operator_service_account(render: Render, option: str) -> None:
    docs = render(**OPTION_VALUES[option])
    account = only(docs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"]
    expected = {"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}
    bindings = [doc for doc in docs if doc["kind"] in ("ClusterRoleBinding", "RoleBinding")]
    assert bindings
    assert all(binding["subjects"] == [expected] for binding in bindings)


def test_existing_service_account_is_used_not_created(render: Render) -> None:
    docs = render(**OPTION_VALUES["existingServiceAccount"])
    assert not [doc for doc in docs if doc["kind"] == "ServiceAccount"]
    assert only(docs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "ops"


def test_rbac_create_false_renders_no_rbac(render: Render) -> None:
    kinds = {doc["kind"] for doc in render(**OPTION_VALUES["noRbac"])}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}


def test_service_monitor_scrapes_the_metrics_service(render: Render) -> None:
    assert not [doc for doc in render() if doc["kind"] == "ServiceMonitor"]
    docs = render(
        metrics={"serviceMonitor": {"enabled": True, "interval": "15s", "labels": {"p": "x"}}}
    )
    monitor = only(docs, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["p"] == "x"
    service = only(docs, "Service")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    assert monitor["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "15s"}
    ]


def test_grafana_dashboard_is_a_configmap_for_the_sidecar_when_enabled(render: Render) -> None:
    defaults = render()
    assert not [doc for doc in defaults if doc["kind"] == "ConfigMap"]
    chart_labels = only(defaults, "Deployment")["metadata"]["labels"].items()
    dashboard = (CHART / "dashboards" / "rloop-operator.json").read_text()
    for labels, expected in [
        ({}, {"grafana_dashboard": "1"}),
        ({"grafana_dashboard": None, "dashboards": "rloop"}, {"dashboards": "rloop"}),
    ]:
        values = {"grafanaDashboard": {"enabled": True, "labels": labels}}
        config_map = only(render(metrics=values), "ConfigMap")
        assert dict(config_map["metadata"]["labels"].items() - chart_labels) == expected
        assert json.loads(config_map["data"]["rloop-operator.json"]) == json.loads(dashboard)


def test_pod_values_reach_the_pod(render: Render) -> None:
    values = OPTION_VALUES["scheduling"]
    docs = render(
        **values,
        podAnnotations={"a": "1"},
        podLabels={"team": "ml"},
        imagePullSecrets=[{"name": "pull"}],
    )
    template = only(docs, "Deployment")["spec"]["template"]
    for key in ("nodeSelector", "tolerations", "affinity", "priorityClassName"):
        assert template["spec"][key] == values[key]
    assert template["spec"]["imagePullSecrets"] == [{"name": "pull"}]
    assert template["metadata"]["annotations"] == {"a": "1"}
    assert template["metadata"]["labels"]["team"] == "ml"


def test_resources_value_sets_requests_and_limits(render: Render) -> None:
    container = operator_container(render(**OPTION_VALUES["resources"]))
    assert container["resources"] == OPTION_VALUES["resources"]["resources"]


def test_extra_env_follows_the_operator_env(render: Render) -> None:
    env = operator_container(render(**OPTION_VALUES["extraEnv"]))["env"]
    assert [var["name"] for var in env][-2:] == ["RLOOP_TRAINER_IMAGE", "HTTPS_PROXY"]


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"watchNamspaces": ["a"]}, "watchNamspaces"),
        ({"logFormat": "xml"}, "logFormat"),
        ({"watchNamespaces": "team-a"}, "watchNamespaces"),
        ({"watchNamespaces": ["Team_A"]}, "watchNamespaces"),
        ({"metrics": {"port": "9090"}}, "metrics"),
        ({"metrics": {"port": 8080}}, "metrics"),
        ({"image": {"pullPolicy": "Sometimes"}}, "pullPolicy"),
        ({"extraEnv": [{"name": "N", "value": 1}]}, "extraEnv"),
        ({"resources": {"request": {"cpu": "1"}}}, "resources"),
        ({"replicas": 0}, "replicas"),
    ],
)
def test_schema_rejects_wrong_values(
    helm: str, tmp_path: Path, values: dict[str, Any], named: str
) -> None:
    result = _helm_template(helm, tmp_path, values)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert named in result.stderr


def test_existing_service_account_must_be_named(helm: str, tmp_path: Path) -> None:
    result = _helm_template(helm, tmp_path, {"serviceAccount": {"create": False}})
    assert result.returncode != 0
    assert "serviceAccount.name is required" in result.stderr
