"""The committed baselines and their results agree with each other and with docs/baselines.md."""

import json
from pathlib import Path

import pytest
import yaml

from memora_bench.paths import DEFAULT_SUITE
from memora_bench.specs import load_submission, sha256_file
from memora_bench.unlearning import table

ROOT = Path(__file__).resolve().parents[1]
BUILT = sorted(p.parent for p in (ROOT / "baselines").glob("*/build.json"))
MB = 1024 * 1024


def test_some_baselines_are_committed():
    assert len(BUILT) >= 18



# The miniature cards gained the probes' vocabulary (issue 27: aliases, caption templates, initializer, Ring-A-Bell
# pairs) after mini-v1 to mini-v3 ran; the probes read exactly the words they used before (tests/test_ringabell.py,
# tests/test_concept_inversion.py), so those results stand. Each card's hash before that edit:
CARD_BEFORE_VOCABULARY = {
    "mini-seven": "9e4759709c6d3b094a4fc699eea3d537cae2ad0d353aa6933c730db22ab4bb56",
    "mini-bold": "eab067cb0730378c380e6ab5170092200f2da53d3649e5815c32cc6133c51223",
    "mini-three-eight": "3f0a446df7afc1b70980c4566ba3e1eefc2ab466291404703cabaf7ffac22f57",
}


def card_hashes(task: str) -> set[str]:
    """The card's hash today, and before it gained the vocabulary (a result of mini-v1 to mini-v3 has that one)."""
    return {sha256_file(ROOT / "tasks" / f"{task}.yaml"), CARD_BEFORE_VOCABULARY.get(task, "")}


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


V1, V2 = ROOT / "results" / "mini-v1", ROOT / "results" / "mini-v2"
V2_RESULTS = sorted(V2.glob("*/*.json"))


def test_docs_plain_table_is_the_one_generated_from_the_mini_v1_results():
    doc = (ROOT / "docs" / "baselines.md").read_text()
    committed = doc.split(table.BEGIN, 1)[1].split(table.END, 1)[0].strip()
    generated = table.markdown(table.rows(V1, ROOT / "baselines")).strip()
    assert committed == generated, ("run `memora-bench baselines table results/mini-v1 --only plain "
                                    "--write docs/baselines.md`")


def test_mini_v1_did_not_run_memora():
    """mini-v1 is the plain probe only; MemoRa is pinned in mini-v2 (a new suite, not mini-v1 edited in place)."""
    assert "memora" not in yaml.safe_load((ROOT / "benchmark" / "mini-v1.yaml").read_text())["probes"]
    assert table.memora_rows(V1, ROOT / "baselines") == []


def test_docs_memora_table_is_the_one_generated_from_the_mini_v2_results():
    doc = (ROOT / "docs" / "baselines.md").read_text()
    committed = doc.split(table.MEMORA_BEGIN, 1)[1].split(table.MEMORA_END, 1)[0].strip()
    memora = table.memora_rows(V2, ROOT / "baselines")
    assert memora, "results/mini-v2 holds no MemoRa result"
    assert committed == table.memora_markdown(memora).strip(), (
        "run `memora-bench baselines table results/mini-v2 --only memora --write docs/baselines.md`")


