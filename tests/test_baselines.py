"""Baseline recipes on a tiny random pipeline: each changes only what its method changes, deterministically."""

import json

import pytest
import torch

from memora_bench.models.text import encode_word_embeddings
from memora_bench.unlearning.common import Target
from memora_bench.unlearning.registry import RECIPES
from tests.helpers import tiny_pipeline

SEVEN = Target(task="mini-seven", erased=("seven",), prompts=("a handwritten seven",))
PAIR = Target(task="mini-three-eight", erased=("three", "eight"), prompts=("a handwritten three", "a handwritten eight"))

TINY = {
    "esd-x": dict(iterations=3, ddim_steps=5),
    "esd-u": dict(iterations=3, ddim_steps=5),
    "uce": dict(),
    "fmn": dict(steps=3, concept_images=2),
    "salun": dict(forget_images=4, epochs=2, batch_size=2, retain_images=16),
    "erasediff": dict(forget_images=4, epochs=1, batch_size=2, retain_images=16),
    "advunlearn": dict(iterations=3, warmup_iter=1, attack_step=2, ddim_steps=4, retain_batch=2, retain_captions=10),
}


def run(name, target=SEVEN, **override):
    pipe = tiny_pipeline()
    component = pipe.unet if RECIPES[name].component.startswith("unet") else pipe.text_encoder
    before = {k: v.clone() for k, v in component.state_dict().items()}
    function, params_cls = RECIPES[name].load()
    out = function(pipe, target, params_cls(**{**TINY[name], **override}))
    return out, before, component


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_changes_only_its_own_tensors(name):
    out, before, component = run(name)
    assert out, name
    after = component.state_dict()
    for k, v in out.items():
        assert k in before, k
        assert v.shape == before[k].shape and torch.isfinite(v).all(), k
        assert torch.equal(after[k], v), f"{k}: returned tensor is not the model's"
    assert any(not torch.equal(out[k], before[k]) for k in out), f"{name} changed nothing"
    untouched = [k for k in before if k not in out]
    assert all(torch.equal(after[k], before[k]) for k in untouched), f"{name} changed tensors it does not return"
    rule = {"esd-x": lambda k: ".attn2." in k, "esd-u": lambda k: ".attn2." not in k,
            "uce": lambda k: ".attn2.to_k.weight" in k or ".attn2.to_v.weight" in k}.get(name)
    if rule:
        assert all(rule(k) for k in out), [k for k in out if not rule(k)][:3]


def test_recipes_are_deterministic_for_a_seed():
    a, _, _ = run("esd-x")
    b, _, _ = run("esd-x")
    assert all(torch.equal(a[k], b[k]) for k in a)
    c, _, _ = run("esd-x", seed=1)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_pair_task_runs_both_concepts():
    out, before, _ = run("uce", target=PAIR)
    assert any(not torch.equal(out[k], before[k]) for k in out)


def test_uce_maps_the_erased_span_to_its_guide_output():
    """The reference's closed form with one erased concept and nothing preserved: W'(lamb I + C^T C) = lamb W +
    W G^T C, where C holds the concept's token states from its last word on and G the guide's, aligned."""
    from memora_bench.unlearning.uce import aligned_spans, preserved, token_states

    pipe = tiny_pipeline()
    h, last = token_states(pipe, "seven")
    c, g = aligned_spans(pipe, "seven", "")
    assert last == 1 and len(c) == len(g) == 76  # "seven" from index 1; ' ' from its start token
    assert torch.equal(c, h[1:]) and torch.equal(g, token_states(pipe, " ")[0][:76])
    assert preserved(SEVEN) == () and "seven" in preserved(Target(task="mini-bold", erased=("bold",)))
    function, params_cls = RECIPES["uce"].load()
    old = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    lamb = 0.5
    out = function(pipe, SEVEN, params_cls(lamb=lamb))
    assert len(out) == 2 * sum(".attn2.to_k.weight" in k for k in old)
    c, g, eye = c.double(), g.double(), torch.eye(c.shape[1], dtype=torch.float64)
    for k, w32 in out.items():
        w, w0 = w32.double(), old[k].double()
        lhs, rhs = w @ (lamb * eye + c.T @ c), lamb * w0 + w0 @ g.T @ c
        assert torch.allclose(lhs, rhs, rtol=0, atol=1e-5 * rhs.abs().max()), k  # float32 rounding of W' only
        # the concept's keys/values move towards the guide's
        assert (w @ c.T - w0 @ g.T).norm() < 0.5 * (w0 @ c.T - w0 @ g.T).norm(), k


