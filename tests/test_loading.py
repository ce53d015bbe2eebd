import os
import pickle

import pytest
import torch
from safetensors.torch import save_file

from memora_bench.models.loading import CheckpointError, load_submission_pipeline
from memora_bench.specs import BaseModel, Checkpoint, Submission, sha256_file
from tests.helpers import tiny_pipeline


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("base")
    tiny_pipeline(seed=1).save_pretrained(str(folder))
    return folder


def _submission(tmp_path, filename, component, sha=None) -> Submission:
    path = tmp_path / filename
    digest = sha or (sha256_file(path) if path.is_file() else _folder_sha(path))
    return Submission(name="s", method="m", authors=("a",), reference="r", base_model=BaseModel("x", "1"),
                      erased=("seven",), tasks=(), checkpoint=Checkpoint(filename, digest, component),
                      path=str(tmp_path / "submission.yaml"))


def _folder_sha(path):
    from memora_bench.models.loading import folder_sha256

    return folder_sha256(path)


def _base(base_dir) -> BaseModel:
    return BaseModel(str(base_dir), "local")


def test_partial_unet_replaces_exactly_the_given_tensors(tmp_path, base_dir):
    base = load_submission_pipeline(Submission("o", "none", (), "", BaseModel(str(base_dir), "l"), (), (), None,
                                               control=True), _base(base_dir))
    key = "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight"
    new = torch.randn_like(base.unet.state_dict()[key])
    save_file({key: new}, str(tmp_path / "w.safetensors"))
    pipe = load_submission_pipeline(_submission(tmp_path, "w.safetensors", "unet"), _base(base_dir))
    sd, ref = pipe.unet.state_dict(), base.unet.state_dict()
    assert torch.equal(sd[key], new)
    assert all(torch.equal(sd[k], ref[k]) for k in ref if k != key)


def test_unet_problems_are_all_reported(tmp_path, base_dir):
    base_sd = tiny_pipeline(seed=1).unet.state_dict()
    k1, k2 = "conv_in.weight", "conv_out.bias"
    bad = {
        k1: torch.zeros(3, 3),  # wrong shape
        k2: torch.full_like(base_sd[k2], float("nan")),  # NaN
        "time_embedding.linear_1.bias": torch.zeros_like(base_sd["time_embedding.linear_1.bias"], dtype=torch.int64),
        "not.a.key": torch.zeros(1),
        "model.diffusion_model.input_blocks.0.0.weight": torch.zeros(1),
    }
    save_file(bad, str(tmp_path / "bad.safetensors"))
    with pytest.raises(CheckpointError) as info:
        load_submission_pipeline(_submission(tmp_path, "bad.safetensors", "unet"), _base(base_dir))
    text = str(info.value)
    assert "'conv_in.weight' has shape (3, 3)" in text
    assert "'conv_out.bias' contains NaN or Inf" in text
    assert "expected a floating-point tensor" in text
    assert "unexpected tensor 'not.a.key'" in text
    assert "CompVis/LDM key layout" in text and "convert_original_stable_diffusion_to_diffusers" in text
    assert len(info.value.problems) == 5


def test_sha_mismatch_is_refused(tmp_path, base_dir):
    save_file({"conv_out.bias": torch.zeros(4)}, str(tmp_path / "w.safetensors"))
    with pytest.raises(CheckpointError, match="the manifest says"):
        load_submission_pipeline(_submission(tmp_path, "w.safetensors", "unet", sha="0" * 64), _base(base_dir))


def test_text_encoder_override(tmp_path, base_dir):
    te = tiny_pipeline(seed=5).text_encoder.state_dict()
    save_file({k: v.contiguous() for k, v in te.items()}, str(tmp_path / "te.safetensors"))
    pipe = load_submission_pipeline(_submission(tmp_path, "te.safetensors", "text_encoder"), _base(base_dir))
    assert all(torch.equal(pipe.text_encoder.state_dict()[k], v) for k, v in te.items())
    # The same file declared as a UNet is refused: the keys are not UNet keys.
    with pytest.raises(CheckpointError, match="unexpected tensor"):
        load_submission_pipeline(_submission(tmp_path, "te.safetensors", "unet"), _base(base_dir))


def test_weights_only_pt_is_accepted(tmp_path, base_dir):
    torch.save({"state_dict": {"conv_out.bias": torch.ones(4)}}, str(tmp_path / "w.pt"))
    pipe = load_submission_pipeline(_submission(tmp_path, "w.pt", "unet"), _base(base_dir))
    assert torch.equal(pipe.unet.state_dict()["conv_out.bias"], torch.ones(4))


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_runs_code_is_refused_unrun(tmp_path, base_dir):
    marker = tmp_path / "PWNED"
    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"conv_out.bias": _Evil(marker)}, f)
    with pytest.raises(CheckpointError, match="not a weights-only torch file"):
        load_submission_pipeline(_submission(tmp_path, "evil.pt", "unet"), _base(base_dir))
    assert not marker.exists(), "unpickling ran code"


