"""CustomResourceDefinitions generated from the API models.

A new kind is a model, spec and status plus one `Kind` entry in KINDS.
"""

from dataclasses import dataclass, field
from functools import cache
from typing import Any

from pydantic import BaseModel

from .deployment import E2BDeployment, E2BDeploymentSpec, E2BDeploymentStatus
from .execution import E2BExecution, E2BExecutionSpec, E2BExecutionStatus
from .schema import structural
from .template import E2BTemplate, E2BTemplateSpec, E2BTemplateStatus

GROUP = "e2b.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"


def column(name: str, path: str, type_: str = "string", priority: int = 0) -> dict[str, Any]:
    """An additionalPrinterColumns entry."""
    col: dict[str, Any] = {"name": name, "type": type_, "jsonPath": path}
    if priority:
        col["priority"] = priority
    return col


AGE = column("Age", ".metadata.creationTimestamp", "date")
READY_REASON = '.status.conditions[?(@.type=="Ready")].reason'


@dataclass(frozen=True)
class Kind:
    """Registration of one namespaced kind."""

    kind: str
    plural: str
    short_names: list[str]
    model: type[BaseModel]
    spec: type[BaseModel]
    status: type[BaseModel]
    description: str
    columns: list[dict[str, Any]]
    scale: bool = False
    unobserved: bool = False
    """status defaults to {observedGeneration: 0}: the apiserver fills it in on every read until
    the operator writes, so kstatus (Flux `wait: true`) and the Argo CD check read a new
    object as in progress instead of as a custom resource without status (Current)."""
    categories: list[str] = field(default_factory=lambda: ["e2b"])

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"

    @property
    def filename(self) -> str:
        return f"{GROUP}_{self.plural}.yaml"


KINDS: tuple[Kind, ...] = (
    Kind(
        kind="E2BTemplate",
        plural="e2btemplates",
        short_names=["e2bt"],
        model=E2BTemplate,
        spec=E2BTemplateSpec,
        status=E2BTemplateStatus,
        description="E2BTemplate is a reusable E2B sandbox template built by the operator.",
        columns=[
            column("Type", ".spec.type"),
            column("Runtime", ".spec.requirements.runtime"),
            column("Phase", ".status.phase"),
            column("Template-ID", ".status.templateID", priority=1),
            column("Status", READY_REASON, priority=1),
            AGE,
        ],
        unobserved=True,
    ),
    Kind(
        kind="E2BDeployment",
        plural="e2bdeployments",
        short_names=["e2bd"],
        model=E2BDeployment,
        spec=E2BDeploymentSpec,
        status=E2BDeploymentStatus,
        description="E2BDeployment runs a set of E2B sandboxes from one E2BTemplate.",
        columns=[
            column("Ready", ".status.ready"),
            column("Template", ".spec.templateRef.name"),
            column("Status", READY_REASON),
            column("Desired", ".spec.replicas", "integer", priority=1),
            column("Available", ".status.availableReplicas", "integer", priority=1),
            column("Paused", ".spec.paused", "boolean", priority=1),
            AGE,
        ],
        scale=True,
        unobserved=True,
    ),
    Kind(
        kind="E2BExecution",
        plural="e2bexecutions",
        short_names=["e2bx"],
        model=E2BExecution,
        spec=E2BExecutionSpec,
        status=E2BExecutionStatus,
        description="E2BExecution runs a template's main script once with a JSON input.",
        columns=[
            column("Phase", ".status.phase"),
            column("Target", ".status.target"),
            column("Exit", ".status.exitCode", "integer"),
            column("Duration", ".status.durationSeconds", "number", priority=1),
            column("Sandbox", ".status.sandboxID", priority=1),
            column("Reason", ".status.reason", priority=1),
            AGE,
        ],
    ),
)

TEMPLATES_PLURAL, DEPLOYMENTS_PLURAL, EXECUTIONS_PLURAL = (k.plural for k in KINDS)
"""The resource names of E2BTemplate, E2BDeployment and E2BExecution (for API calls)."""


def kind(name: str) -> Kind:
    """The registration for a kind name, e.g. E2BTemplate."""
    for k in KINDS:
        if k.kind == name:
            return k
    raise KeyError(f"unknown kind {name!r}; known: {[k.kind for k in KINDS]}")


@cache
def openapi_schema(name: str) -> dict[str, Any]:
    """The openAPIV3Schema of a kind (do not mutate; it is cached)."""
    k = kind(name)
    status = structural(k.status, keep_defaults=False)
    if k.unobserved:
        status["default"] = {"observedGeneration": 0}
    return {
        "description": k.description,
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string", "description": "Versioned schema of this object."},
            "kind": {"type": "string", "description": "REST resource this object represents."},
            "metadata": {"type": "object"},
            "spec": structural(k.spec),
            "status": status,
        },
        "required": ["spec"],
    }


def crd(name: str) -> dict[str, Any]:
    """The CustomResourceDefinition of a kind."""
    k = kind(name)
    subresources: dict[str, Any] = {"status": {}}
    if k.scale:
        subresources["scale"] = {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": k.crd_name},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": k.kind,
                "listKind": f"{k.kind}List",
                "plural": k.plural,
                "singular": k.singular,
                "shortNames": k.short_names,
                "categories": k.categories,
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": openapi_schema(name)},
                    "subresources": subresources,
                    "additionalPrinterColumns": k.columns,
                }
            ],
        },
    }
