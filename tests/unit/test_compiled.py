"""The request path a wheel ships is compiled by mypyc (hatch_build.py); scripts/test runs
the suite against that build with BASCULE_EXPECT_COMPILED=1."""

from __future__ import annotations

import importlib
import os
import sysconfig
import tomllib
from pathlib import Path

import pytest

import bascule
from bascule.runtime.server import request_path_build

PYPROJECT = Path(__file__).parents[2] / "pyproject.toml"
EXTENSION = sysconfig.get_config_var("EXT_SUFFIX")
COMPILED = tomllib.loads(PYPROJECT.read_text())["tool"]["hatch"]["build"]["targets"]["wheel"][
    "hooks"
]["custom"]["modules"]


@pytest.mark.skipif(
    not os.environ.get("BASCULE_EXPECT_COMPILED"), reason="runs against the wheel's build"
)
@pytest.mark.parametrize("module", COMPILED)
def test_each_listed_module_runs_compiled(module: str) -> None:
    loaded = importlib.import_module(f"bascule.{module}")
    assert loaded.__file__ is not None
    assert loaded.__file__.endswith(EXTENSION)
    assert request_path_build() == "compiled (mypyc)"


def test_the_listed_modules_exist_and_the_build_is_named() -> None:
    package = Path(bascule.__file__).parent
    for module in COMPILED:
        assert (package / (module.replace(".", "/") + ".py")).exists(), module
    compiled = (importlib.import_module("bascule.http.codec").__file__ or "").endswith(EXTENSION)
    assert request_path_build() == ("compiled (mypyc)" if compiled else "pure Python")
