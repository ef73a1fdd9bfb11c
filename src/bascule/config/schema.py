"""The JSON Schema of the config file, for editors that validate and complete YAML."""

from typing import Any

from bascule.config.model import Config

__all__ = ["json_schema"]

_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def json_schema() -> dict[str, Any]:
    """The schema of what YAML accepts (aliases, durations and sizes as strings or numbers)."""
    schema = Config.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": _DIALECT, "title": "Bascule configuration", **schema}
