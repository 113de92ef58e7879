"""CEL cross-field rules, declared once next to the model they guard.

The same `Rule` is written into the CRD as `x-kubernetes-validations` (enforced by the
kube-apiserver) and evaluated in Python with the `cel` package by `validation.problems()`.
"""

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, TypeVar

from pydantic import BaseModel
from pydantic.json_schema import GetJsonSchemaHandler, JsonSchemaValue
from pydantic_core import CoreSchema

Reason = Literal["FieldValueInvalid", "FieldValueForbidden", "FieldValueRequired"]
M = TypeVar("M", bound=type[BaseModel])

KEY = "x-kubernetes-validations"


@dataclass(frozen=True)
class Rule:
    """One CEL rule: `self` is the object the rule is attached to."""

    rule: str
    message: str
    field_path: str | None = None
    reason: Reason | None = None

    def schema(self) -> dict[str, str]:
        """The `x-kubernetes-validations` item."""
        out = {"rule": self.rule, "message": self.message}
        if self.field_path:
            out["fieldPath"] = self.field_path
        if self.reason:
            out["reason"] = self.reason
        return out

    @property
    def transition(self) -> bool:
        """A transition rule (uses oldSelf): the apiserver checks it on updates only."""
        return "oldSelf" in self.rule

    def holds(self, value: Any) -> bool:
        """Evaluate against a wire-form value; an evaluation error counts as a failure.

        Transition rules hold for a new object (validation here is of a create)."""
        if self.transition:
            return True
        try:
            return _compile(self.rule).execute({"self": value}) is True
        except Exception:  # the apiserver rejects on evaluation errors too
            return False


@lru_cache(maxsize=256)
def _compile(text: str) -> Any:
    import cel  # only validation needs it; the operator process stays ~10 MB smaller

    return cel.compile(text)


def from_schema(item: dict[str, Any]) -> Rule:
    """Rebuild a Rule from its `x-kubernetes-validations` item."""
    return Rule(item["rule"], item["message"], item.get("fieldPath"), item.get("reason"))


def validations(*rules: Rule) -> Callable[[M], M]:
    """Class decorator attaching CEL rules to a model's JSON schema node."""

    def decorate(cls: M) -> M:
        def hook(
            c: type[BaseModel], core: CoreSchema, handler: GetJsonSchemaHandler
        ) -> JsonSchemaValue:
            schema = handler(core)
            target = handler.resolve_ref_schema(schema)
            if c is cls:
                target[KEY] = [r.schema() for r in rules]
            return schema

        cls.__get_pydantic_json_schema__ = classmethod(hook)  # type: ignore[assignment]
        return cls

    return decorate
