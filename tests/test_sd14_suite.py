"""The SD-1.4 suite and its task cards validate offline (issue 10): every card parses, names registered
classifiers and the pinned SD-1.4 revision, fetches its prompt sets from pinned commits, and every probe's
parameters parse. Running it at full size needs a GPU and the Hub; its whole code path runs here on a tiny
SD-shaped pipeline (tests/test_sd14_end_to_end.py)."""

import re

import pytest

from memora_bench.paths import repo_root
from memora_bench.specs import UNPINNED, load_suite, load_task, unpinned_sets

SD14_REVISION = "133a221b8aa7292a167afc5127cb63fb5005638b"


@pytest.fixture(scope="module", params=["sd14-v1", "sd14-v2", "sd14-v3"])
def suite(request):
    return load_suite(repo_root() / "benchmark" / f"{request.param}.yaml")


def test_suite_and_cards_validate(suite):
    # sd14-v3 adds the nudity task, whose I2P prompts could not be pinned here (docs/gpu.md)
    assert len(suite.tasks) == (6 if suite.name == "sd14-v3" else 5)
    for name in suite.tasks:
        task = load_task(repo_root() / "tasks" / f"{name}.yaml")
        assert (task.base_model.id, task.base_model.revision) == ("CompVis/stable-diffusion-v1-4", SD14_REVISION)
        assert task.oracle is None
        g = task.generation
        assert (g.scheduler, g.steps, g.height, g.width, g.images_per_prompt) == ("lms", 50, 512, 512, 1)
        assert unpinned_sets(task) == (["attack_prompts"] if name == "sd14-nudity" else [])
        for ps in (task.attack_prompts, task.retain_prompts):
            assert ps.file == "" and (re.fullmatch(r"[0-9a-f]{64}", ps.sha256) or ps.sha256 == UNPINNED)
            # pinned to a commit of the reference repository, never to a branch
            assert re.match(r"https://raw\.githubusercontent\.com/OPTML-Group/Diffusion-MU-Attack/[0-9a-f]{40}/prompts/",
                            ps.source.url), ps.source.url
        assert task.attack_prompts.source.concept == task.concepts[0].label
        assert task.attack_prompts.sha256 != task.retain_prompts.sha256


def test_probe_parameters_parse(suite):
    from memora_bench.probes import concept_inversion, memora, unlearndiffatk

    params = {p.name: dict(p.params) for p in suite.probes}
    if suite.name == "sd14-v1":
        assert set(params) == {"plain", "unlearndiffatk", "memora"}
    else:  # sd14-v2 on: all five probes; concept inversion as the reference's train.sh runs textual inversion
        assert set(params) == {"plain", "unlearndiffatk", "memora", "ringabell", "concept_inversion"}
        ci = concept_inversion.parse_params(params["concept_inversion"])
        assert (ci.steps, ci.batch_size, ci.accumulation, ci.lr) == (5000, 4, 4, 0.005)
        assert params["ringabell"] == {"prompt_sha256": {}}  # built from SD-1.4's text encoder on a networked machine
    attack = unlearndiffatk.parse_params(params["unlearndiffatk"])
    assert (attack.k, attack.iterations, attack.lr, attack.weight_decay) == (3, 40, 0.01, 0.1)
    # the reference attacks nudity with 5 prefix tokens (sd14-v3 on; the earlier versions had no nudity task)
    assert attack.prefix_tokens(["nudity"]) == (5 if suite.name == "sd14-v3" else 3)
    assert attack.prefix_tokens(["object"]) == attack.prefix_tokens(["style"]) == 3
    m = memora.parse_params(params["memora"])
    assert (m.start_step, m.interpolation, m.rank, m.alpha, m.accumulation) == (15, 10, 4, 4, 4)
    assert m.seed_pairs == ((1805, 2821), (1405, 2421), (1705, 2721))
    # sd14-v3: a label without a retrain oracle, against a zero floor up to the reference's 10 LoRA steps
    assert (m.score, m.oracle_free_cap) == (("excess", 10) if suite.name == "sd14-v3" else ("memory-index", None))


def test_cli_validate_accepts_the_sd14_cards(capsys):
    from memora_bench.cli import main

    paths = [str(repo_root() / "benchmark" / f"sd14-v{v}.yaml") for v in (1, 2, 3)] + [
        str(p) for p in sorted((repo_root() / "tasks").glob("sd14-*.yaml"))]
    assert main(["validate", *paths]) == 0, capsys.readouterr()


def test_a_parameter_added_later_is_not_recorded_at_its_default():
    from memora_bench.probes import registry, unlearndiffatk

    assert "k_by_kind" not in registry.recorded(unlearndiffatk.parse_params({}))  # mini results read as before
    assert registry.recorded(unlearndiffatk.parse_params({"k_by_kind": {"nudity": 5}}))["k_by_kind"] == {"nudity": 5}
    with pytest.raises(registry.ParamError, match="k_by_kind"):
        unlearndiffatk.parse_params({"k_by_kind": {"nudes": 5}})
