"""The chart's Grafana dashboard (dashboards/rloop-operator.json): every metric its queries
name is one the operator exports, and every metric the operator exports has a panel.
test_chart.py renders its ConfigMap."""

from __future__ import annotations

import json
import re

import prometheus_client.metrics
from rloop_operator import prometheus
from rloop_operator.pods import STUCK_WAITING

from tests.unit.test_chart import CHART

DASHBOARD = json.loads((CHART / "dashboards" / "rloop-operator.json").read_text())
# The series each kind of metric exports, as prometheus_client names them.
SAMPLE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
}
PROMQL_WORDS = {"bool", "offset", "and", "or", "unless", "inf", "nan"}


def exported_series() -> set[str]:
    """Every series name the operator's metrics module exports."""
    names = set()
    for value in vars(prometheus).values():
        if isinstance(value, prometheus_client.metrics.MetricWrapperBase):
            for family in value.describe():
                names |= {family.name + suffix for suffix in SAMPLE_SUFFIXES[family.type]}
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names of a PromQL expression: its identifiers that are not functions,
    aggregations, keywords, label names or inside label matchers, ranges or strings."""
    expr = re.sub(r'"(\\.|[^"\\])*"', "", expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    found = re.finditer(r"(?<![\w:])[A-Za-z_:][\w:]*(?![\w:])(?!\s*\()", expr)
    return {m.group() for m in found if m.group().lower() not in PROMQL_WORDS}


def queries() -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in DASHBOARD["panels"] for t in p.get("targets", [])]


def test_the_metric_name_parser_finds_names_and_only_names() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, stage) (rate(a_bucket{x=~"b|c"}[$__rate_interval])))'
        " / on (stage) group_left (kind) max without (y) (other_total offset 5m) > bool 1"
    )
    assert metric_names(expr) == {"a_bucket", "other_total"}


def test_the_dashboard_queries_only_metrics_the_operator_exports() -> None:
    exported = exported_series()
    assert "rloop_runs" in exported and "rloop_stage_duration_seconds_bucket" in exported
    for title, expr in queries():
        named = metric_names(expr)
        assert named, f"{title}: {expr} names no metric"
        assert named <= exported, f"{title}: {sorted(named - exported)} are not exported"


def test_every_operator_metric_has_a_panel() -> None:
    used = {name for _, expr in queries() for name in metric_names(expr)}
    for value in vars(prometheus).values():
        if isinstance(value, prometheus_client.metrics.MetricWrapperBase):
            [family] = value.describe()
            assert any(name.startswith(family.name) for name in used), family.name


def test_stuck_children_are_the_causes_the_operator_calls_stuck() -> None:
    [panel] = [p for p in DASHBOARD["panels"] if p["title"] == "Stuck children"]
    [causes] = re.findall(r'reason=~"([^"]*)"', panel["targets"][0]["expr"])
    assert set(causes.split("|")) == {"Unschedulable", *STUCK_WAITING}


def test_every_panel_asks_the_chosen_prometheus() -> None:
    [variable] = DASHBOARD["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == (
        "datasource",
        "datasource",
        "prometheus",
    )
    for panel in DASHBOARD["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
