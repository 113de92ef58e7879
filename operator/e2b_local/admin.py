"""What the /admin/* endpoints share: a JSON object body, and a 400 that says what is wrong."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import JSONResponse


def json_object(raw: bytes, example: str) -> dict[str, Any]:
    """The body as a JSON object; ValueError (showing ``example``) otherwise."""
    try:
        body = json.loads(raw)
    except ValueError as e:
        raise ValueError(f"the body is not JSON: {e}") from e
    if not isinstance(body, dict):
        raise ValueError(f"the body must be a JSON object: {example}")
    return body


def bad_request(e: ValueError) -> JSONResponse:
    return JSONResponse({"code": 400, "message": str(e)}, status_code=400)
