"""Loaders for the formats in which SD-1.4 unlearned checkpoints are released (issue 10), each tested on a tiny
random pipeline with SD-1.4's layout (tests/helpers.py: the same module names, so the same keys):

- a diffusers UNet state dict saved with ``torch.save`` (ESD, FMN, UCE, SalUn, EraseDiff, ScissorHands);
- a transformers ``CLIPTextModel`` folder (AdvUnlearn's ``OPTML-Group/AdvUnlearn`` sub-folders), in both the
  transformers 4 (``text_model.*``, position ids saved) and transformers 5 key layouts;
- a diffusers pipeline folder with pickle-format ``.bin`` weights (MACE);
- an SPM adapter in the kohya ``lora_unet_*`` layout.
"""

import json
import os
import pickle

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from memora_bench.models.loading import CheckpointError, folder_sha256, load_submission_pipeline
from memora_bench.specs import BaseModel, Checkpoint, Submission, sha256_file
from tests.helpers import sd14_shaped_pipeline


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sd14-shaped-base")
    sd14_shaped_pipeline(seed=1).save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def base(base_dir):
    return sd14_shaped_pipeline(seed=1)


def _load(tmp_path, name, component, base_dir):
    path = tmp_path / name
    digest = sha256_file(path) if path.is_file() else folder_sha256(path)
    sub = Submission(name="s", method="m", authors=("a",), reference="r", base_model=BaseModel("x", "1"),
                     erased=("nudity",), tasks=(), checkpoint=Checkpoint(name, digest, component),
                     path=str(tmp_path / "submission.yaml"))
    return load_submission_pipeline(sub, BaseModel(str(base_dir), "local"))


def _same(a: dict, b: dict) -> bool:
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_full_unet_pt_as_esd_releases_it(tmp_path, base_dir):
    donor = sd14_shaped_pipeline(seed=2).unet.state_dict()
    torch.save(donor, tmp_path / "diffusers-nudity-ESDu1-UNET.pt")
    pipe = _load(tmp_path, "diffusers-nudity-ESDu1-UNET.pt", "unet", base_dir)
    assert _same(pipe.unet.state_dict(), donor)


def test_partial_unet_pt_as_uce_edits_it(tmp_path, base_dir, base):
    ref = base.unet.state_dict()
    edited = {k: torch.randn_like(v) for k, v in ref.items() if "attn2.to_k" in k or "attn2.to_v" in k}
    assert len(edited) == 32  # 16 cross-attention layers in SD-1.4's layout, key and value each
    torch.save(edited, tmp_path / "uce.pt")
    sd = _load(tmp_path, "uce.pt", "unet", base_dir).unet.state_dict()
    assert all(torch.equal(sd[k], edited[k]) for k in edited)
    assert all(torch.equal(sd[k], ref[k]) for k in ref if k not in edited)


def _te_folder(folder, te, layout: str):
    folder.mkdir()
    if layout == "transformers5":
        te.save_pretrained(str(folder))
        return
    # transformers 4 (what AdvUnlearn's sub-folders hold): prefixed keys, position ids stored, pickle format
    sd = {"text_model." + k: v for k, v in te.state_dict().items()}
    sd["text_model.embeddings.position_ids"] = torch.arange(77).unsqueeze(0)
    torch.save(sd, folder / "pytorch_model.bin")
    (folder / "config.json").write_text(json.dumps(te.config.to_dict()))


@pytest.mark.parametrize("layout", ["transformers4", "transformers5"])
def test_text_encoder_folder_as_advunlearn_releases_it(tmp_path, base_dir, layout):
    donor = sd14_shaped_pipeline(seed=3).text_encoder
    _te_folder(tmp_path / "nudity_unlearned", donor, layout)
    pipe = _load(tmp_path, "nudity_unlearned", "text_encoder", base_dir)
    assert _same(pipe.text_encoder.state_dict(), donor.state_dict())
    ids = pipe.tokenizer(["a photo of a church"], padding="max_length", max_length=77, return_tensors="pt").input_ids
    with torch.inference_mode():
        assert torch.equal(pipe.text_encoder(ids)[0], donor(ids)[0])


def test_text_encoder_folder_problems(tmp_path, base_dir):
    donor = sd14_shaped_pipeline(seed=3).text_encoder
    folder = tmp_path / "te"
    _te_folder(folder, donor, "transformers4")
    config = json.loads((folder / "config.json").read_text())
    config["num_hidden_layers"] = 12
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="num_hidden_layers is 12, the base model's text encoder has 2"):
        _load(tmp_path, "te", "text_encoder", base_dir)
    config["num_hidden_layers"] = 2
    (folder / "config.json").write_text(json.dumps(config))
    sd = torch.load(folder / "pytorch_model.bin", weights_only=True)
    del sd["text_model.final_layer_norm.weight"]
    torch.save(sd, folder / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="missing tensor 'final_layer_norm.weight'"):
        _load(tmp_path, "te", "text_encoder", base_dir)


def test_prefixed_text_encoder_file_is_accepted(tmp_path, base_dir):
    donor = sd14_shaped_pipeline(seed=4).text_encoder.state_dict()
    key = "encoder.layers.0.self_attn.k_proj.weight"
    save_file({"text_model." + key: donor[key]}, str(tmp_path / "te.safetensors"))
    assert torch.equal(_load(tmp_path, "te.safetensors", "text_encoder", base_dir).text_encoder.state_dict()[key],
                       donor[key])


