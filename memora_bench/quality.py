"""Image quality on captions outside the task: CLIP score and FID, as AdvUnlearn measures them on SD-1.4.

The reference (OPTML-Group/AdvUnlearn ``train-scripts/img_retain_eval.py``) draws one image per COCO-10k
caption with the unlearned model, then reports

- **CLIP score**: the mean over images of ``logits_per_image / 100`` of ``openai/clip-vit-base-patch32``,
  i.e. the mean cosine similarity of image and caption embeddings (about 0.30 for SD-1.4). We compute it with
  ``open_clip`` (``ViT-B-32`` / ``openai`` are the same weights), from each image and its caption;
- **FID** between the generated images and real COCO images (the reference calls T2IBenchmark's
  ``calculate_fid`` on the two folders). We use torchmetrics' ``FrechetInceptionDistance`` (torch-fidelity's
  Inception-v3 port, 2048-d pool features, uint8 input resized by the metric itself). The real images are a
  folder the user provides (AdvUnlearn distributes its ``coco_10k`` folder; any COCO subset works), named by
  an environment variable in the task card; its content hash is recorded, and its Inception statistics are
  cached under that hash.

A task card pins the captions (``quality.prompts``, e.g. the first 1,000 rows of COCO-10k) and the CLIP
model; a result records both scores with their inputs. FID over 1,000 images is biased upwards compared with
10,000: compare it within one suite, not with a paper's FID over 10k.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from memora_bench.cache import cache_key
from memora_bench.context import ProbeContext, ProbeOutput

CODE_VERSION = 1
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
BATCH = 32


class QualityError(RuntimeError):
    """The quality measures cannot run as the card asks (a missing folder, no images)."""


@dataclass
class ClipScorer:
    """An open_clip model with its image transform and tokenizer."""

    model: object
    preprocess: object
    tokenizer: object
    id: str

    def cosines(self, images: np.ndarray, captions: list[str]) -> np.ndarray:
        """Cosine similarity of each image (uint8, N x H x W x 3) with its caption."""
        import torch
        from PIL import Image

        if len(images) != len(captions):
            raise ValueError(f"{len(images)} images but {len(captions)} captions")
        out = []
        for i in range(0, len(images), BATCH):
            x = torch.stack([self.preprocess(Image.fromarray(np.asarray(im, np.uint8)).convert("RGB"))
                             for im in images[i:i + BATCH]])
            t = self.tokenizer(list(captions[i:i + BATCH]))
            with torch.inference_mode():
                a = self.model.encode_image(x)
                b = self.model.encode_text(t)
                a = a / a.norm(dim=-1, keepdim=True)
                b = b / b.norm(dim=-1, keepdim=True)
                out.append((a * b).sum(-1).double().numpy())
        return np.concatenate(out) if out else np.zeros(0)


def load_clip(model_name: str, pretrained: str) -> ClipScorer:
    """open_clip's ``model_name`` with ``pretrained`` weights (fetched by open_clip from the Hub on first use)."""
    import open_clip

    model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=pretrained)
    return ClipScorer(model.eval(), preprocess, open_clip.get_tokenizer(model_name), f"open_clip:{model_name}/{pretrained}")