def test_salun_mask_freezes_the_less_salient_half():
    out, before, _ = run("salun")
    changed = sum(int((out[k] != before[k]).sum()) for k in out)
    total = sum(out[k].numel() for k in out)
    assert 0 < changed <= 0.5 * total + 1


def test_advunlearn_edits_only_the_text_encoder():
    out, before, _ = run("advunlearn")
    assert out and all("final_layer_norm" not in k for k in out)
    assert "embeddings.token_embedding.weight" in out


def test_word_embedding_forward_equals_the_encoder():
    pipe = tiny_pipeline()
    ids = pipe.tokenizer(["a handwritten seven"], padding="max_length", max_length=77, return_tensors="pt").input_ids
    table = pipe.text_encoder.get_input_embeddings()
    with torch.no_grad():
        assert torch.equal(encode_word_embeddings(pipe.text_encoder, ids, table(ids)), pipe.text_encoder(ids)[0])


def test_word_embeddings_replace_only_the_calling_threads_pass():
    """While one thread encodes free word embeddings, another thread's pass through the same encoder (an image
    drawn meanwhile) gets its prompt's own embeddings, not the hooked ones."""
    import threading

    pipe = tiny_pipeline()
    te = pipe.text_encoder
    ids = pipe.tokenizer(["a handwritten seven"], padding="max_length", max_length=77, return_tensors="pt").input_ids
    other_ids = pipe.tokenizer(["the digit 7"], padding="max_length", max_length=77, return_tensors="pt").input_ids
    with torch.no_grad():
        own, other = te(ids)[0], te(other_ids)[0]
        free = torch.randn(te.get_input_embeddings()(ids).shape, generator=torch.Generator().manual_seed(0))
        seen = []

        def meanwhile(module, inputs, output):  # runs inside the hooked pass: another thread encodes now
            if not seen:
                seen.append(None)
                worker = threading.Thread(target=lambda: seen.append(te(other_ids)[0]))
                worker.start()
                worker.join()

        probe = te.get_submodule("final_layer_norm").register_forward_hook(meanwhile)
        try:
            hooked = encode_word_embeddings(te, ids, free)
        finally:
            probe.remove()
    assert len(seen) == 2 and torch.equal(seen[1], other)  # the other thread's pass was its own
    assert not torch.equal(hooked, own)  # and the calling thread's pass did use the free embeddings


def test_fmn_token_positions():
    from memora_bench.unlearning.fmn import token_positions

    pipe = tiny_pipeline()
    pos = token_positions(pipe.tokenizer, "a photo of seven", "seven", use_pooler=False)
    assert pos.tolist()[:6] == [False, False, False, False, True, False]
    assert token_positions(pipe.tokenizer, "a photo of seven", "seven", use_pooler=True).sum() == 1 + 77 - 5
    with pytest.raises(ValueError, match="not found"):
        token_positions(pipe.tokenizer, "a photo of six", "seven", use_pooler=False)


def test_build_writes_a_valid_submission_with_its_manifest(tmp_path):
    """`baselines build` on the shipped world (UCE: closed form, seconds): checkpoint, manifest, build record."""
    import json
    import shutil

    from memora_bench.models.loading import load_submission_pipeline
    from memora_bench.paths import repo_root
    from memora_bench.specs import load_submission, sha256_file
    from memora_bench.unlearning.build import build

    shutil.copytree(repo_root() / "tasks", tmp_path / "tasks")
    record = build("uce", "mini-seven", tmp_path)
    folder = tmp_path / "baselines" / "uce-mini-seven"
    saved = json.loads((folder / "build.json").read_text())
    assert saved == record and record["params"]["lamb"] == 0.5 and record["seed"] == 0
    assert record["sha256"] == sha256_file(folder / "unet.safetensors") and record["bytes"] <= 8 * 1024**2
    sub = load_submission(folder / "submission.yaml")
    assert sub.checkpoint.component == "unet" and sub.erased == ("seven",) and sub.tasks == ("mini-seven",)
    pipe = load_submission_pipeline(sub, sub.base_model)
    key = "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight"
    assert torch.allclose(pipe.unet.state_dict()[key], record_tensor(folder, key), atol=0)


