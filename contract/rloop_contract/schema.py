"""How a field is declared once: its type, default, bounds and description on the model, and
what only the CRD needs beside it (CEL rules, schema keywords pydantic has no word for).

hack/generate_api.py turns the models into the CRD's OpenAPI schema; the same models
validate the spec that `rloop run` reads and the phase configs the trainer reads. A
cross-field rule written once as a `Rule` with `holds` is checked by the API server (its
CEL expression) and by the models (`holds`), with the same message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, GetCoreSchemaHandler, ValidationInfo, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError, core_schema

# The validation context under which the API's spec is parsed (rloop_operator.api.parse_spec).
API_CONTEXT = "rloop-api"
# Kubernetes value formats, as the CRD's patterns accept them.
CPU = r"^[0-9]+(\.[0-9]+)?m?$"
QUANTITY = r"^[0-9]+(\.[0-9]+)?([KMGTPE]i?)?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
ABSOLUTE_PATH = r"^(/[A-Za-z0-9._-]+)+$"
# A duration as hours, minutes and seconds, e.g. 30m, 1h30m, 90s; 0 means never.
DURATION = r"^(0|([0-9]+h)?([0-9]+m)?([0-9]+s)?)$"


@dataclass(frozen=True)
class Rule:
    """An x-kubernetes-validations entry of a field or a model. `holds`, when given, is the
    same check in Python (on the model instance, or on the field's value); without it the
    rule is the API server's alone (e.g. transition rules that compare with oldSelf)."""

    cel: str
    message: str
    holds: Callable[[Any], bool] | None = None
    optional_old_self: bool = False
    # Checked only where the API's spec is parsed (validation context API_CONTEXT), e.g. URI
    # schemes: the trainer reads any location its store understands.
    api_only: bool = False

    def broken_by(self, value: Any, context: Any) -> bool:
        """Whether `value` (a field's value, or a model) breaks the rule, where it applies."""
        if self.holds is None or (self.api_only and not (context or {}).get(API_CONTEXT)):
            return False
        return not self.holds(value)

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        """As a field's Annotated metadata: `holds` checks the field's value."""
        inner = handler(source)
        if self.holds is None:
            return inner

        def check(value: Any, info: core_schema.ValidationInfo) -> Any:
            if self.broken_by(value, info.context):
                raise ValueError(self.message)
            return value

        return core_schema.with_info_after_validator_function(check, inner)

    def to_crd(self) -> dict[str, Any]:
        rule: dict[str, Any] = {"rule": self.cel, "message": self.message}
        if self.optional_old_self:
            rule["optionalOldSelf"] = True
        return rule


def immutable(message: str) -> Rule:
    """A transition rule: the field keeps its value once the run exists."""
    return Rule("self == oldSelf", message)


def starts_with(field_path: str, schemes: tuple[str, ...], example: str = "") -> Rule:
    """The value starts with one of `schemes` (URI schemes), checked on both sides."""
    cel = " || ".join(f"self.startsWith('{scheme}')" for scheme in schemes)
    listed = ", ".join(schemes[:-1]) + f" or {schemes[-1]}" if len(schemes) > 1 else schemes[0]
    message = f"{field_path} must start with {listed}" + (f", e.g. {example}" if example else "")
    return Rule(cel, message, lambda value: value.startswith(schemes), api_only=True)


@dataclass(frozen=True, eq=False)  # hashed by identity: typing hashes Annotated metadata
class Crd:
    """Schema keywords of a field that the CRD carries and pydantic has no constraint for
    (e.g. format, x-kubernetes-preserve-unknown-fields, list types), and its rules."""

    schema: dict[str, Any] = field(default_factory=dict)
    rules: tuple[Rule, ...] = ()


@dataclass(frozen=True)
class OneOf:
    """A string field whose values come from a registry (e.g. the launchers): the CRD's enum,
    and the same check, with pydantic's own message for a Literal, in Python."""

    values: tuple[str, ...]

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        quoted = [repr(value) for value in self.values]
        expected = " or ".join([", ".join(quoted[:-1]), quoted[-1]] if len(quoted) > 1 else quoted)

        def check(value: str) -> str:
            if value not in self.values:
                raise PydanticCustomError(
                    "literal_error", "Input should be {expected}", {"expected": expected}
                )
            return value

        return core_schema.no_info_after_validator_function(check, handler(source))


class SpecSection(BaseModel):
    """A section of RLoopRun's spec. The API spells its fields in camelCase (aliases); the
    phase configs the trainer reads spell them in snake_case (names). Each side parses
    with exactly one spelling (model_validate(..., by_alias=..., by_name=...))."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=True,
    )
    # Model-level rules: CEL on the object, and the same check in Python where `holds`.
    crd_rules: ClassVar[tuple[Rule, ...]] = ()

    @model_validator(mode="after")
    def _rules_hold(self, info: ValidationInfo) -> SpecSection:
        for rule in type(self).crd_rules:
            if rule.broken_by(self, info.context):
                raise ValueError(rule.message)
        return self


def field_rules(metadata: list[Any]) -> tuple[Rule, ...]:
    """The rules a field declares in its Annotated metadata."""
    found: list[Rule] = []
    for item in metadata:
        if isinstance(item, Rule):
            found.append(item)
        elif isinstance(item, Crd):
            found.extend(item.rules)
    return tuple(found)
