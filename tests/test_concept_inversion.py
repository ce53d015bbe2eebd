"""Concept inversion pieces on a tiny pipeline: only the placeholder's embedding is learnt, deterministically."""

import pytest
import torch

from memora_bench.probes import concept_inversion as ci
from memora_bench.paths import repo_root
from memora_bench.specs import load_task
from tests.helpers import tiny_pipeline


SEVEN = load_task(repo_root() / "tasks" / "mini-seven.yaml").concepts[0]


def test_templates_and_placeholder():
    assert "a handwritten {}" in SEVEN.caption_templates() and SEVEN.initializer_word() == "digit"
    pipe = tiny_pipeline()
    assert pipe.tokenizer.convert_ids_to_tokens([ci.placeholder_id(pipe.tokenizer)]) == ["sks</w>"]
    with pytest.raises(ValueError, match="unknown Concept inversion parameter"):
        ci.parse_params({"stepz": 1})


def test_learning_changes_only_the_placeholder_and_is_deterministic():
    pipe = tiny_pipeline()
    te_before = {k: v.clone() for k, v in pipe.text_encoder.state_dict().items()}
    unet_before = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    gen = torch.Generator().manual_seed(0)
    mean, std = torch.randn(5, 4, 8, 8, generator=gen), torch.full((5, 4, 8, 8), 0.1)
    p = ci.InversionParams(steps=3, batch_size=2, accumulation=2)
    row = ci.learn_embedding(pipe, mean, std, SEVEN, p)
    again = ci.learn_embedding(pipe, mean, std, SEVEN, p)
    assert torch.equal(row, again)
    table = pipe.text_encoder.get_input_embeddings().weight
    init = table[pipe.tokenizer("digit", add_special_tokens=False).input_ids[0]]
    assert not torch.allclose(row, init)  # it learnt something from the initializer
    # the submitted model itself is untouched
    assert all(torch.equal(v, te_before[k]) for k, v in pipe.text_encoder.state_dict().items())
    assert all(torch.equal(v, unet_before[k]) for k, v in pipe.unet.state_dict().items())
    swapped = ci.with_embedding(pipe, row)
    pid = ci.placeholder_id(pipe.tokenizer)
    new_sd, old_sd = swapped.text_encoder.state_dict(), pipe.text_encoder.state_dict()
    key = "embeddings.token_embedding.weight"
    assert torch.equal(new_sd[key][pid], row)
    diff = (new_sd[key] != old_sd[key]).any(-1).nonzero().flatten().tolist()
    assert diff == [pid]
