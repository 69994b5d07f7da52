"""The typed API and the CRD generated from it agree: fields, defaults, descriptions, rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel
from rloop_operator.api import (
    Condition,
    IterationRecord,
    RLoopRunSpec,
    RLoopRunStatus,
    SpecError,
    parse_spec,
)
from rloop_operator.children import (
    DNS_1035_LABEL,
    MAX_RUN_NAME,
    RUN_NAME_NOT_DNS_1035,
    RUN_NAME_TOO_LONG,
    run_name_problem,
)

from tests.unit.operator.world import spec_dict

ROOT = Path(__file__).resolve().parents[3]
CRD = yaml.safe_load((ROOT / "crds" / "rlooprun.yaml").read_text())
SCHEMA = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def _model_of(annotation: Any) -> type[BaseModel] | None:
    candidates = [annotation, *getattr(annotation, "__args__", ())]
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
        inner = getattr(candidate, "__args__", ())
        for arg in inner:
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                return arg
    return None


def _pairs(model: type[BaseModel], schema: dict[str, Any], path: str):  # type: ignore[no-untyped-def]
    properties = schema.get("properties", {})
    for name, field in model.model_fields.items():
        alias = field.alias or name
        yield path + alias, field, properties.get(alias)


def _walk(model: type[BaseModel], schema: dict[str, Any], path: str) -> list[str]:
    problems = []
    for where, field, prop in _pairs(model, schema, path):
        if prop is None:
            problems.append(f"{where}: in the model, not in the CRD")
            continue
        nested = _model_of(field.annotation)
        if nested is not None:
            target = prop.get("items", prop) if prop.get("type") == "array" else prop
            problems += _walk(nested, target, where + ".")
    declared = set(schema.get("properties", {}))
    modelled = {f.alias or n for n, f in model.model_fields.items()}
    problems += [f"{path}{name}: in the CRD, not in the model" for name in declared - modelled]
    return problems


def test_spec_model_and_crd_declare_the_same_fields() -> None:
    assert _walk(RLoopRunSpec, SCHEMA["properties"]["spec"], "spec.") == []


def test_every_status_field_is_declared_or_the_server_would_prune_it() -> None:
    assert _walk(RLoopRunStatus, SCHEMA["properties"]["status"], "status.") == []
    items = SCHEMA["properties"]["status"]["properties"]
    assert _walk(IterationRecord, items["iterations"]["items"], "status.iterations[].") == []
    assert _walk(Condition, items["conditions"]["items"], "status.conditions[].") == []


def _defaults(schema: dict[str, Any], path: str) -> dict[str, Any]:
    found = {}
    for name, prop in schema.get("properties", {}).items():
        if "default" in prop and prop["default"] != {}:
            found[path + name] = prop["default"]
        found.update(_defaults(prop, f"{path}{name}."))
        if "items" in prop:
            found.update(_defaults(prop["items"], f"{path}{name}[]."))
    return found


def _model_value(spec: dict[str, Any], dotted: str) -> Any:
    """`data.validation[].samples` reads the first list element's field."""
    value: Any = spec
    for part in dotted.split("."):
        value = value[part.removesuffix("[]")]
        if part.endswith("[]"):
            value = value[0]
    return value


def test_crd_defaults_match_the_model_defaults() -> None:
    data = {"train": "s3://b/t", "validation": [{"name": "v", "uri": "s3://b/v"}]}
    parsed = parse_spec(spec_dict(data=data, iterations=3, dapo={})).model_dump(by_alias=True)
    # Optional sections (runtimeRef is only for launcher trainjob; a tracker is on only when
    # set) have no default of their own: their fields' defaults are read from a spec that sets
    # them, with only their required fields.
    with_optional = parse_spec(
        spec_dict(
            resources={"launcher": "trainjob", "runtimeRef": {}},
            tracking={"mlflow": {"trackingUri": "http://mlflow:5000"}, "wandb": {"project": "p"}},
        )
    ).model_dump(by_alias=True)
    optional = ("resources.runtimeRef.", "tracking.mlflow.", "tracking.wandb.")
    defaults = _defaults(SCHEMA["properties"]["spec"], "")
    assert len(defaults) > 40
    for dotted, default in defaults.items():
        source = with_optional if dotted.startswith(optional) else parsed
        assert _model_value(source, dotted) == default, dotted


