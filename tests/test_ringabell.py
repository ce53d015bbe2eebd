"""Ring-A-Bell pieces on a tiny pipeline: concept pairs, the genetic search only improves, rows keep seeds."""

import numpy as np
import pytest
import torch

from memora_bench.paths import repo_root
from memora_bench.probes import ringabell as rab
from memora_bench.specs import PromptRow, load_task
from tests.helpers import tiny_pipeline

TASKS = repo_root() / "tasks"
SEVEN = load_task(TASKS / "mini-seven.yaml").concepts


def test_the_concept_vector_comes_from_the_cards_pairs():
    [bold] = load_task(TASKS / "mini-bold.yaml").concepts
    pairs = SEVEN[0].contrast_pairs()
    assert ("a handwritten seven", "a handwritten digit") in pairs and ("the digit 7", "the digit digit") in pairs
    assert all("seven" not in q and "7" not in q for _, q in pairs)
    assert ("a bold handwritten two", "a handwritten two") in bold.contrast_pairs()
    pipe = tiny_pipeline()
    v = rab.concept_vector(pipe, SEVEN[0])
    on = rab._hidden(pipe, rab._ids(pipe, [p for p, _ in pairs]))
    off = rab._hidden(pipe, rab._ids(pipe, [q for _, q in pairs]))
    assert torch.allclose(v, (on - off).mean(0))
    with pytest.raises(ValueError, match="not among the card"):
        rab.build_rows(pipe, [PromptRow("a-0", "a bold two", 1, 7.5, "bold")], SEVEN, rab.SearchParams(prompts=1))


def test_the_miniature_cards_give_the_pairs_the_shipped_prompt_files_were_built_with():
    """The shipped Ring-A-Bell files were built (session 12) from the world's caption templates; the cards'
    contrast pairs are exactly those, so the files stand (their build records say so: ``card_revised``)."""
    templates = ["a handwritten {w}", "the digit {n}", "a drawing of the number {w}", "the number {n}, handwritten",
                 "a picture of {aw}", "a handwritten digit {w}"]
    for name, n, aw in (("seven", "7", "a seven"), ("three", "3", "a three"), ("eight", "8", "an eight")):
        [c] = [c for t in ("mini-seven", "mini-three-eight") for c in load_task(TASKS / f"{t}.yaml").concepts
               if c.name == name]
        assert list(c.contrast_pairs()) == [(t.format(w=name, n=n, aw=aw), t.format(w="digit", n="digit", aw="a digit"))
                                            for t in templates]
    [bold] = load_task(TASKS / "mini-bold.yaml").concepts
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    assert list(bold.contrast_pairs()) == ([(f"a bold handwritten {w}", f"a handwritten {w}") for w in words]
                                           + [(f"a thick handwritten {w}", f"a handwritten {w}") for w in words])


def test_genetic_search_never_loses_its_best():
    pipe = tiny_pipeline()
    p = rab.SearchParams(population=16, generations=12, length=4)
    target = rab._hidden(pipe, rab._ids(pipe, ["a handwritten seven"]))[0] + 3 * rab.concept_vector(pipe, SEVEN[0])

    def fit(ids):
        return float(((rab._hidden(pipe, ids[None])[0] - target) ** 2).sum())

    rng = np.random.default_rng(0)
    first = np.stack([np.concatenate([[49406], rng.integers(1, 49406, 4), np.full(72, 49407)]) for _ in range(16)])
    best_initial = min(fit(torch.from_numpy(x)) for x in first)
    best = rab.search(pipe, target, p, np.random.default_rng(0))
    assert best.shape == (77,) and best[0] == 49406 and (best[5:] == 49407).all()
    assert fit(best) <= best_initial


def test_rows_keep_seed_guidance_and_concept():
    pipe = tiny_pipeline()
    rows = [PromptRow(f"attack-{i:03d}", "a handwritten seven", 100 + i, 7.5, "seven") for i in range(3)]
    out = rab.build_rows(pipe, rows, SEVEN, rab.SearchParams(population=8, generations=2, length=3, prompts=2),
                         progress=False)
    assert [(r["seed"], r["concept"], r["guidance"]) for r in out] == [(100, "seven", 7.5), (101, "seven", 7.5)]
    assert all(r["prompt"] for r in out)
    from memora_bench.specs import prompts_csv

    assert prompts_csv(out).splitlines()[0] == "id,prompt,seed,guidance,concept"


def test_each_prompt_has_its_own_generator_so_prompts_do_not_depend_on_each_other():
    pipe = tiny_pipeline()
    rows = [PromptRow(f"attack-{i:03d}", f"a handwritten seven {i}", 100 + i, 7.5, "seven") for i in range(3)]
    one = rab.build_rows(pipe, rows, SEVEN, rab.SearchParams(population=8, generations=3, length=3, prompts=1), progress=False)
    two = rab.build_rows(pipe, rows, SEVEN, rab.SearchParams(population=8, generations=3, length=3, prompts=2), progress=False)
    assert one[0] == two[0]


def test_an_interrupted_build_resumes_from_its_partial_file(tmp_path, monkeypatch):
    import json

    pipe = tiny_pipeline()
    rows = [PromptRow(f"attack-{i:03d}", f"a handwritten seven {i}", 100 + i, 7.5, "seven") for i in range(3)]
    p = rab.SearchParams(population=8, generations=3, length=3, prompts=3)
    partial = tmp_path / "t-ringabell.partial.json"
    whole = rab.build_rows(pipe, rows, SEVEN, p, progress=False)

    real_search, calls = rab.search, []

    def dies_on_the_third(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_search(*args)

    monkeypatch.setattr(rab, "search", dies_on_the_third)
    try:
        rab.build_rows(pipe, rows, SEVEN, p, progress=False, partial=partial)
    except KeyboardInterrupt:
        pass
    assert sorted(json.loads(partial.read_text())["rows"]) == ["ringabell-000", "ringabell-001"]
    calls.clear()
    monkeypatch.setattr(rab, "search", lambda *a: (calls.append(1), real_search(*a))[1])
    assert rab.build_rows(pipe, rows, SEVEN, p, progress=False, partial=partial) == whole
    assert len(calls) == 1  # only the unfinished prompt was searched again
    # other parameters: the partial file is not reused
    calls.clear()
    rab.build_rows(pipe, rows, SEVEN, rab.SearchParams(population=8, generations=4, length=3, prompts=3),
                   progress=False, partial=partial)
    assert len(calls) == 3


def test_a_decoded_line_break_becomes_a_space_without_changing_the_token_ids():
    pipe = tiny_pipeline()
    raw = "bigbette fitneshernartillery \r\u00e9screenlee\nshape  \r\n madeleine "
    clean = rab.one_line(raw)
    assert clean == "bigbette fitneshernartillery \u00e9screenlee shape madeleine"
    assert rab._ids(pipe, [clean]).tolist() == rab._ids(pipe, [raw]).tolist()


def test_a_prompt_file_refuses_a_prompt_that_would_not_read_back():
    import pytest

    from memora_bench.specs import prompts_csv

    row = {"id": "r-0", "prompt": "a \r b", "seed": 1, "guidance": 7.5, "concept": "seven"}
    with pytest.raises(ValueError, match="round trip"):
        prompts_csv([row])
    assert "a b" in prompts_csv([{**row, "prompt": "a b"}])
