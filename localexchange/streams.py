"""Requests on a market-stream connection, answered as Binance's websocket market streams do.

`{"method": "SUBSCRIBE" | "UNSUBSCRIBE", "params": [...], "id": n}` answers `{"result": null,
"id": n}`; `LIST_SUBSCRIPTIONS` the streams subscribed. Errors as Binance's: 0 unknown
property, 1 invalid value type, 2 invalid request (an unknown method, more than
MAX_STREAMS streams on one connection), 3 invalid JSON.
"""

from __future__ import annotations

import json
from typing import Any

MAX_STREAMS = 1024  # Binance: a single connection listens to at most 1024 streams
METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS")
UNKNOWN_PROPERTY, INVALID_VALUE_TYPE, INVALID_REQUEST, INVALID_JSON = 0, 1, 2, 3


def stream_request(subscribed: set[str], text: str) -> dict[str, Any]:
    """Apply one request to the connection's `subscribed` streams; the answer to send back."""
    try:
        body = json.loads(text)
    except ValueError:
        return _error(INVALID_JSON, f"Invalid JSON: {text[:100]!r}", None)
    if not isinstance(body, dict):
        return _error(INVALID_JSON, "Invalid JSON: the request must be an object", None)
    request_id = body.get("id")
    unknown = sorted(set(body) - {"method", "params", "id"})
    if unknown:
        return _error(UNKNOWN_PROPERTY, f"Unknown property '{unknown[0]}'", request_id)
    method = body.get("method")
    if method not in METHODS:
        return _error(
            INVALID_REQUEST,
            f"Invalid request: method must be one of {', '.join(METHODS)}",
            request_id,
        )
    if method == "LIST_SUBSCRIPTIONS":
        return {"result": sorted(subscribed), "id": request_id}
    params = body.get("params")
    if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
        return _error(INVALID_VALUE_TYPE, "Invalid value type: params must be strings", request_id)
    streams = set(params)
    if method == "SUBSCRIBE":
        if len(subscribed | streams) > MAX_STREAMS:
            return _error(
                INVALID_REQUEST,
                f"Invalid request: a connection takes at most {MAX_STREAMS} streams",
                request_id,
            )
        subscribed |= streams
    else:
        subscribed -= streams
    return {"result": None, "id": request_id}


def _error(code: int, message: str, request_id: Any) -> dict[str, Any]:
    return {"error": {"code": code, "msg": message}, "id": request_id}
