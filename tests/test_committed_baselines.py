"""The committed baselines and their results agree with each other and with docs/baselines.md."""

import json
from pathlib import Path

import pytest
import yaml

from memora_bench.specs import load_submission, sha256_file
from memora_bench.unlearning import table

ROOT = Path(__file__).resolve().parents[1]
BUILT = sorted(p.parent for p in (ROOT / "baselines").glob("*/build.json"))
MB = 1024 * 1024


def test_some_baselines_are_committed():
    assert len(BUILT) >= 18


@pytest.mark.parametrize("folder", BUILT, ids=lambda p: p.name)
def test_checkpoint_matches_its_build_record_and_manifest(folder):
    build = json.loads((folder / "build.json").read_text())
    ckpt = folder / build["checkpoint"]
    assert ckpt.stat().st_size == build["bytes"] <= 8 * MB
    assert sha256_file(ckpt) == build["sha256"]
    submission = load_submission(folder / "submission.yaml")
    assert submission.name == folder.name == f"{build['recipe']}-{build['task']}"
    assert submission.checkpoint.sha256 == build["sha256"]
    # every built baseline is evaluated: its result is committed beside the others
    assert (ROOT / "results" / "mini-v1" / folder.name / f"{build['task']}.json").exists()


def test_all_checkpoints_together_fit_the_budget():
    total = sum((f / json.loads((f / "build.json").read_text())["checkpoint"]).stat().st_size for f in BUILT)
    assert total <= 80 * MB


def test_docs_table_is_the_one_generated_from_the_committed_results():
    doc = (ROOT / "docs" / "baselines.md").read_text()
    committed = doc.split(table.BEGIN, 1)[1].split(table.END, 1)[0].strip()
    generated = table.markdown(table.rows(ROOT / "results" / "mini-v1", ROOT / "baselines")).strip()
    assert committed == generated, "run `memora-bench baselines table results/mini-v1 --write docs/baselines.md`"
    memora = table.memora_rows(ROOT / "results" / "mini-v1", ROOT / "baselines")
    pinned = "memora" in yaml.safe_load((ROOT / "benchmark" / "mini-v1.yaml").read_text())["probes"]
    assert bool(memora) == pinned, "the committed results and benchmark/mini-v1.yaml disagree on MemoRa"
    if pinned:  # the MemoRa table too
        committed = doc.split(table.MEMORA_BEGIN, 1)[1].split(table.MEMORA_END, 1)[0].strip()
        assert committed == table.memora_markdown(memora).strip(), "regenerate docs/baselines.md (see above)"