def _pickle_format_pipeline(folder, donor):
    """What MACE's pipelines hold (diffusers / transformers 4 era): every weight file a ``.bin`` pickle."""
    donor.save_pretrained(str(folder), safe_serialization=False)
    te = folder / "text_encoder"
    (te / "model.safetensors").unlink()
    torch.save({"text_model." + k: v for k, v in donor.text_encoder.state_dict().items()}, te / "pytorch_model.bin")


def test_pipeline_folder_with_bin_weights_as_mace_releases_it(tmp_path, base_dir):
    donor = sd14_shaped_pipeline(seed=5)
    _pickle_format_pipeline(tmp_path / "mace", donor)
    assert list((tmp_path / "mace").rglob("*.bin")) and not list((tmp_path / "mace").rglob("*.safetensors"))
    pipe = _load(tmp_path, "mace", "pipeline", base_dir)
    assert _same(pipe.unet.state_dict(), donor.unet.state_dict())
    assert _same(pipe.text_encoder.state_dict(), donor.text_encoder.state_dict())


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pipeline_folder_with_code_in_a_bin_is_refused_unrun(tmp_path, base_dir):
    _pickle_format_pipeline(tmp_path / "mace", sd14_shaped_pipeline(seed=5))
    marker = tmp_path / "PWNED"
    with open(tmp_path / "mace" / "unet" / "diffusion_pytorch_model.bin", "wb") as f:
        pickle.dump({"conv_in.weight": _Evil(marker)}, f)
    with pytest.raises(CheckpointError, match="not a weights-only torch file"):
        _load(tmp_path, "mace", "pipeline", base_dir)
    assert not marker.exists()


SPM_TARGETS = {
    # SPM name -> module path in the UNet: a Linear, a 1x1 convolution (SD-1.4's proj_in), a 3x3 convolution
    "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k": "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k",
    "lora_unet_up_blocks_2_attentions_1_proj_in": "up_blocks.2.attentions.1.proj_in",
    "lora_unet_mid_block_resnets_0_conv1": "mid_block.resnets.0.conv1",
}


def _spm_adapter(unet, rank=1, alpha=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    modules = dict(unet.named_modules())
    sd = {}
    for name, path in SPM_TARGETS.items():
        m = modules[path]
        if isinstance(m, torch.nn.Linear):
            down, up = (rank, m.in_features), (m.out_features, rank)
        else:
            down, up = (rank, m.in_channels, *m.kernel_size), (m.out_channels, rank, 1, 1)
        sd[name + ".lora_down.weight"] = torch.randn(down, generator=g) * 0.1
        sd[name + ".lora_up.weight"] = torch.randn(up, generator=g) * 0.1
        sd[name + ".alpha"] = torch.tensor(alpha)
    return sd


def test_spm_adapter_fuses_to_the_reference_forward(tmp_path, base_dir, base):
    """The fused module's output equals SPM's layer: org(x) + alpha / rank * up(down(x))."""
    sd = _spm_adapter(base.unet, rank=2, alpha=1.0)
    save_file(sd, str(tmp_path / "spm.safetensors"))
    fused = dict(_load(tmp_path, "spm.safetensors", "spm", base_dir).unet.named_modules())
    original = dict(base.unet.named_modules())
    torch.manual_seed(0)
    for name, path in SPM_TARGETS.items():
        m, f = original[path], fused[path]
        down, up = sd[name + ".lora_down.weight"], sd[name + ".lora_up.weight"]
        with torch.no_grad():
            if isinstance(m, torch.nn.Linear):
                x = torch.randn(3, m.in_features)
                want = m(x) + 0.5 * F.linear(F.linear(x, down), up)
            else:
                x = torch.randn(1, m.in_channels, 8, 8)
                want = m(x) + 0.5 * F.conv2d(F.conv2d(x, down, stride=m.stride, padding=m.padding), up)
            assert torch.allclose(f(x), want, atol=1e-5), path
    changed = {k for k, v in _load(tmp_path, "spm.safetensors", "spm", base_dir).unet.state_dict().items()
               if not torch.equal(v, base.unet.state_dict()[k])}
    assert changed == {p + ".weight" for p in SPM_TARGETS.values()}


def test_spm_adapter_problems_are_all_reported(tmp_path, base_dir, base):
    sd = _spm_adapter(base.unet)
    sd["lora_unet_down_blocks_9_attentions_0_proj_in.lora_down.weight"] = torch.zeros(1, 32, 1, 1)
    sd["lora_unet_down_blocks_9_attentions_0_proj_in.lora_up.weight"] = torch.zeros(32, 1, 1, 1)
    del sd["lora_unet_up_blocks_2_attentions_1_proj_in.lora_up.weight"]
    sd["lora_unet_mid_block_resnets_0_conv1.lora_up.weight"] = torch.zeros(7, 1, 1, 1)
    sd["something_else"] = torch.zeros(1)
    save_file(sd, str(tmp_path / "bad.safetensors"))
    with pytest.raises(CheckpointError) as err:
        _load(tmp_path, "bad.safetensors", "spm", base_dir)
    text = str(err.value)
    assert "unexpected tensor 'something_else'" in text
    assert "'lora_unet_down_blocks_9_attentions_0_proj_in' names no Linear or Conv2d" in text
    assert "'lora_unet_up_blocks_2_attentions_1_proj_in' needs both" in text
    assert "'lora_unet_mid_block_resnets_0_conv1': lora_up (7, 1, 1, 1)" in text
    assert len(err.value.problems) == 4
