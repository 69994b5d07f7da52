"""Spec fields this operator does not know, as a cluster and as `rloop run` treat them.

In a cluster the API server has already checked the spec against the installed CRD and
pruned whatever the CRD does not declare, so a field the operator does not know comes
from a newer CRD (installed before the operator is upgraded, with defaults the server
fills in on every run): it is ignored, never an invalid spec, and the run gets one event
naming it. `rloop run` has no API server in front of it: there an unknown field is a
typo in the user's YAML and parse_spec() refuses it, naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, get_args

from pydantic import BaseModel

from rloop_operator.api import RLoopRunSpec, parse_spec


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds, directly, optionally or as list items."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _is_list(annotation: Any) -> bool:
    return getattr(annotation, "__origin__", None) in (list, tuple) or any(
        _is_list(arg) for arg in get_args(annotation)
    )


def split_unknown(
    raw: Mapping[str, Any], model: type[BaseModel], path: str
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """`raw` without the keys `model` does not declare (at any depth), and their paths."""
    fields = {(info.alias or name): info for name, info in model.model_fields.items()}
    known: dict[str, Any] = {}
    unknown: list[str] = []
    for key, value in raw.items():
        info = fields.get(key)
        if info is None:
            unknown.append(f"{path}.{key}")
            continue
        nested = _model_in(info.annotation)
        if nested is not None and isinstance(value, Mapping) and not _is_list(info.annotation):
            value, deeper = split_unknown(value, nested, f"{path}.{key}")
            unknown += deeper
        elif nested is not None and isinstance(value, list):
            items = []
            for index, item in enumerate(value):
                if isinstance(item, Mapping):
                    item, deeper = split_unknown(item, nested, f"{path}.{key}[{index}]")
                    unknown += deeper
                items.append(item)
            value = items
        known[key] = value
    return known, tuple(unknown)


def parse_cluster_spec(raw: Mapping[str, Any]) -> tuple[RLoopRunSpec, tuple[str, ...]]:
    """The spec of a run read from the API server, and the fields it ignored; SpecError
    for anything else that is wrong."""
    known, ignored = split_unknown(raw, RLoopRunSpec, "spec")
    return parse_spec(known), tuple(sorted(ignored))