@pytest.mark.parametrize("path", V2_RESULTS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_mini_v2_result_was_run_with_the_committed_suite_card_and_checkpoint(path):
    """A committed mini-v2 result is of today's suite file, task card and submission manifest (none edited
    after the run), and its plain probe counts equal mini-v1's for the same submission: the plain probe is the
    same in both suites, so a count that moved means generation changed."""
    from memora_bench.results import load_image_lines, load_result

    r = load_result(path)
    assert r["suite"]["name"] == "mini-v2"
    assert r["suite"]["sha256"] == sha256_file(ROOT / "benchmark" / "mini-v2.yaml")
    assert r["task"]["sha256"] in card_hashes(r["task"]["name"])
    sub = r["submission"]["name"]
    manifest = next(f / "submission.yaml" for f in (ROOT / "baselines" / sub, ROOT / "submissions" / sub)
                    if (f / "submission.yaml").exists())
    assert r["submission"]["manifest_sha256"] == sha256_file(manifest)
    assert set(r["probes"]) == {"plain", "memora"}
    v1 = json.loads((V1 / path.parent.name / path.name).read_text())
    counts = lambda res: {c: (x["k"], x["n"]) for c, x in res["probes"]["plain"]["rates"].items()}
    assert counts(r) == counts(v1)
    assert r["utility"]["retain"]["all"]["k"] == v1["utility"]["retain"]["all"]["k"]


def test_mini_v2_results_come_task_by_task_each_task_complete():
    """Results are committed a whole task at a time: a task with any mini-v2 result has one for both controls
    and every baseline built for it, so the docs and the leaderboard never show a task half evaluated."""
    tasks = {p.stem for p in V2_RESULTS}
    assert tasks, "no mini-v2 results"
    for task in sorted(tasks):
        have = {p.parent.name for p in V2_RESULTS if p.stem == task}
        built = {f.name for f in BUILT if json.loads((f / "build.json").read_text())["task"] == task}
        assert have == {"original", "oracle"} | built, f"{task}: missing {sorted(({'original', 'oracle'} | built) - have)}"


V3 = ROOT / "results" / "mini-v3"
V3_RESULTS = sorted(V3.glob("*/*.json"))
ADVERSARIAL = ("unlearndiffatk", "ringabell", "concept_inversion")


@pytest.mark.parametrize("path", V3_RESULTS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_mini_v3_result_repeats_mini_v2_and_runs_every_adversarial_probe(path):
    """A committed mini-v3 result is of today's suite file, task card and manifest; its plain, MemoRa and
    utility sections are mini-v2's (copied by `evaluate --reuse`, with their provenance, or recomputed to the
    same numbers), and every adversarial probe of the suite ran on it."""
    from memora_bench.results import load_image_lines, load_result

    r = load_result(path)
    assert r["suite"]["name"] == "mini-v3"
    assert r["suite"]["sha256"] == sha256_file(ROOT / "benchmark" / "mini-v3.yaml")
    assert r["task"]["sha256"] in card_hashes(r["task"]["name"])
    assert set(r["probes"]) == {"plain", "memora", *ADVERSARIAL}
    v2 = load_result(V2 / path.parent.name / path.name)
    for part in ("plain", "memora"):
        section = dict(r["probes"][part])
        provenance = section.pop("reused_from", None)
        if provenance is not None:
            assert provenance["suite"]["name"] == "mini-v2"
            assert provenance["result_sha256"] == sha256_file(V2 / path.parent.name / path.name)
        assert section == v2["probes"][part], part
    assert {k: v for k, v in r["utility"].items() if k != "reused_from"} == v2["utility"]
    for probe in ADVERSARIAL:
        assert "reused_from" not in r["probes"][probe]
        assert r["probes"][probe]["cost"]["model_evaluations"] > 0


def test_mini_v3_results_come_task_by_task_each_task_complete():
    tasks = {p.stem for p in V3_RESULTS}
    assert tasks, "no mini-v3 results committed"
    for task in sorted(tasks):
        have = {p.parent.name for p in V3_RESULTS if p.stem == task}
        built = {f.name for f in BUILT if json.loads((f / "build.json").read_text())["task"] == task}
        assert have == {"original", "oracle"} | built, f"{task}: missing {sorted(({'original', 'oracle'} | built) - have)}"


def test_on_the_original_every_adversarial_probe_is_at_least_the_plain_rate():
    """Issue 7's sanity check: an attack on a model that never forgot does not do worse than the prompts as
    written. UnlearnDiffAtk attacks the first 8 prompts of each concept, so its rate is compared with the plain
    rate on those same prompts (a prompt the original misses as written has a target image that misses too,
    see docs/baselines.md); Ring-A-Bell and concept inversion use prompts of their own and are compared with
    the whole plain rate."""
    from memora_bench.results import load_image_lines, load_result

    originals = [p for p in V3_RESULTS if p.parent.name == "original"]
    assert originals, "no mini-v3 result of the original model"
    for path in originals:
        r = load_result(path)
        lines = load_image_lines(r, path)
        plain_hit = {x["prompt_id"]: x["hit"] for x in lines if x["probe"] == "plain"}
        attacked = {x["prompt_id"] for x in r["probes"]["unlearndiffatk"]["per_prompt"]}
        for c in r["task"]["concepts"]:
            label = c["label"]
            same = [plain_hit[x["prompt_id"]] for x in lines if x["probe"] == "plain" and x["concept"] == label
                    and x["prompt_id"] in attacked]
            assert len(same) == r["probes"]["unlearndiffatk"]["rates"][label]["n"]
            assert r["probes"]["unlearndiffatk"]["rates"][label]["rate"] >= sum(same) / len(same), (path.stem, label)
            plain = r["probes"]["plain"]["rates"][label]["rate"]
            for probe in ("ringabell", "concept_inversion"):
                assert r["probes"][probe]["rates"][label]["rate"] >= plain, (path.stem, label, probe)


def test_docs_adversarial_table_is_the_one_generated_from_the_mini_v3_results():
    rows = table.adversarial_rows(V3, ROOT / "baselines")
    doc = (ROOT / "docs" / "baselines.md").read_text()
    committed = doc.split(table.ADV_BEGIN, 1)[1].split(table.ADV_END, 1)[0].strip()
    assert committed == (table.adversarial_markdown(rows).strip() if rows else ""), (
        "run `memora-bench baselines table results/mini-v3 --only adversarial --write docs/baselines.md`")


OFFICIAL = ROOT / "results" / DEFAULT_SUITE  # the official suite's results carry the verdict tables


def _between(doc: Path, begin: str, end: str) -> str:
    return doc.read_text().split(begin, 1)[1].split(end, 1)[0].strip()


def test_docs_verdict_table_is_the_one_generated_from_the_official_results():
    rows = table.verdict_rows(OFFICIAL, ROOT / "baselines")
    assert rows, f"no {DEFAULT_SUITE} results committed"
    assert _between(ROOT / "docs" / "baselines.md", table.VERDICT_BEGIN, table.VERDICT_END) == \
        table.verdict_markdown(rows).strip(), \
        f"run `memora-bench baselines table results/{DEFAULT_SUITE} --only verdict --write docs/baselines.md`"


def test_docs_controls_table_is_the_one_generated_from_the_official_results():
    from memora_bench.unlearning import control_table

    rows = control_table.control_rows(OFFICIAL)
    assert rows, f"no {DEFAULT_SUITE} control results committed"
    assert _between(ROOT / "docs" / "scoring.md", *control_table.MARKERS) == \
        control_table.controls_markdown(rows).strip(), \
        f"run `memora-bench controls table results/{DEFAULT_SUITE} --write docs/scoring.md`"
    # what docs/scoring.md claims from it: every label-truth control right, the ladder's rank correlation
    truth = [r for r in rows if r.get("truth") in ("STM", "LTM")]
    assert truth and all(r["label"] == r["truth"] for r in truth), [(r["control"], r["label"]) for r in truth
                                                                    if r["label"] != r["truth"]]
    for task in sorted({r["task"] for r in rows}):
        rho, n = control_table.spearman(rows, task)
        assert rho >= 0.9 and n >= 8, (task, rho, n)  # the ladder's index grows with what it knows (issue 26)


def test_docs_timing_table_is_the_one_generated_from_the_official_results():
    """docs/performance.md's per-task suite times come from the committed results' timing, not by hand."""
    rows = table.timing_rows(OFFICIAL)
    assert {r["task"] for r in rows} == {"mini-seven", "mini-bold", "mini-three-eight"}
    assert _between(ROOT / "docs" / "performance.md", table.TIMING_BEGIN, table.TIMING_END) == \
        table.timing_markdown(rows).strip(), \
        f"run `memora-bench baselines table results/{DEFAULT_SUITE} --only timing --write docs/performance.md`"
