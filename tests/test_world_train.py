"""World training recipe: a run killed mid-way resumes from its checkpoint to the very same weights."""

import shutil

import numpy as np
import pytest
import torch

from memora_bench.paths import world_dir
from memora_bench.world import train
from memora_bench.digits import DigitSplit, load_split


@pytest.fixture()
def small_world(tmp_path, monkeypatch):
    for part in ("vae", "tokenizer"):
        shutil.copytree(world_dir() / "base" / part, tmp_path / "base" / part)
    full = load_split()
    small = DigitSplit(full.train_images[:40], full.train_labels[:40], full.heldout_images[:4], full.heldout_labels[:4])
    monkeypatch.setattr(train, "load_split", lambda: small)
    monkeypatch.setattr(train, "CHECKPOINT_EVERY", 2)
    return tmp_path


RECIPE = train.DiffusionRecipe(steps=6, batch_size=4, warmup=1)


def _weights(unet, te):
    return {**{"unet." + k: v.clone() for k, v in unet.state_dict().items()},
            **{"te." + k: v.clone() for k, v in te.state_dict().items()}}


def test_killed_training_resumes_to_identical_weights(small_world, monkeypatch):
    unet, te, report = train.train_diffusion(small_world, RECIPE, desc="base test")
    uninterrupted = _weights(unet, te)
    assert report["weights"].startswith("EMA")
    assert not (small_world / ".checkpoints" / "base.pt").exists()  # removed once finished

    real_update, calls = train._ema_update, []

    def dying_update(*args):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt("killed")
        real_update(*args)

    monkeypatch.setattr(train, "_ema_update", dying_update)
    with pytest.raises(KeyboardInterrupt):
        train.train_diffusion(small_world, RECIPE, desc="base test")
    assert (small_world / ".checkpoints" / "base.pt").exists()
    monkeypatch.setattr(train, "_ema_update", real_update)
    unet2, te2, report2 = train.train_diffusion(small_world, RECIPE, desc="base test")
    resumed = _weights(unet2, te2)
    assert resumed.keys() == uninterrupted.keys()
    for k in uninterrupted:
        assert torch.equal(resumed[k], uninterrupted[k]), k
    assert np.isclose(report2["final_loss"], report["final_loss"])


def test_checkpoint_of_another_recipe_is_not_resumed(small_world, monkeypatch, capsys):
    def dying_update(*args):
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(train, "CHECKPOINT_EVERY", 1)
    real_update = train._ema_update
    calls = []
    monkeypatch.setattr(train, "_ema_update", lambda *a: (calls.append(1), real_update(*a)) if len(calls) < 2
                        else dying_update())
    with pytest.raises(KeyboardInterrupt):
        train.train_diffusion(small_world, RECIPE, desc="base test")
    monkeypatch.setattr(train, "_ema_update", real_update)
    other = train.DiffusionRecipe(steps=3, batch_size=4, warmup=1, lr=1e-4)
    train.train_diffusion(small_world, other, desc="base test")
    assert "recipe changed since the checkpoint; starting afresh" in capsys.readouterr().out
