"""Wheel builds compile Bascule's hot path with mypyc.

The modules listed under `[tool.hatch.build.targets.wheel.hooks.custom] modules` in
pyproject.toml (the request path: codec and heads, the two connections, routing, the
upstream's state and pool, the access log and metrics) are plain typed Python; mypyc turns
them into C extensions that the wheel carries beside their sources, where Python imports
them first: about 40 % fewer instructions per proxied request (docs/benchmarks.md).

Editable installs stay pure Python, so an edited module runs as written. Without a C
compiler the wheel is built pure too, with a warning; BASCULE_PURE_PYTHON=1 asks for that,
BASCULE_REQUIRE_COMPILED=1 makes a failed compilation an error instead (scripts/test).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class MypycBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        self._workdir: Path | None = None
        if version == "editable" or os.environ.get("BASCULE_PURE_PYTHON"):
            return
        modules: list[str] = self.config["modules"]
        workdir = self._workdir = Path(tempfile.mkdtemp(prefix="bascule-mypyc-"))
        shutil.copytree(
            Path(self.root, "src", "bascule"),
            workdir / "bascule",
            ignore=shutil.ignore_patterns("__pycache__", "*.so"),
        )
        sources = ["bascule/" + module.replace(".", "/") + ".py" for module in modules]
        self.app.display_info(f"mypyc: compiling {len(sources)} modules of the hot path")
        result = subprocess.run(
            [sys.executable, "-m", "mypyc", "--ignore-missing-imports", *sources],
            cwd=workdir,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            shutil.rmtree(workdir, ignore_errors=True)
            self._workdir = None
            message = f"mypyc could not compile the hot path:\n{result.stdout}{result.stderr}"
            if os.environ.get("BASCULE_REQUIRE_COMPILED"):
                raise RuntimeError(message)
            self.app.display_warning(message + "\nbuilding a pure-Python wheel instead")
            return
        suffix = sysconfig.get_config_var("EXT_SUFFIX")
        for built in sorted(workdir.rglob(f"*{suffix}")):
            relative = built.relative_to(workdir)
            if relative.parts[0] != "build":
                build_data["force_include"][str(built)] = str(relative)
        build_data["pure_python"] = False
        build_data["infer_tag"] = True

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
