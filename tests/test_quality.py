"""CLIP score and FID on captions outside the task (the SD-1.4 tasks' `quality` block).

The real models (open_clip ViT-B-32/openai, torch-fidelity's Inception-v3) are downloaded on a user's machine
and cannot be here; these tests run the same code with a tiny open_clip model built from a config and a small
fixed feature extractor, and check the numbers against a computation written out by hand.
"""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
import torch

from memora_bench import quality
from memora_bench.paths import repo_root
from memora_bench.prompt_sources import PromptSource, PromptSourceError, convert
from memora_bench.scoring import frechet_distance
from memora_bench.specs import SpecError, load_task, prompts_csv, read_prompts

FIXTURES = repo_root() / "tests" / "fixtures"
TINY_CLIP = {"embed_dim": 16,
             "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
             "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    import open_clip

    folder = tmp_path_factory.mktemp("clipcfg")
    (folder / "tiny-test-clip.json").write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(folder)
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms("tiny-test-clip", pretrained=None)
    return quality.ClipScorer(model.eval(), preprocess, open_clip.get_tokenizer("tiny-test-clip"), "tiny-test-clip")


class PooledFeatures(torch.nn.Module):
    """A fixed feature extractor standing in for Inception: the grey image pooled to side x side."""

    def __init__(self, side: int = 4):
        super().__init__()
        self.side, self.num_features = side, side * side

    def forward(self, x):  # uint8, N x 3 x H x W
        return torch.nn.functional.adaptive_avg_pool2d(x.double().mean(1, keepdim=True), self.side).flatten(1)


def _images(n: int, seed: int, size: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_clip_cosines_are_those_of_each_image_with_its_caption(tiny_clip):
    images, captions = _images(5, 0), ["a cat", "a red bus", "two dogs on a bench", "a kitchen", "a church"]
    cos = tiny_clip.cosines(images, captions)
    from PIL import Image

    with torch.inference_mode():
        a = tiny_clip.model.encode_image(torch.stack([tiny_clip.preprocess(Image.fromarray(im)) for im in images]))
        b = tiny_clip.model.encode_text(tiny_clip.tokenizer(captions))
    by_hand = torch.nn.functional.cosine_similarity(a[:, None], b[None], dim=-1).double().numpy()  # image i x caption j
    np.testing.assert_allclose(cos, np.diag(by_hand), atol=1e-6)
    # pairing differently changes each image's score to that pair's, so captions really are matched per image
    np.testing.assert_allclose(tiny_clip.cosines(images, captions[::-1]), by_hand[np.arange(5), np.arange(5)[::-1]],
                               atol=1e-6)
    with pytest.raises(ValueError, match="5 images but 4 captions"):
        tiny_clip.cosines(images, captions[:4])


def _write_pngs(folder, images):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, im in enumerate(images):
        Image.fromarray(im).save(folder / f"real-{i:03d}.png")


def test_fid_equals_the_frechet_distance_of_the_same_features(tmp_path):
    real, fake = _images(40, 1), _images(30, 2) // 2  # darker: a clear distance
    _write_pngs(tmp_path / "real", real)
    files = quality.real_image_files(tmp_path / "real")
    stats = quality.real_statistics(files, PooledFeatures())
    value = quality.fid(fake, stats, PooledFeatures())
    f = PooledFeatures()
    by_hand = frechet_distance(f(torch.from_numpy(fake).permute(0, 3, 1, 2)).numpy(),
                               f(torch.from_numpy(real).permute(0, 3, 1, 2)).numpy())
    assert by_hand > 100
    assert value == pytest.approx(by_hand, rel=1e-6)
    assert quality.fid(real, stats, PooledFeatures()) == pytest.approx(0.0, abs=1e-6)


def test_real_image_folder_problems_are_clear(tmp_path):
    with pytest.raises(quality.QualityError, match="is not a folder"):
        quality.real_image_files(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("not an image")
    _write_pngs(tmp_path, _images(1, 0))
    with pytest.raises(quality.QualityError, match=r"holds 1 image file\(s\).*FID needs at least 2"):
        quality.real_image_files(tmp_path)


def test_folder_digest_changes_with_content_and_names(tmp_path):
    _write_pngs(tmp_path / "a", _images(3, 0))
    files = quality.real_image_files(tmp_path / "a")
    before = quality.folder_digest(files)
    assert quality.folder_digest(files) == before
    _write_pngs(tmp_path / "a", _images(3, 1))  # same names, other pixels
    assert quality.folder_digest(files) != before


def test_a_fetched_set_can_keep_its_first_rows_and_quoted_newlines_survive(tmp_path):
    upstream = ('case_number,prompt,evaluation_seed\n1,A cat on a mat.,11\n2,"A dog between its masters feet\n",22\n'
                '3,A bus.,33\n')
    src = PromptSource(url="file:///x.csv", concept="coco-caption", id_prefix="coco-", rows=2)
    text = convert(upstream, src)
    path = tmp_path / "p.csv"
    path.write_text(text)
    rows = read_prompts(path, hashlib.sha256(text.encode()).hexdigest())
    assert [(r.id, r.prompt, r.seed) for r in rows] == [("coco-1", "A cat on a mat.", 11),
                                                        ("coco-2", "A dog between its masters feet\n", 22)]
    with pytest.raises(PromptSourceError, match="has 3 rows, the card keeps the first 5"):
        convert(upstream, PromptSource(url="file:///x.csv", concept="c", rows=5))


QUALITY_CARD = """
quality:
  prompts: {{file: prompts/quality.csv, sha256: {sha}}}
  clip: {{model: tiny-test-clip, pretrained: none}}
  fid: {{real_images: MEMORA_BENCH_TEST_REAL_IMAGES}}
"""


def _quality_task(root, n_rows=6):
    shutil.copytree(FIXTURES / "tasks", root / "tasks")
    captions = ["a handwritten one", "a handwritten two, bold", "a handwritten four", "the digit 5",
                "a handwritten six in italic", "a handwritten nine"][:n_rows]
    text = prompts_csv([{"id": f"q-{i}", "prompt": c, "seed": 100 + i, "guidance": 7.5, "concept": "caption"}
                        for i, c in enumerate(captions)])
    (root / "tasks" / "prompts" / "quality.csv").write_text(text)
    card = root / "tasks" / "mini-seven-small.yaml"
    card.write_text(card.read_text() + QUALITY_CARD.format(sha=hashlib.sha256(text.encode()).hexdigest()))
    return card


@pytest.mark.parametrize("block, message", [
    ("quality:\n  prompts: {file: prompts/quality.csv, sha256: %s}\n",
     "missing required key 'quality.clip'"),
    ("quality:\n  prompts: {file: prompts/quality.csv, sha256: %s}\n  clip: {model: ViT-B-32}\n",
     "missing required key 'quality.clip.pretrained'"),
    ("quality:\n  prompts: {file: prompts/quality.csv, sha256: %s}\n  clip: {model: ViT-B-32, pretrained: openai}\n"
     "  fid: {real_images: /data/coco}\n", "'quality.fid.real_images' names an environment variable"),
    ("quality:\n  prompts: {file: prompts/quality.csv, sha256: %s}\n  clip: {model: ViT-B-32, pretrained: openai}\n"
     "  fids: {real_images: COCO}\n", "unknown key 'quality.fids' (did you mean 'fid'?)"),
    ("quality:\n  prompts: {file: prompts/quality.csv, sha256: %s}\n  clip: {model: ViT-B-32, pretrained: openai}\n",
     "quality.csv: sha256 is"),
])
def test_quality_block_problems_are_reported(tmp_path, block, message):
    card = _quality_task(tmp_path)
    base = card.read_text().split("\nquality:")[0] + "\n"
    sha = "0" * 64 if "sha256 is" in message else hashlib.sha256(
        (tmp_path / "tasks" / "prompts" / "quality.csv").read_bytes()).hexdigest()
    card.write_text(base + block % sha)
    with pytest.raises(SpecError) as err:
        load_task(card)
    assert message in str(err.value)


def test_evaluate_reports_clip_score_and_fid(tmp_path, monkeypatch, tiny_clip):
    """The whole path through `evaluate` on the miniature world, with the tiny CLIP and feature extractor."""
    from memora_bench import cli
    from memora_bench.results import load_result
    from memora_bench.digits import load_split

    card = _quality_task(tmp_path)
    task = load_task(card)
    assert task.quality.clip_model == "tiny-test-clip" and task.quality.real_images == "MEMORA_BENCH_TEST_REAL_IMAGES"
    real = np.repeat(load_split().heldout_images[:12, :, :, None], 3, axis=3).astype(np.uint8)
    _write_pngs(tmp_path / "real", real)
    monkeypatch.setenv("MEMORA_BENCH_TEST_REAL_IMAGES", str(tmp_path / "real"))
    monkeypatch.setattr(quality, "load_clip", lambda name, pretrained: tiny_clip)
    monkeypatch.setattr(quality, "fid_feature", lambda: PooledFeatures(2))  # 4 dims: 6 images fit a covariance
    (tmp_path / "benchmark").mkdir()
    suite = tmp_path / "benchmark" / "q.yaml"
    suite.write_text((FIXTURES / "benchmark" / "mini-small.yaml").read_text().replace("name: mini-small", "name: q"))
    assert cli.main(["evaluate", "original", "--suite", str(suite), "--out", str(tmp_path / "out"),
                     "--cache-dir", str(tmp_path / "cache")]) == 0
    data = load_result(tmp_path / "out" / "original" / "mini-seven-small.json")
    q = data["utility"]["quality"]
    lines = [json.loads(x) for x in (tmp_path / "out" / "original" / "mini-seven-small.images.jsonl").read_text()
             .splitlines() if json.loads(x)["prompt_set"] == "quality"]
    assert [x["prompt_id"] for x in lines] == [f"q-{i}" for i in range(6)]
    assert q["clip_score"]["n_images"] == 6 and q["clip_score"]["model"] == "tiny-test-clip"
    assert q["clip_score"]["value"] == pytest.approx(np.mean([x["scores"]["clip_cosine"] for x in lines]), abs=1e-6)
    # the same numbers from the cached images, computed by hand
    from memora_bench.cache import Cache

    cache = Cache(tmp_path / "cache")
    images = np.stack([cache.get_image(x["image_key"]) for x in lines])
    cos = tiny_clip.cosines(images, [x["prompt"] for x in lines])
    assert q["clip_score"]["value"] == pytest.approx(float(cos.mean()), abs=1e-6)
    f = PooledFeatures(2)
    by_hand = frechet_distance(f(torch.from_numpy(images).permute(0, 3, 1, 2)).numpy(),
                               f(torch.from_numpy(real).permute(0, 3, 1, 2)).numpy())
    assert q["fid"]["value"] == pytest.approx(by_hand, rel=1e-5)
    assert q["fid"]["n_generated"] == 6 and q["fid"]["n_real"] == 12
    assert q["fid"]["real_images_sha256"] == quality.folder_digest(quality.real_image_files(tmp_path / "real"))


def test_evaluate_without_the_real_image_folder_fails_with_the_variable_named(tmp_path, monkeypatch, tiny_clip,
                                                                             capsys):
    from memora_bench import cli

    _quality_task(tmp_path, n_rows=2)
    monkeypatch.delenv("MEMORA_BENCH_TEST_REAL_IMAGES", raising=False)
    monkeypatch.setattr(quality, "load_clip", lambda name, pretrained: tiny_clip)
    (tmp_path / "benchmark").mkdir()
    suite = tmp_path / "benchmark" / "q.yaml"
    suite.write_text((FIXTURES / "benchmark" / "mini-small.yaml").read_text().replace("name: mini-small", "name: q"))
    assert cli.main(["evaluate", "original", "--suite", str(suite), "--out", str(tmp_path / "out"),
                     "--cache-dir", str(tmp_path / "cache")]) == 1
    err = capsys.readouterr()
    assert "set $MEMORA_BENCH_TEST_REAL_IMAGES to a folder of them" in err.out + err.err
    assert not (tmp_path / "out" / "original" / "mini-seven-small.json").exists()
