"""The seed's seven templates: main scripts as package files, built through TemplateBuilder,
rendered as E2BTemplate manifests (`python -m e2b_operator.toolkit.collection OUTDIR`)."""

from ..mainscripts import script
from .catalog import TEMPLATES
from .render import render, write

__all__ = ["TEMPLATES", "render", "script", "write"]