def real_image_files(folder: Path) -> list[Path]:
    """The image files of ``folder`` (not recursive), sorted by name."""
    if not folder.is_dir():
        raise QualityError(f"real images for FID: {folder} is not a folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if len(files) < 2:
        raise QualityError(f"real images for FID: {folder} holds {len(files)} image file(s) "
                           f"({', '.join(IMAGE_SUFFIXES)}); FID needs at least 2")
    return files


def folder_digest(files: list[Path]) -> str:
    """sha256 over the names and contents of ``files`` (what the real statistics are cached under)."""
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + b"\0" + hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def _uint8_chw(image) -> "torch.Tensor":  # noqa: F821
    import torch

    return torch.from_numpy(np.ascontiguousarray(np.asarray(image, np.uint8).transpose(2, 0, 1)))


def _metric(feature):
    from torchmetrics.image.fid import FrechetInceptionDistance

    return FrechetInceptionDistance(feature=2048 if feature is None else feature, normalize=False,
                                    reset_real_features=False)


STATE = ("real_features_sum", "real_features_cov_sum", "real_features_num_samples")


def real_statistics(files: list[Path], feature=None) -> dict:
    """The metric's real-image state (feature sum, sum of outer products, count) of ``files``. Real images
    come in every size: each is fed on its own (the metric resizes it to Inception's input)."""
    from PIL import Image

    metric = _metric(feature)
    for f in files:
        with Image.open(f) as im:
            metric.update(_uint8_chw(im.convert("RGB"))[None], real=True)
    return {k: getattr(metric, k).clone() for k in STATE}


def fid(generated: np.ndarray, real: dict, feature=None) -> float:
    """FID between ``generated`` (uint8, N x H x W x 3) and real statistics from :func:`real_statistics`."""
    import torch

    if len(generated) < 2:
        raise QualityError(f"FID needs at least 2 generated images, got {len(generated)}")
    metric = _metric(feature)
    for k in STATE:
        setattr(metric, k, real[k].clone())
    for i in range(0, len(generated), BATCH):
        metric.update(torch.stack([_uint8_chw(im) for im in generated[i:i + BATCH]]), real=False)
    return float(metric.compute())


def fid_feature():
    """The feature extractor FID uses: None means torchmetrics' Inception-v3 (2048-d). Tests replace it."""
    return None


def run(unit: ProbeContext) -> ProbeOutput:
    """CLIP score and (when the card names a real-image folder) FID of the submission's images of the task's
    quality captions; with the image lines (each image's cosine with its caption)."""
    q = unit.task.quality
    rows = unit.prompts("quality")
    records = unit.images(rows, "quality", per_prompt=1)
    images = np.stack([r["image"] for r in records])
    with unit.timer("clip_score"):
        scorer = load_clip(q.clip_model, q.clip_pretrained)
        cos = scorer.cosines(images, [r["row"].prompt for r in records])
    out = {"clip_score": {"value": round(float(cos.mean()), 6), "std": round(float(cos.std(ddof=1)), 6)
                          if len(cos) > 1 else 0.0, "model": scorer.id, "n_images": len(cos),
                          "definition": "mean cosine similarity of image and caption embeddings "
                                        "(the reference's logits_per_image / 100)"}}
    if q.real_images:
        folder = os.environ.get(q.real_images, "")
        if not folder:
            raise QualityError(f"task {unit.task.name} computes FID against real images: set ${q.real_images} "
                               f"to a folder of them (e.g. AdvUnlearn's coco_10k images; see docs/gpu.md)")
        with unit.timer("fid"):
            files = real_image_files(Path(folder))
            feature = fid_feature()
            digest = folder_digest(files)
            key = cache_key({"stage": "fid_real", "code_version": CODE_VERSION, "folder": digest,
                             "feature": "inception-v3-2048" if feature is None else repr(feature)})
            real = unit.cache.get_tensors(key)
            if real is None:
                real = real_statistics(files, feature)
                unit.cache.put_tensors(key, real)
            value = fid(images, real, feature)
        out["fid"] = {"value": round(value, 6), "features": "torchmetrics FrechetInceptionDistance, Inception-v3 "
                      "pool (2048)" if feature is None else repr(feature), "n_generated": len(images),
                      "n_real": len(files), "real_images_sha256": digest}
    lines = [{"probe": "utility", "prompt_set": "quality", "prompt_id": r["row"].id, "prompt": r["row"].prompt,
              "seed": r["seed"], "guidance": r["row"].guidance, "concept": r["row"].concept,
              "image_key": r["image_key"], "classifier": scorer.id, "scores": {"clip_cosine": round(float(c), 6)},
              "hit": None} for r, c in zip(records, cos)]
    return ProbeOutput(out, lines)
