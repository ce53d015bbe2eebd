import hashlib
import shutil
from pathlib import Path

import pytest

from memora_bench.paths import repo_root
from memora_bench.specs import SpecError, load_submission, load_suite, load_task, read_prompts

ROOT = repo_root()


def _copy_task(tmp_path: Path, name: str = "mini-seven") -> Path:
    (tmp_path / "prompts").mkdir(exist_ok=True)
    for f in (ROOT / "tasks" / "prompts").glob(f"{name}-*.csv"):
        shutil.copy(f, tmp_path / "prompts" / f.name)
    dst = tmp_path / f"{name}.yaml"
    shutil.copy(ROOT / "tasks" / f"{name}.yaml", dst)
    return dst


def _problems(fn, *args) -> list[str]:
    with pytest.raises(SpecError) as info:
        fn(*args)
    return info.value.problems


def test_every_shipped_card_suite_and_submission_loads():
    tasks = [load_task(p) for p in sorted((ROOT / "tasks").glob("*.yaml"))]
    assert {t.name for t in tasks} >= {"mini-seven", "mini-bold", "mini-three-eight"}
    assert {c.kind for t in tasks for c in t.concepts} >= {"object", "style"}
    assert any(len(t.concepts) == 2 for t in tasks)
    for name in ("mini-v1", "mini-v2", "mini-v3"):
        suite = load_suite(ROOT / "benchmark" / f"{name}.yaml")
        assert set(suite.tasks) <= {t.name for t in tasks} and suite.version >= 1
    assert load_submission(ROOT / "submissions" / "original").control


def test_attack_sets_are_large_and_varied():
    for card in (ROOT / "tasks").glob("mini-*.yaml"):
        task = load_task(card)
        rows = read_prompts(card.parent / task.attack_prompts.file, task.attack_prompts.sha256)
        assert len(rows) >= 50 and len({r.prompt for r in rows}) >= 50
        if task.name == "mini-seven":
            assert any("sieben" in r.prompt for r in rows)  # the digit's alias (world v2)
            assert any("7" in r.prompt for r in rows) and any("seven" in r.prompt for r in rows)


def test_typo_gets_did_you_mean_and_every_problem_at_once(tmp_path):
    card = _copy_task(tmp_path)
    text = card.read_text().replace("version: 1", "versoin: 1").replace("scheduler: ddim", "scheduler: dpm")
    text = text.replace("threshold: 0.5}\n  - {name: mini-style", "threshold: 1.5}\n  - {name: mini-styl")
    card.write_text(text)
    problems = _problems(load_task, card)
    joined = "\n".join(problems)
    assert "unknown key 'versoin' (did you mean 'version'?)" in joined
    assert "missing required key 'version'" in joined
    assert "'generation.scheduler' is 'dpm'" in joined
    assert "threshold' must be in [0, 1]" in joined
    assert "(did you mean 'mini-style'?)" in joined
    assert all(str(card) in p for p in problems)
    assert len(problems) >= 5


def test_the_concept_vocabulary_is_checked(tmp_path):
    card = _copy_task(tmp_path)
    text = card.read_text()
    text = text.replace('"a handwritten {}", ', '"a handwritten", "a {} and {}", ')
    text = text.replace('- ["a handwritten seven", "a handwritten digit"]', '- ["a handwritten seven", "a handwritten seven"]')
    text = text.replace('aliases: ["7", "sieben"]', 'aliases: "7"')
    card.write_text(text)
    joined = "\n".join(_problems(load_task, card))
    assert "'concepts[0].templates[2]' must hold exactly one {} and no other braces, got 'a handwritten'" in joined
    assert "'concepts[0].templates[3]' must hold exactly one {}" in joined
    assert "'concepts[0].contrast[0]' must be two different captions" in joined
    assert "'concepts[0].aliases' must be a non-empty list" in joined


