"""docs/configuration.md shows real output: its examples load and its report is verbatim."""

import re
from pathlib import Path

import pytest

from bascule.config import ConfigError, load_text

DOC = Path(__file__).parents[3] / "docs" / "configuration.md"


def _section(title: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def _blocks(section: str, language: str) -> list[str]:
    """The bodies of the fenced blocks tagged `language` ("" for untagged), in order."""
    blocks = re.findall(r"^```(\w*)\n(.*?)^```$", section, flags=re.DOTALL | re.MULTILINE)
    return [body for tag, body in blocks if tag == language]


def test_the_complete_example_loads_without_warnings() -> None:
    (example,) = _blocks(_section("Complete example"), "yaml")
    assert load_text(example, "bascule.yaml").warnings == []


def test_the_error_report_in_the_docs_is_what_bascule_prints() -> None:
    section = _section("Errors and warnings")
    config = _blocks(section, "yaml")[0]
    report = _blocks(section, "")[0]

    with pytest.raises(ConfigError) as raised:
        load_text(config, "bascule.yaml")

    assert str(raised.value) == report.rstrip("\n")
