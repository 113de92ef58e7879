"""The seed's seven templates: main scripts as package files, built through TemplateBuilder,
rendered as E2BTemplate manifests (`python -m e2b_operator.toolkit.collection OUTDIR`)."""

from .catalog import TEMPLATES, script
from .render import render, write

__all__ = ["TEMPLATES", "render", "script", "write"]
