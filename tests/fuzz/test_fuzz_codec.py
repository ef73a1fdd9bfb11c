"""The codec's fuzz target (fuzz_codec.py) run for a bounded time from the seed corpus:
BASCULE_FUZZ_SECONDS seconds, by default 60 in CI (CI=true) and 10 elsewhere."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris")

HERE = Path(__file__).parent
SOURCES = HERE.parents[1] / "src"
SECONDS = int(
    os.environ.get("BASCULE_FUZZ_SECONDS") or (60 if os.environ.get("CI") == "true" else 10)
)


@pytest.mark.timeout(SECONDS + 120)
def test_the_codec_survives_fuzzing(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"  # the fuzzer adds to it: the repository's seeds stay as they are
    shutil.copytree(HERE / "corpus", corpus)
    # The sources beside this test, not mypyc's build (scripts/test's PYTHONPATH): atheris sees
    # no coverage in a compiled module, and the two run the same code.
    env = {**os.environ, "PYTHONPATH": str(SOURCES)}
    command = [
        sys.executable,
        str(HERE / "fuzz_codec.py"),
        str(corpus),
        f"-max_total_time={SECONDS}",
        "-timeout=10",  # one input taking 10 s is a hang
        "-rss_limit_mb=2048",
        f"-artifact_prefix={tmp_path}/",
        "-print_final_stats=1",
    ]
    done = subprocess.run(command, env=env, capture_output=True, timeout=SECONDS + 90, check=False)
    if done.returncode != 0:
        output = (done.stdout + done.stderr).decode(errors="replace")
        crashes = "".join(
            f"\n{found.name}: {found.read_bytes()!r}"
            for found in sorted(tmp_path.glob("*-*"))
            if found.is_file()
        )
        pytest.fail(
            f"the fuzzer exited {done.returncode}; the end of its output:\n"
            f"{output[-6000:]}\ninputs it saved:{crashes or ' none'}"
        )