def test_every_sd14_card_gives_every_probe_its_inputs_without_a_digit_word():
    """Issue 27: Ring-A-Bell's pairs, concept inversion's captions and initializer come from the card, with
    defaults that fit SD (textual inversion's templates, "art" for a style)."""
    from memora_bench.digits import DIGIT_WORDS

    cards = sorted((ROOT / "tasks").glob("sd14-*.yaml"))
    assert len(cards) >= 5
    for card in cards:
        for c in load_task(card).concepts:
            captions = [t.format(c.name) for t in c.caption_templates()]
            pairs = c.contrast_pairs()
            words = " ".join(captions + [w for pair in pairs for w in pair] + [c.initializer_word()]).split()
            # ("one" is in textual inversion's own "a photo of one {}")
            assert not set(words) & (set(DIGIT_WORDS) - {"one"} | {"handwritten", "digit"}), card
            if c.contrast:  # the card's own pairs: nudity's are Ring-A-Bell's 50 less the 8 its scripts drop (its
                # "without" side is not always free of the word: "Nudity in art showing backs in the museum")
                assert len(pairs) == 42 and all(a != b for a, b in pairs), card
            else:
                assert pairs and all(a != b and c.name in a and c.name not in b for a, b in pairs), card
            assert all(t.count("{}") == 1 for t in c.caption_templates())
            if c.kind == "style":
                assert c.initializer_word() == "art" and captions[0] == f"a painting in the style of {c.name}"
            else:
                assert c.initializer_word() == c.name.split()[-1] and captions[0] == f"a photo of a {c.name}"


def test_wrong_types_and_non_positive_numbers(tmp_path):
    card = _copy_task(tmp_path)
    card.write_text(card.read_text().replace("steps: 50", "steps: fifty").replace("height: 32", "height: -32"))
    joined = "\n".join(_problems(load_task, card))
    assert "'generation.steps' must be int, got 'fifty'" in joined
    assert "'generation.height' must be positive" in joined


def test_prompt_file_hash_mismatch_and_bad_rows(tmp_path):
    card = _copy_task(tmp_path)
    csv = tmp_path / "prompts" / "mini-seven-attack.csv"
    lines = csv.read_text().splitlines()
    lines[1] = "attack-000,a seven,notaseed,7.5,seven"
    lines[2] = lines[3]  # duplicate id
    lines[4] = "attack-004,a seven,5,7.5,nine"  # not a concept of the task
    csv.write_text("\n".join(lines) + "\n")
    joined = "\n".join(_problems(load_task, card))
    assert "sha256 is" in joined and "the card says" in joined
    assert "seed 'notaseed' is not an integer" in joined
    assert "duplicate id" in joined
    assert "concept 'nine' is not one of the task's concept labels" in joined


def test_prompt_file_columns(tmp_path):
    csv = tmp_path / "p.csv"
    csv.write_text("id,prompt,sed,guidance\n1,a seven,1,7.5\n")
    joined = "\n".join(_problems(read_prompts, csv, None))
    assert "missing column(s) ['seed', 'concept']" in joined
    assert "unknown column 'sed' (did you mean 'seed'?)" in joined
    empty = tmp_path / "e.csv"
    empty.write_text("id,prompt,seed,guidance,concept\n")
    assert "no prompt rows" in "\n".join(_problems(read_prompts, empty, None))
    ragged = tmp_path / "r.csv"
    ragged.write_text("id,prompt,seed,guidance,concept\n1,a seven,1\n")
    assert "wrong number of fields" in "\n".join(_problems(read_prompts, ragged, None))
    binary = tmp_path / "b.csv"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    assert "not UTF-8" in "\n".join(_problems(read_prompts, binary, None))


def test_invalid_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "t.yaml"
    bad.write_text("name: [unclosed\n")
    assert "not valid YAML" in _problems(load_task, bad)[0]
    assert "cannot read" in _problems(load_task, tmp_path / "nope.yaml")[0]
    listy = tmp_path / "l.yaml"
    listy.write_text("- a\n- b\n")
    assert "top level must be a mapping" in "\n".join(_problems(load_task, listy))


def test_suite_unknown_probe_and_bad_confidence(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\nversion: 1\ndescription: x\ntasks: [mini-seven]\nprobes: {plian: {}}\n"
                     "bootstrap: 10\nbootstrap_seed: 0\nconfidence: 1.5\n")
    joined = "\n".join(_problems(load_suite, suite))
    assert "unknown probe 'plian' (did you mean 'plain'?)" in joined
    assert "'confidence' must be in (0.5, 1)" in joined


def _manifest(tmp_path: Path, extra: str) -> Path:
    folder = tmp_path / "sub"
    folder.mkdir(exist_ok=True)
    (folder / "submission.yaml").write_text(
        "name: sub\nmethod: m\nauthors: [a]\nreference: r\nbase_model: {id: world/base, revision: mini-world-v2}\n"
        "erased: [seven]\ntasks: [mini-seven]\n" + extra)
    return folder


