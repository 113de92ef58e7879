"""The e2b.dev/v1alpha1 API: pydantic models (the source of truth), CRD generation, validation.

spec = E2BDeploymentSpec.from_wire(body["spec"])      # kopf Body/Spec mappings are fine
patch.status.update(E2BDeploymentStatus(...).wire())  # camelCase, no nulls, RFC 3339 times
for line in problems("E2BTemplate", obj): ...         # what the apiserver would reject
"""

from .base import K8sModel, plain
from .crdgen import (
    API_VERSION,
    DEPLOYMENTS_PLURAL,
    EXECUTIONS_PLURAL,
    GROUP,
    KINDS,
    TEMPLATES_PLURAL,
    VERSION,
    crd,
    kind,
    openapi_schema,
)
from .credentials import Credentials, CredentialsSecretRef
from .deployment import (
    E2BDeployment,
    E2BDeploymentSpec,
    E2BDeploymentStatus,
    HealthCheck,
    InstanceStatus,
    RollingUpdate,
    SandboxStatus,
    Strategy,
    ready_text,
    selector_for,
)
from .execution import E2BExecution, E2BExecutionSpec, E2BExecutionStatus
from .meta import Condition, EnvVar, EnvVarSource, ObjectRef, SecretKeySelector, TemplateEnvVar
from .rules import Rule
from .template import (
    ClaudeCodeConfig,
    ClaudeFlowConfig,
    E2BTemplate,
    E2BTemplateSpec,
    E2BTemplateStatus,
    Hooks,
    Requirements,
    Runtime,
    TemplateFiles,
    TemplateType,
    TradingAgentConfig,
)
from .validation import InvalidObject, problems, spec_problems, validate

__all__ = [
    "API_VERSION",
    "DEPLOYMENTS_PLURAL",
    "EXECUTIONS_PLURAL",
    "GROUP",
    "KINDS",
    "TEMPLATES_PLURAL",
    "VERSION",
    "ClaudeCodeConfig",
    "ClaudeFlowConfig",
    "Condition",
    "Credentials",
    "CredentialsSecretRef",
    "E2BDeployment",
    "E2BDeploymentSpec",
    "E2BDeploymentStatus",
    "E2BExecution",
    "E2BExecutionSpec",
    "E2BExecutionStatus",
    "E2BTemplate",
    "E2BTemplateSpec",
    "E2BTemplateStatus",
    "EnvVar",
    "EnvVarSource",
    "HealthCheck",
    "Hooks",
    "InstanceStatus",
    "InvalidObject",
    "K8sModel",
    "ObjectRef",
    "Requirements",
    "RollingUpdate",
    "Rule",
    "Runtime",
    "SandboxStatus",
    "SecretKeySelector",
    "Strategy",
    "TemplateEnvVar",
    "TemplateFiles",
    "TemplateType",
    "TradingAgentConfig",
    "crd",
    "kind",
    "openapi_schema",
    "plain",
    "problems",
    "ready_text",
    "selector_for",
    "spec_problems",
    "validate",
]