def test_malformed_safetensors_and_unknown_format(tmp_path, base_dir):
    (tmp_path / "bad.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(CheckpointError, match="malformed safetensors"):
        load_submission_pipeline(_submission(tmp_path, "bad.safetensors", "unet"), _base(base_dir))
    (tmp_path / "w.ckpt2").write_bytes(b"abc")
    with pytest.raises(CheckpointError, match="unknown checkpoint format"):
        load_submission_pipeline(_submission(tmp_path, "w.ckpt2", "unet"), _base(base_dir))


def test_pipeline_folder(tmp_path, base_dir):
    other = tiny_pipeline(seed=9)
    other.save_pretrained(str(tmp_path / "pipe"))
    pipe = load_submission_pipeline(_submission(tmp_path, "pipe", "pipeline"), _base(base_dir))
    k = "conv_in.weight"
    assert torch.equal(pipe.unet.state_dict()[k], other.unet.state_dict()[k])


def test_lora_adapter_is_fused(tmp_path, base_dir):
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    donor = tiny_pipeline(seed=1)
    donor.unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"],
                                      init_lora_weights=False))
    lora = {f"unet.{k}": v for k, v in get_peft_model_state_dict(donor.unet).items()}
    save_file(lora, str(tmp_path / "lora.safetensors"))
    base = tiny_pipeline(seed=1)
    pipe = load_submission_pipeline(_submission(tmp_path, "lora.safetensors", "lora"), _base(base_dir))
    k = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight"
    assert not torch.equal(pipe.unet.state_dict()[k], base.unet.state_dict()[k])
    # A file whose keys match nothing is refused rather than silently ignored.
    save_file({"unet.nothing.lora_A.weight": torch.zeros(4, 4)}, str(tmp_path / "empty.safetensors"))
    with pytest.raises(CheckpointError):
        load_submission_pipeline(_submission(tmp_path, "empty.safetensors", "lora"), _base(base_dir))


def test_delta8_round_trip_error_is_below_half_a_step():
    from memora_bench.models import delta

    torch.manual_seed(0)
    base = {"w": torch.randn(8, 4, 3, 3), "b": torch.randn(8), "s": torch.tensor(2.0)}
    new = {k: v + 0.01 * torch.randn_like(v) for k, v in base.items()}
    new["z"] = base["w"].clone()  # a tensor that did not change at all
    base["z"] = base["w"]
    decoded = delta.decode(delta.encode(new, base), base, "f")
    for k in new:
        change = (new[k] - base[k]).reshape(len(new[k]) if new[k].dim() else 1, -1).abs().amax(1)
        err = (decoded[k] - new[k]).reshape(change.shape[0], -1).abs().amax(1)
        assert (err <= change / 254 + 1e-7).all(), k
    assert torch.equal(decoded["z"], base["z"])
    assert delta.max_relative_error(new, base) <= 1 / 254 + 1e-6


def test_delta8_component_is_applied_and_checked(tmp_path, base_dir):
    from memora_bench.models import delta

    ref = load_submission_pipeline(Submission("o", "none", (), "", BaseModel(str(base_dir), "l"), (), (), None,
                                              control=True), _base(base_dir)).unet.state_dict()
    key = "down_blocks.0.resnets.0.conv1.weight"
    new = {key: ref[key] + 0.05}
    save_file(delta.encode(new, ref), str(tmp_path / "d.safetensors"))
    sd = load_submission_pipeline(_submission(tmp_path, "d.safetensors", "unet-delta8"), _base(base_dir)).unet.state_dict()
    assert torch.allclose(sd[key], new[key], atol=1e-6)
    assert all(torch.equal(sd[k], ref[k]) for k in ref if k != key)

    bad = delta.encode(new, ref)
    bad[key + ".delta_q"] = bad[key + ".delta_q"].float()
    bad["nope.weight.delta_q"] = torch.zeros(2, dtype=torch.int8)
    bad["stray"] = torch.zeros(1)
    save_file(bad, str(tmp_path / "bad.safetensors"))
    with pytest.raises(CheckpointError) as info:
        load_submission_pipeline(_submission(tmp_path, "bad.safetensors", "unet-delta8"), _base(base_dir))
    text = str(info.value)
    assert "expected torch.int8" in text and "'nope.weight' needs both" in text and "'stray' is neither" in text