def record_tensor(folder, key):
    from safetensors.torch import load_file

    return load_file(str(folder / "unet.safetensors"))[key].float()


def test_build_cli_rejects_unknown_names(tmp_path):
    from tests.test_evaluate import run_cli

    res = run_cli("baselines", "build", "nope", "--task", "mini-nowhere")
    assert res.returncode == 2
    assert "unknown baseline 'nope'" in res.stderr and "unknown miniature task 'mini-nowhere'" in res.stderr
    listing = run_cli("baselines", "ls", "--json")
    assert listing.returncode == 0
    rows = json.loads(listing.stdout)
    assert {r["recipe"] for r in rows} == set(RECIPES) and {r["task"] for r in rows} >= {"mini-seven", "mini-bold"}


def test_batched_partial_samples_equal_one_by_one_draws():
    """AdvUnlearn's attack samples its x_t draws as one batch; each draw must be what the one-draw sampler gives
    from the same noise, stopped after its own number of steps (0 steps: the noise itself)."""
    from memora_bench.unlearning.common import ddim_partial_sample, ddim_partial_samples, text_context

    pipe = tiny_pipeline()
    cond, null = text_context(pipe, ["a handwritten seven"]), text_context(pipe, [""])
    stops = [3, 0, 5, 1]
    x, t = ddim_partial_samples(pipe.unet, pipe, cond, null, 3.0, 6, stops, torch.Generator().manual_seed(0))
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    for i, stop in enumerate(stops):
        # the single-draw sampler takes its noise from the generator: feed it row i of the same noise
        one = torch.Generator().manual_seed(0)
        torch.randn((i,) + x.shape[1:], generator=one)  # skip the rows before i
        xi, ti = ddim_partial_sample(pipe.unet, pipe, cond, null, 3.0, 6, stop, one)
        assert int(ti) == int(t[i])
        torch.testing.assert_close(x[i:i + 1], xi, rtol=1e-5, atol=1e-5)
    assert torch.equal(x[1], noise[1])


def test_interrupted_advunlearn_resumes_to_the_uninterrupted_result(tmp_path):
    """A build stopped after a checkpoint (here: at iteration 2 of 5, inside the attack phase) and started again
    gives exactly the uninterrupted run's weights, and counts the CPU time of both parts."""
    from memora_bench.unlearning.common import Checkpointer

    class Stop(Exception):
        pass

    class StopAfterFirstSave(Checkpointer):
        def save(self, state, iteration):
            super().save(state, iteration)
            raise Stop

    tiny = {**TINY["advunlearn"], "iterations": 5}
    straight, _, _ = run("advunlearn", **tiny)
    function, params_cls = RECIPES["advunlearn"].load()
    params = params_cls(**tiny)
    path = tmp_path / "state.pt"
    with pytest.raises(Stop):
        function(tiny_pipeline(), SEVEN, params, checkpoint=StopAfterFirstSave(path, {"p": 1}, every=2))
    assert torch.load(path, weights_only=False)["iteration"] == 2
    resumed_from = Checkpointer(path, {"p": 1}, every=2)
    resumed = function(tiny_pipeline(), SEVEN, params, checkpoint=resumed_from)
    assert resumed_from.prior_cpu > 0
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    # a state saved under other parameters is not resumed from
    assert Checkpointer(path, {"p": 2}).load() is None


def test_a_baseline_being_built_is_not_built_twice_at_once(tmp_path, monkeypatch):
    """Two builds of one baseline would share its resume file: the second is refused (the CLI skips it and
    exits 2) while the first holds the lock; the lock dies with its process, even a killed one."""
    import signal
    import subprocess
    import sys

    from memora_bench.cli import main
    from memora_bench.unlearning.build import BuildBusy, build, exclusive

    folder = tmp_path / "baselines" / "uce-mini-seven"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from memora_bench.unlearning.build import exclusive\n"
        f"with exclusive(Path({str(folder)!r})):\n    print('held', flush=True); time.sleep(600)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(BuildBusy, match=f"uce-mini-seven is being built by another process \\(pid {holder.pid}\\)"):
            build("uce", "mini-seven", tmp_path)
        monkeypatch.setenv("MEMORA_BENCH_ROOT", str(tmp_path))
        assert main(["baselines", "build", "uce", "--task", "mini-seven"]) == 2
        assert not (folder / "build.json").exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with exclusive(folder):  # the killed holder left no stale lock
        pass
