"""pyproject.toml declares nothing unused: every runtime dependency is imported by the package, or is needed
by one that is (named here with the reason)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULE = {"open_clip_torch": "open_clip", "pyyaml": "yaml", "pillow": "PIL", "markdown-it-py": "markdown_it"}
INDIRECT = {
    "torchvision": "open_clip_torch's image transforms import it; pinned beside torch so pip does not pull "
                   "another multi-GB build",
    "torch-fidelity": "torchmetrics' FrechetInceptionDistance (quality.py) extracts its Inception features with it",
}


def test_every_runtime_dependency_is_used():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = [re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0].lower() for d in deps]
    source = "\n".join(p.read_text() for p in (ROOT / "memora_bench").rglob("*.py"))
    unused = []
    for name in names:
        if name in INDIRECT:
            continue
        module = MODULE.get(name, name.replace("-", "_"))
        if not re.search(rf"^\s*(import|from) {re.escape(module)}(\.|\s|$)", source, re.M):
            unused.append(name)
    assert not unused, f"declared in pyproject.toml but never imported by memora_bench: {unused}"
    assert set(INDIRECT) <= set(names), "an indirect dependency listed here is no longer declared"