def test_submission_checkpoint_escaping_folder_and_bad_component(tmp_path):
    folder = _manifest(tmp_path, "checkpoint: {path: ../../etc/passwd, sha256: " + "0" * 64 + ", component: unnet}\n")
    joined = "\n".join(_problems(load_submission, folder))
    assert "escapes the submission folder" in joined
    assert "'checkpoint.component' is 'unnet'" in joined and "did you mean 'unet'" in joined


def test_submission_symlink_escape_and_missing_checkpoint(tmp_path):
    outside = tmp_path / "outside.safetensors"
    outside.write_bytes(b"x")
    folder = _manifest(tmp_path, "checkpoint: {path: w.safetensors, sha256: " + "0" * 64 + ", component: unet}\n")
    (folder / "w.safetensors").symlink_to(outside)
    assert "escapes the submission folder" in "\n".join(_problems(load_submission, folder))
    folder2 = tmp_path / "two"
    folder2.mkdir()
    (folder2 / "submission.yaml").write_text(
        (folder / "submission.yaml").read_text().replace("name: sub", "name: two").split("checkpoint:")[0])
    assert "missing required key 'checkpoint'" in "\n".join(_problems(load_submission, folder2))


def test_submission_bad_sha_and_name_mismatch(tmp_path):
    folder = _manifest(tmp_path, "checkpoint: {path: w.safetensors, sha256: XYZ, component: unet}\n")
    text = (folder / "submission.yaml").read_text().replace("name: sub", "name: other")
    (folder / "submission.yaml").write_text(text)
    joined = "\n".join(_problems(load_submission, folder))
    assert "must be 64 lowercase hex digits" in joined
    assert "'name' is 'other' but the folder is 'sub'" in joined


def test_shipped_prompt_hashes_match_cards():
    shipped = 0
    for card in (ROOT / "tasks").glob("*.yaml"):
        task = load_task(card)
        for ps in (task.attack_prompts, task.retain_prompts):
            if ps.source is not None:  # fetched on first use (SD-1.4 cards): checked by prompt_sources
                continue
            assert hashlib.sha256((card.parent / ps.file).read_bytes()).hexdigest() == ps.sha256
            shipped += 1
    assert shipped == 6  # the three miniature tasks' attack and retain sets


def test_every_probe_module_is_registered_once_and_runs():
    from memora_bench.paths import repo_root
    from memora_bench.probes.registry import PROBES, load_probe

    modules = {p.stem for p in (repo_root() / "memora_bench" / "probes").glob("*.py")} - {"__init__", "registry"}
    assert {spec.module.rsplit(".", 1)[1] for spec in PROBES.values()} == modules
    for name in PROBES:
        assert callable(load_probe(name))


def test_result_schema_accepts_every_component_a_submission_may_declare():
    """A submission the loader accepts must yield a result the schema accepts (the 8-bit delta baselines once
    wrote results that `baselines table` then rejected)."""
    import json

    from memora_bench.results import SCHEMA_FILE
    from memora_bench.specs import COMPONENTS

    schema = json.loads(SCHEMA_FILE.read_text())
    checkpoint = schema["properties"]["submission"]["properties"]["checkpoint"]["oneOf"][1]
    assert sorted(checkpoint["properties"]["component"]["enum"]) == sorted(COMPONENTS)


def test_mini_v2_pins_memora_as_the_reference_runs_it():
    """The official suite's MemoRa: gmum/MemoRa's recipe (seed pairs, 10 interpolation steps, inversion to step 15
    of 50, rank 4 / alpha 4, lr 1e-4, accumulation 4, clip 1), a budget sweep up to 400 steps, three attack seeds."""
    from memora_bench.probes.memora import parse_params

    suite = load_suite(ROOT / "benchmark" / "mini-v2.yaml")
    assert [p.name for p in suite.probes] == ["plain", "memora"]
    p = parse_params(dict(next(x for x in suite.probes if x.name == "memora").params))
    assert p.seed_pairs == ((1805, 2821), (1405, 2421), (1705, 2721)) and p.interpolation == 10
    assert (p.steps, p.guidance, p.start_step) == (50, 7.5, 15)
    assert (p.rank, p.alpha, p.lr, p.accumulation, p.max_grad_norm) == (4, 4, 1e-4, 4, 1.0)
    assert p.budgets == (0, 25, 50, 100, 200, 400) and len(p.attack_seeds) >= 3
    assert p.auto_weights and p.headline_budgets == (100, 400) and p.ltm_below < p.stm_above


