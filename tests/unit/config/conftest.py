"""Helpers for config tests: load YAML from a string and get the problems back."""

from collections.abc import Callable
from textwrap import dedent

import pytest

from bascule.config import ConfigError, LoadedConfig, Problem, load_text

FILENAME = "bascule.yaml"


def _problems(text: str) -> list[Problem]:
    with pytest.raises(ConfigError) as raised:
        load_text(dedent(text), FILENAME)
    return raised.value.problems


def _loaded(text: str) -> LoadedConfig:
    return load_text(dedent(text), FILENAME)


@pytest.fixture
def problems() -> Callable[[str], list[Problem]]:
    """Load YAML that must fail; returns every problem reported."""
    return _problems


@pytest.fixture
def loaded() -> Callable[[str], LoadedConfig]:
    """Load YAML that must succeed."""
    return _loaded
