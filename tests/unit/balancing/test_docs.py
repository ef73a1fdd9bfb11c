"""docs/balancing.md shows configs that load, and the seed's tiers as the tests pin them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bascule.config import load_text

DOC = Path(__file__).parents[3] / "docs" / "balancing.md"


def upstream_blocks() -> list[str]:
    blocks = re.findall(r"^```yaml\n(.*?)^```$", DOC.read_text(), flags=re.DOTALL | re.MULTILINE)
    return [block for block in blocks if block.startswith("upstreams:")]


def test_the_doc_has_an_example_for_each_kind_of_upstream():
    assert len(upstream_blocks()) >= 4


@pytest.mark.parametrize("block", upstream_blocks())
def test_every_upstream_example_in_the_doc_loads_without_warnings(block):
    names = re.findall(r"^  ([A-Za-z0-9_.-]+):$", block, flags=re.MULTILINE)
    routes = "".join(
        f"  - {{name: r{i}, match: {{path: /r{i}/}}, upstream: {name}}}\n"
        for i, name in enumerate(names)
    )
    text = 'listeners: [{name: web, bind: "127.0.0.1:8080"}]\nroutes:\n' + routes + block
    assert load_text(text, "balancing.md").warnings == []


def test_the_seed_example_is_documented_as_tested():
    text = DOC.read_text()
    assert "A while its load is under 50, else B while its load is under 75, else\nC" in text
    assert '{address: "10.0.0.1:8080", priority: 0, max_load: 50}   # A' in text
    assert '{address: "10.0.0.2:8080", priority: 1, max_load: 75}   # B' in text
    assert '{address: "10.0.0.3:8080", priority: 2}                 # C' in text
