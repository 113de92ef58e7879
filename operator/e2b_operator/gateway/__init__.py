"""The seed's REST API over the Kubernetes API: `template_router` and the gateway server.

from fastapi import FastAPI
from e2b_operator.gateway import template_router

app = FastAPI()
app.include_router(template_router)   # /e2b/templates/*, Kubernetes bearer tokens
"""

from .router import template_router

__all__ = ["template_router"]
