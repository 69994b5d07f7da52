"""The operator's settings from the environment the chart gives it."""

from __future__ import annotations

from rloop_operator.leader import LeaseSettings
from rloop_operator.settings import OperatorSettings


def test_the_charts_environment_turns_on_the_lease_and_the_namespaces() -> None:
    settings = OperatorSettings.from_env({
        "RLOOP_LEASE_NAMESPACE": "rloop-system", "RLOOP_LEASE_NAME": "rloop-operator",
        "RLOOP_WATCH_NAMESPACES": "team-a,team-b", "RLOOP_API_TIMEOUT_SECONDS": "5",
    })  # fmt: skip
    assert settings.lease == LeaseSettings("rloop-system", "rloop-operator")
    assert settings.watch_namespaces == ("team-a", "team-b")
    assert settings.api_timeout_seconds == 5


def test_without_them_one_operator_acts_on_every_namespace() -> None:
    settings = OperatorSettings.from_env({"RLOOP_WATCH_NAMESPACES": ""})
    assert settings.lease is None and settings.watch_namespaces is None


def test_each_replica_has_its_own_identity_named_after_its_pod() -> None:
    one, other = (OperatorSettings.from_env({"POD_NAME": "op-7d9f"}) for _ in range(2))
    assert one.identity.startswith("op-7d9f_") and other.identity.startswith("op-7d9f_")
    assert one.identity != other.identity
