"""The OpenAPI document of the admin API, served at /api/openapi.json.

Written by hand next to the handlers it describes; the tests check every response the
API gives against the schema here, so the two cannot drift apart unnoticed.
"""

from __future__ import annotations

from typing import Any

from bascule import __version__

__all__ = ["OPENAPI"]


def _object(properties: dict[str, Any], *, required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
    }


_NUMBER_OR_NULL = {"type": ["number", "null"]}
_ERROR = _object({"error": {"type": "string"}})
_CONTROL = _object(
    {
        "hold": {"enum": ["draining", "operator", None]},
        "weight": {"type": ["integer", "null"]},
    }
)
_TARGET = _object(
    {
        "name": {"type": "string"},
        "state": {"enum": ["up", "draining", "disabled", "down", "ejected"]},
        "held_by": {"type": "array", "items": {"type": "string"}},
        "weight": {"type": "integer"},
        "in_flight": {"type": "integer"},
        "requests_total": {"type": "integer"},
        "requests_per_second": {"type": "number"},
        "p50_ms": _NUMBER_OR_NULL,
        "p99_ms": _NUMBER_OR_NULL,
        "error_rate": {"type": "number"},
        "health": {
            "oneOf": [
                {"type": "null"},
                _object(
                    {
                        "status": {"enum": ["unknown", "up", "down"]},
                        "checks": {"type": "integer"},
                        "passed_in_a_row": {"type": "integer"},
                    }
                ),
            ]
        },
        "override": {"oneOf": [{"type": "null"}, _CONTROL]},
    }
)
_STATUS = _object(
    {
        "version": {"type": "string"},
        "pid": {"type": ["integer", "null"]},
        "started": _NUMBER_OR_NULL,
        "uptime_seconds": _NUMBER_OR_NULL,
        "config": {
            "oneOf": [
                {"type": "null"},
                _object({"file": {"type": "string"}, "sha256": {"type": ["string", "null"]}}),
            ]
        },
        "workers": _object(
            {"configured": {"type": ["integer", "null"]}, "reporting": {"type": "integer"}}
        ),
        "reloads": _object({"ok": {"type": "integer"}, "failed": {"type": "integer"}}),
        "last_reload": {
            "oneOf": [
                {"type": "null"},
                _object(
                    {
                        "at": {"type": "number"},
                        "ok": {"type": "boolean"},
                        "error": {"type": ["string", "null"]},
                    }
                ),
            ]
        },
        "overrides": {"type": "object", "additionalProperties": _CONTROL},
    }
)


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_DENIED = {"401": _json(_ERROR, "Missing or wrong bearer token (admin.token_file).")}
_TARGET_PARAMETERS = [
    {"name": "upstream", "in": "path", "required": True, "schema": {"type": "string"}},
    {
        "name": "target",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": "As /api/upstreams names it, e.g. 10.0.0.2:8080.",
    },
]
_CONTROLLED = {
    "200": _json(
        _object(
            {
                "upstream": {"type": "string"},
                "target": {"type": "string"},
                **_CONTROL["properties"],
            }
        ),
        "The target's runtime controls now, applied in every worker within 0.2 s.",
    ),
    "404": _json(_ERROR, "No such upstream or target."),
    **_DENIED,
}


def _control(summary: str) -> dict[str, Any]:
    return {
        "post": {"summary": summary, "parameters": _TARGET_PARAMETERS, "responses": _CONTROLLED}
    }


OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Bascule admin API",
        "version": __version__,
        "description": "The node's metrics, status and runtime controls (docs/operations.md).",
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    },
    "security": [{}, {"bearer": []}],
    "paths": {
        "/metrics": {
            "get": {
                "summary": "The node's series in the Prometheus text format.",
                "responses": {
                    "200": {
                        "description": "Prometheus exposition format 0.0.4.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **_DENIED,
                },
            }
        },
        "/api/status": {
            "get": {
                "summary": "Version, uptime, config file, workers, reloads, runtime overrides.",
                "responses": {"200": _json(_STATUS, "The node."), **_DENIED},
            }
        },
        "/api/upstreams": {
            "get": {
                "summary": "Every target with its state and its traffic over the last 10 s.",
                "responses": {
                    "200": _json(
                        _object(
                            {
                                "window_seconds": {"type": "number"},
                                "upstreams": {
                                    "type": "array",
                                    "items": _object(
                                        {
                                            "name": {"type": "string"},
                                            "targets": {"type": "array", "items": _TARGET},
                                        }
                                    ),
                                },
                            }
                        ),
                        "The upstreams of the running config.",
                    ),
                    **_DENIED,
                },
            }
        },
        "/api/routes": {
            "get": {
                "summary": "The routes in the order they are tried, with requests answered.",
                "responses": {
                    "200": _json(
                        _object(
                            {
                                "routes": {
                                    "type": "array",
                                    "items": _object(
                                        {
                                            "name": {"type": "string"},
                                            "requests_total": {"type": "integer"},
                                        }
                                    ),
                                }
                            }
                        ),
                        "Each route as its config block, defaults omitted.",
                    ),
                    **_DENIED,
                },
            }
        },
        "/api/reload": {
            "post": {
                "summary": "Check the config file, then reload it.",
                "responses": {
                    "202": _json(
                        _object(
                            {
                                "reload": {"const": "started"},
                                "file": {"type": "string"},
                                "see": {"type": "string"},
                            }
                        ),
                        "Valid: the reload started; /api/status says how it went.",
                    ),
                    "400": _json(
                        _object(
                            {"error": {"type": "string"}, "problems": {"type": "string"}},
                            required=["error"],
                        ),
                        "Not valid: nothing changed.",
                    ),
                    **_DENIED,
                },
            }
        },
        "/api/cache/purge": {
            "post": {
                "summary": "Remove stored responses whose cache key starts with a prefix.",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": _object({"prefix": {"type": "string"}})}
                    },
                },
                "responses": {
                    "200": _json(
                        _object(
                            {
                                "prefix": {"type": "string"},
                                "keys": {"type": "integer"},
                                "workers": _object(
                                    {"done": {"type": "integer"}, "reporting": {"type": "integer"}}
                                ),
                            }
                        ),
                        "Once every worker purged (or after 5 s).",
                    ),
                    "400": _json(_ERROR, "Not a JSON body with a prefix."),
                    **_DENIED,
                },
            }
        },
        "/api/upstreams/{upstream}/targets/{target}/drain": _control(
            "No new requests or connections to the target; in-flight ones finish."
        ),
        "/api/upstreams/{upstream}/targets/{target}/disable": _control(
            "Take the target out of service (an operator's hold)."
        ),
        "/api/upstreams/{upstream}/targets/{target}/enable": _control("End a drain or a disable."),
        "/api/upstreams/{upstream}/targets/{target}/weight": {
            "put": {
                "summary": "Set the target's weight until the next reload.",
                "parameters": _TARGET_PARAMETERS,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": _object(
                                {"weight": {"type": "integer", "minimum": 1, "maximum": 1000}}
                            )
                        }
                    },
                },
                "responses": {**_CONTROLLED, "400": _json(_ERROR, "Not a weight from 1 to 1000.")},
            }
        },
        "/api/openapi.json": {
            "get": {
                "summary": "This document.",
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1."), **_DENIED},
            }
        },
    },
}
