import json

from bascule.config import json_schema


def test_the_schema_is_json_and_describes_the_three_sections() -> None:
    schema = json.loads(json.dumps(json_schema()))

    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["type"] == "object"
    assert {"listeners", "routes", "upstreams"} <= set(schema["properties"])
    assert schema["required"] == ["listeners"]
    assert schema["additionalProperties"] is False


def test_durations_and_sizes_accept_strings_or_numbers_in_the_schema() -> None:
    definitions = json_schema()["$defs"]

    header = definitions["ListenerTimeouts"]["properties"]["header"]
    assert {branch["type"] for branch in header["anyOf"]} == {"number", "string"}
    assert "10s" in header["anyOf"][1]["description"]
    assert header["description"] == "The whole request head must arrive within this."
    body = definitions["ListenerLimits"]["properties"]["max_body_bytes"]
    assert {branch["type"] for branch in body["anyOf"]} == {"integer", "string"}
    assert "16KiB" in body["anyOf"][1]["description"]


def test_the_schema_uses_yaml_spellings() -> None:
    definitions = json_schema()["$defs"]

    assert "with" in definitions["RegexReplace"]["properties"]
    assert definitions["Target"]["properties"]["address"]["type"] == "string"
    assert definitions["Admin"]["properties"]["bind"]["default"] == "127.0.0.1:9090"