def test_every_crd_field_has_a_description_for_kubectl_explain() -> None:
    missing = []

    def visit(schema: dict[str, Any], path: str) -> None:
        for name, prop in schema.get("properties", {}).items():
            if path.startswith("status.conditions") or name in ("apiVersion", "kind", "metadata"):
                continue
            if "description" not in prop and not path.startswith("status"):
                missing.append(path + name)
            visit(prop, f"{path}{name}.")
            if "items" in prop:
                visit(prop["items"], f"{path}{name}[].")

    visit(SCHEMA, "")
    assert missing == []


def test_an_unknown_field_names_the_field_and_the_fix() -> None:
    with pytest.raises(SpecError, match=r"spec\.dapo\.stepz: unknown field; remove it"):
        parse_spec(spec_dict(dapo={"stepz": 3}))


SCHEMA_KEYWORDS = {
    "type", "description", "default", "minimum", "maximum", "exclusiveMinimum", "enum",
    "pattern", "format", "maxLength", "minLength", "maxItems", "items", "properties",
    "additionalProperties", "required", "x-kubernetes-validations",
    "x-kubernetes-preserve-unknown-fields", "x-kubernetes-list-type", "x-kubernetes-list-map-keys",
    "maxProperties",
}  # fmt: skip


def test_crd_property_schemas_use_only_schema_keywords() -> None:
    """A stray key (an unquoted comma in a YAML flow mapping makes one) breaks server-side apply."""
    strays = []

    def visit(schema: dict[str, Any], path: str) -> None:
        for name, prop in schema.get("properties", {}).items():
            strays.extend(f"{path}{name}: {key}" for key in set(prop) - SCHEMA_KEYWORDS)
            visit(prop, f"{path}{name}.")
            if isinstance(prop.get("items"), dict):
                visit(prop["items"], f"{path}{name}[].")

    visit(SCHEMA, "")
    assert strays == []


def test_the_crd_refuses_the_run_names_rloop_run_refuses_with_the_same_messages() -> None:
    rules = {rule["rule"]: rule["message"] for rule in SCHEMA["x-kubernetes-validations"]}
    assert rules == {
        f"oldSelf.hasValue() || self.metadata.name.matches('{DNS_1035_LABEL}')": (
            RUN_NAME_NOT_DNS_1035
        ),
        f"oldSelf.hasValue() || size(self.metadata.name) <= {MAX_RUN_NAME}": RUN_NAME_TOO_LONG,
    }
    assert all(rule["optionalOldSelf"] for rule in SCHEMA["x-kubernetes-validations"])


def test_a_trainjob_run_defaults_to_kubeflows_torch_runtime() -> None:
    resources = parse_spec(spec_dict(resources={"launcher": "trainjob"})).resources
    assert resources.runtime_ref is None
    assert resources.trainjob_runtime.model_dump(by_alias=True) == {
        "name": "torch-distributed",
        "kind": "ClusterTrainingRuntime",
    }


@pytest.mark.parametrize(
    "example", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name
)
def test_every_example_is_a_valid_run(example: Path) -> None:
    document = yaml.safe_load(example.read_text())
    assert run_name_problem(document["metadata"]["name"]) is None
    parse_spec(document["spec"])


@pytest.mark.parametrize(
    ("written", "seconds"),
    [("30m", 1800.0), ("1h30m", 5400.0), ("90s", 90.0), ("2h0m5s", 7205.0), ("0", None)],
)
def test_start_timeout_is_read_as_hours_minutes_and_seconds(
    written: str, seconds: float | None
) -> None:
    resources = parse_spec(spec_dict(resources={"startTimeout": written})).resources
    assert resources.start_timeout_seconds == seconds


def test_start_timeout_defaults_to_thirty_minutes() -> None:
    assert parse_spec(spec_dict()).resources.start_timeout_seconds == 1800.0
