"""The wheel's build (hatch_build.py) when the request path cannot or must not be compiled:
a pure-Python wheel, said so, or a refusal when compiling is required."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).parents[2]


def build_wheel(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`pip wheel` of this checkout (a copy of it: the build leaves nothing in the tree),
    checking that the build hook leaves no work directory behind either."""
    workdirs = Path(tempfile.gettempdir()).glob
    before = set(workdirs("bascule-mypyc-*"))
    tree = tmp_path / "tree"
    shutil.copytree(
        REPO,
        tree,
        ignore=shutil.ignore_patterns(".git", ".venv", "build", "*_cache", ".hypothesis", "tests"),
    )
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--verbose", "--no-deps",
         "--disable-pip-version-check", "--wheel-dir", str(tmp_path / "dist"), str(tree)],
        capture_output=True,
        text=True,
        env={**os.environ, "BASCULE_PURE_PYTHON": "", "BASCULE_REQUIRE_COMPILED": "", **env},
        timeout=300,
    )  # fmt: skip
    assert set(workdirs("bascule-mypyc-*")) == before
    return built


def wheel_files(tmp_path: Path) -> tuple[str, list[str]]:
    (wheel,) = (tmp_path / "dist").glob("bascule-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return wheel.name, archive.namelist()


def test_without_a_c_compiler_the_wheel_is_pure_python_and_says_so(tmp_path: Path) -> None:
    built = build_wheel(tmp_path, CC="/bin/false")
    assert built.returncode == 0, built.stderr
    assert "mypyc could not compile the hot path" in built.stdout + built.stderr
    name, files = wheel_files(tmp_path)
    assert name.endswith("-py3-none-any.whl")
    assert "bascule/proxy/downstream.py" in files
    assert not [f for f in files if f.endswith(".so")]


def test_a_required_compilation_that_fails_fails_the_build(tmp_path: Path) -> None:
    built = build_wheel(tmp_path, CC="/bin/false", BASCULE_REQUIRE_COMPILED="1")
    assert built.returncode != 0
    assert "mypyc could not compile the hot path" in built.stdout + built.stderr
    assert not list(tmp_path.glob("dist/*.whl"))


def test_bascule_pure_python_asks_for_a_pure_wheel(tmp_path: Path) -> None:
    built = build_wheel(tmp_path, BASCULE_PURE_PYTHON="1")
    assert built.returncode == 0, built.stderr
    name, files = wheel_files(tmp_path)
    assert name.endswith("-py3-none-any.whl")
    assert not [f for f in files if f.endswith(".so")]
