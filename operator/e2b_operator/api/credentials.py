"""Per-object E2B credentials: a Secret in the object's own namespace naming an E2B account."""

from pydantic import Field

from .base import K8sModel
from .meta import DNS_SUBDOMAIN

SECRET_KEY = r"^[-._a-zA-Z0-9]+$"


class CredentialsSecretRef(K8sModel):
    """A Secret in this object's namespace with an E2B API key, and optionally the E2B
    endpoint; keys that are absent fall back to the operator's own endpoint settings."""

    name: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)
    """Name of the Secret (in the same namespace; never read from another one)."""
    api_key_key: str = Field(default="apiKey", min_length=1, max_length=253, pattern=SECRET_KEY)
    """Key holding the E2B API key (required in the Secret)."""
    api_url_key: str = Field(default="apiUrl", min_length=1, max_length=253, pattern=SECRET_KEY)
    """Key holding the E2B API URL, e.g. https://api.e2b.app (optional in the Secret)."""
    sandbox_url_key: str = Field(
        default="sandboxUrl", min_length=1, max_length=253, pattern=SECRET_KEY
    )
    """Key holding one URL for every sandbox's envd, as E2B_SANDBOX_URL (optional)."""
    domain_key: str = Field(default="domain", min_length=1, max_length=253, pattern=SECRET_KEY)
    """Key holding the E2B domain, e.g. e2b.app, as E2B_DOMAIN (optional)."""


class Credentials(K8sModel):
    """The E2B account (team) this object's templates and sandboxes live in. Without it the
    operator's own key is used. An E2BDeployment or E2BExecution must name the same
    credentials as its E2BTemplate (templates are built in one E2B team); a changed Secret
    is used from the next E2B call, without a restart."""

    secret_ref: CredentialsSecretRef
    """The Secret holding the API key (and optionally the endpoint)."""
