"""Known-answer controls: the hide recipe, its place in the fingerprint, and the committed controls."""

from __future__ import annotations

import pytest
import torch

from memora_bench.miniworld import load_pipeline
from memora_bench.models.handle import submission_model
from memora_bench.models.text import hide_words
from memora_bench.paths import repo_root
from memora_bench.specs import SpecError, load_submission

CONTROLS = repo_root() / "controls"


@pytest.fixture(scope="module")
def pipe():
    return load_pipeline("base")


def test_hiding_copies_the_replacements_embeddings_and_nothing_else(pipe):
    before = pipe.text_encoder.get_input_embeddings().weight.detach().clone()
    hidden = load_pipeline("base")
    mapping = hide_words(hidden, [("seven", "one"), ("sieben", "eins")])
    after = hidden.text_encoder.get_input_embeddings().weight.detach()
    tok = pipe.tokenizer
    seven, one = tok("seven", add_special_tokens=False).input_ids[0], tok("one", add_special_tokens=False).input_ids[0]
    sie, ben = tok("sieben", add_special_tokens=False).input_ids
    e, ins = tok("eins", add_special_tokens=False).input_ids
    assert mapping == {seven: one, sie: e, ben: ins}
    assert torch.equal(after[seven], before[one]) and torch.equal(after[ben], before[ins])
    changed = (after != before).any(dim=1).nonzero().flatten().tolist()
    assert sorted(changed) == sorted(mapping)
    # "a handwritten seven" now encodes exactly as "a handwritten one"
    ids = lambda t: tok(t, padding="max_length", max_length=77, return_tensors="pt").input_ids  # noqa: E731
    with torch.no_grad():
        assert torch.equal(hidden.text_encoder(ids("a handwritten seven"))[0],
                           pipe.text_encoder(ids("a handwritten one"))[0])


def test_a_recipe_is_part_of_the_fingerprint_and_only_for_controls(tmp_path):
    hidden = load_submission(CONTROLS / "hidden-original-mini-seven")
    original = load_submission(repo_root() / "submissions" / "original")
    a, b = submission_model(hidden, None), submission_model(original, None)
    assert a.fingerprint != b.fingerprint and a.fingerprint["recipe"]["hide"][0] == ["seven", "one"]
    assert "recipe" not in b.fingerprint  # the original's cache keys are unchanged
    folder = tmp_path / "x"
    folder.mkdir()
    (folder / "submission.yaml").write_text(
        (CONTROLS / "hidden-original-mini-seven" / "submission.yaml").read_text()
        .replace("name: hidden-original-mini-seven", "name: x").replace("control: true", "control: false"))
    with pytest.raises(SpecError, match="'recipe' is for known-answer controls"):
        load_submission(folder)


def test_the_committed_controls_cover_every_miniature_task():
    for task in ("mini-seven", "mini-bold", "mini-three-eight"):
        for base in ("original", "oracle"):
            sub = load_submission(CONTROLS / f"hidden-{base}-{task}")
            assert sub.control and sub.recipe is not None and sub.tasks == (task,)
            assert sub.base_model.id == f"world/{'base' if base == 'original' else 'oracle'}"


def test_every_committed_ladder_rung_is_its_build_record():
    from memora_bench.specs import sha256_file
    from memora_bench.unlearning.controls import ladder_records

    records = ladder_records()
    assert records, "no ladder built: memora-bench controls build mini-seven"
    for rec in records:
        folder = CONTROLS / rec["control"]
        sub = load_submission(folder)
        assert sub.checkpoint.sha256 == rec["checkpoint_sha256"] == sha256_file(folder / "teach.safetensors")
        hidden = load_submission(CONTROLS / rec["hidden_like"])
        assert sub.recipe == hidden.recipe and sub.base_model == hidden.base_model and sub.tasks == hidden.tasks
        assert 0 <= rec["q_k"]["k"] <= rec["q_k"]["n"]
    by_task: dict[str, list] = {}
    for rec in records:
        by_task.setdefault(rec["task"], []).append((rec["k"], rec["q_k"]["rate"]))
    for task, rungs in by_task.items():
        rates = [q for _, q in sorted(rungs)]
        assert rates[0] < 0.5 <= rates[-1], f"{task}: the ladder must span from little to most of the concept"