def test_mini_v3_is_mini_v2_plus_the_pinned_adversarial_probes():
    """mini-v3 keeps mini-v2's plain and MemoRa parameters exactly (so `evaluate --reuse results/mini-v2` can copy
    them), and pins the three prompt attacks at the budgets docs/scoring.md documents; each Ring-A-Bell file is
    the one its build record describes."""
    import hashlib
    import json

    from memora_bench.probes import concept_inversion, unlearndiffatk

    v2, v3 = (load_suite(ROOT / "benchmark" / f"{n}.yaml") for n in ("mini-v2", "mini-v3"))
    params = {p.name: dict(p.params) for p in v3.probes}
    assert list(params) == ["plain", "memora", "unlearndiffatk", "ringabell", "concept_inversion"]
    assert {p.name: dict(p.params) for p in v2.probes} == {k: params[k] for k in ("plain", "memora")}
    assert (v3.bootstrap, v3.bootstrap_seed, v3.confidence, v3.tasks) == (v2.bootstrap, v2.bootstrap_seed,
                                                                          v2.confidence, v2.tasks)
    u = unlearndiffatk.parse_params(params["unlearndiffatk"])
    assert (u.k, u.iterations, u.timesteps, u.lr, u.weight_decay, u.prompts) == (3, 40, 5, 0.01, 0.1, 8)
    assert unlearndiffatk.sampled_timesteps(u.timesteps) == [100, 300, 500, 700, 900]
    c = concept_inversion.parse_params(params["concept_inversion"])
    assert (c.images, c.steps, c.batch_size, c.accumulation, c.lr, c.eval_images) == (25, 100, 4, 1, 0.005, 20)
    pinned = dict(params["ringabell"]["prompt_sha256"])
    assert sorted(pinned) == sorted(v3.tasks)
    for task, sha in pinned.items():
        csv = ROOT / "tasks" / "prompts" / f"{task}-ringabell.csv"
        record = json.loads(csv.with_suffix(".json").read_text())
        assert hashlib.sha256(csv.read_bytes()).hexdigest() == sha == record["sha256"]
        card = hashlib.sha256((ROOT / "tasks" / f"{task}.yaml").read_bytes()).hexdigest()
        assert card in (record["task_sha256"], record.get("card_revised", {}).get("task_sha256"))
        assert record["params"]["generations"] == 3000 and record["params"]["population"] == 200


def test_mini_v4_is_mini_v3_at_full_strength_with_the_verdict():
    """mini-v4 (issue 26): MemoRa's rate x5 at a constant rate over budgets to 200, AutoMemoRa w 1, the verdict's
    score; concept inversion on 60 images; UnlearnDiffAtk on the reference's grid, its first 10 timesteps."""
    from memora_bench.probes import concept_inversion, memora, unlearndiffatk

    v3, v4 = (load_suite(ROOT / "benchmark" / f"{n}.yaml") for n in ("mini-v3", "mini-v4"))
    p3, p4 = ({p.name: dict(p.params) for p in s.probes} for s in (v3, v4))
    assert list(p4) == list(p3) and p4["plain"] == p3["plain"] and p4["ringabell"] == p3["ringabell"]
    m = memora.parse_params(p4["memora"])
    assert (m.lr, m.schedule, m.budgets, m.auto_weights, m.score) == (5e-4, "constant", (0, 25, 50, 75, 100, 200),
                                                                     (1.0,), "excess")
    assert (m.stm_excess, m.family_alpha) == (0.5, 0.05)
    c = concept_inversion.parse_params(p4["concept_inversion"])
    assert c.eval_images == 60 and c.steps == 100
    u = unlearndiffatk.parse_params(p4["unlearndiffatk"])
    assert unlearndiffatk.attack_timesteps(u) == list(range(10, 200, 20)) and u.iterations == 40
    # mini-v3's UnlearnDiffAtk records no grid: its results and cache keys read as before
    from memora_bench.probes.registry import recorded

    assert "grid" not in recorded(unlearndiffatk.parse_params(p3["unlearndiffatk"]))
