"""The OpenAPI v3 schema of a pydantic model, as a structural CRD schema wants it. Pure.

Types, defaults, bounds, patterns and descriptions come from the models' fields; CEL rules
and the keywords pydantic has no constraint for come from the markers of
rloop_contract.schema beside them. A model's description is its field's, else its
docstring. Defaults are written for the spec (the API server fills them in); a section
whose default is the model itself gets `default: {}`, so its fields' defaults apply.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Mapping
from datetime import datetime
from enum import Enum
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from rloop_contract.schema import Crd, OneOf, Rule, SpecSection

# Keyword order of a written schema, for a file that reads top-down.
_ORDER = (
    "type", "format", "description", "enum", "default", "minimum", "exclusiveMinimum",
    "maximum", "exclusiveMaximum", "minLength", "maxLength", "minItems", "maxItems",
    "maxProperties", "pattern", "required", "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys", "x-kubernetes-validations", "x-kubernetes-int-or-string",
    "anyOf", "x-kubernetes-preserve-unknown-fields", "additionalProperties", "items",
    "properties",
)  # fmt: skip
_SIZE = {"string": "Length", "array": "Items", "object": "Properties"}


def model_schema(model: type[BaseModel], defaults: bool) -> dict[str, Any]:
    """type: object with the model's fields as properties (by their aliases)."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, info in model.model_fields.items():
        key = info.alias or name
        properties[key] = field_schema(info, defaults)
        if info.is_required():
            required.append(key)
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    if issubclass(model, SpecSection):
        _add_rules(schema, model.crd_rules)
    return schema


def field_schema(info: FieldInfo, defaults: bool) -> dict[str, Any]:
    metadata: list[Any] = list(info.metadata)
    if info.description:
        metadata.append(FieldInfo(description=info.description))
    schema = type_schema(info.annotation, metadata, defaults)
    if defaults:
        default = _default(info)
        if default is not None:
            schema["default"] = default
    return ordered(schema)


def _default(info: FieldInfo) -> Any:
    if info.default_factory is not None:
        value = info.default_factory()  # type: ignore[call-arg]
        return _plain(value) if value else None
    if info.default is PydanticUndefined or info.default is None:
        return None
    if isinstance(info.default, BaseModel):
        return {}
    return _plain(info.default)


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def type_schema(annotation: Any, metadata: list[Any], defaults: bool) -> dict[str, Any]:
    """The schema of a type, with the constraints and markers of `metadata` applied."""
    origin = get_origin(annotation)
    if origin is Annotated:
        inner, *more = get_args(annotation)
        return type_schema(inner, [*more, *metadata], defaults)
    if origin in (Union, types.UnionType):
        arms = [arm for arm in get_args(annotation) if arm is not type(None)]
        if len(arms) == 1:
            return type_schema(arms[0], metadata, defaults)
        return _int_or_string(arms, metadata, defaults)
    schema = _base_schema(annotation, defaults)
    _apply(schema, metadata)
    return ordered(schema)


def _base_schema(annotation: Any, defaults: bool) -> dict[str, Any]:
    origin = get_origin(annotation)
    if annotation is Any:
        return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    if origin is Literal:
        values = [_plain(value) for value in get_args(annotation)]
        kind = "integer" if all(isinstance(v, int) for v in values) else "string"
        return {"type": kind, "enum": values}
    if origin in (list, tuple):
        item = get_args(annotation)[0]
        return {"type": "array", "items": type_schema(item, [], defaults)}
    if origin is dict:
        value = get_args(annotation)[1]
        if value is Any:
            return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        return {"type": "object", "additionalProperties": type_schema(value, [], defaults)}
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        schema = model_schema(annotation, defaults)
        description = _docstring(annotation)
        return {"description": description, **schema} if description else schema
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return {"type": "string", "enum": [member.value for member in annotation]}
    simple = {bool: "boolean", int: "integer", float: "number", str: "string", datetime: "string"}
    return {"type": simple[annotation]}


def _int_or_string(arms: list[Any], metadata: list[Any], defaults: bool) -> dict[str, Any]:
    """int | str (a resource quantity): what the API server calls int-or-string."""
    schemas = [type_schema(arm, [], defaults) for arm in arms]
    if sorted(s["type"] for s in schemas) != ["integer", "string"]:
        raise TypeError(f"no CRD schema for the union {arms}")
    schema: dict[str, Any] = {
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "x-kubernetes-int-or-string": True,
    }
    for arm in schemas:
        schema.update({k: v for k, v in arm.items() if k != "type"})
    _apply(schema, metadata)
    return ordered(schema)


def _apply(schema: dict[str, Any], metadata: list[Any]) -> None:
    """Constraints (annotated_types, pydantic's pattern), descriptions and our markers."""
    size = _SIZE.get(schema.get("type", "string"), "Length")
    for item in metadata:
        if isinstance(item, FieldInfo):
            _apply(schema, list(item.metadata))
            if item.description:
                schema["description"] = item.description
        elif isinstance(item, annotated_types.Ge):
            schema["minimum"] = item.ge
        elif isinstance(item, annotated_types.Gt):
            schema.update(minimum=item.gt, exclusiveMinimum=True)
        elif isinstance(item, annotated_types.Le):
            schema["maximum"] = item.le
        elif isinstance(item, annotated_types.Lt):
            schema.update(maximum=item.lt, exclusiveMaximum=True)
        elif isinstance(item, annotated_types.MinLen):
            schema[f"min{size}"] = item.min_length
        elif isinstance(item, annotated_types.MaxLen):
            schema[f"max{size}"] = item.max_length
        elif getattr(item, "pattern", None) is not None:
            schema["pattern"] = item.pattern
        elif isinstance(item, OneOf):
            schema["enum"] = list(item.values)
        elif isinstance(item, Crd):
            schema.update(item.schema)
            _add_rules(schema, item.rules)
        elif isinstance(item, Rule):
            _add_rules(schema, (item,))


def _add_rules(schema: dict[str, Any], rules: tuple[Rule, ...]) -> None:
    if rules:
        schema["x-kubernetes-validations"] = [
            *schema.get("x-kubernetes-validations", []),
            *(rule.to_crd() for rule in rules),
        ]


def _docstring(model: type[BaseModel]) -> str | None:
    doc = model.__dict__.get("__doc__")
    return " ".join(inspect.cleandoc(doc).split()) if doc else None


def ordered(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The schema's keywords in _ORDER (unknown ones last, as they came)."""
    rank = {key: index for index, key in enumerate(_ORDER)}
    return dict(sorted(schema.items(), key=lambda item: rank.get(item[0], len(rank))))
