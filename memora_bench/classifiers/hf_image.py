"""Hugging Face image classifiers, as UnlearnDiffAtk uses them for SD-1.4 tasks.

- ``imagenet-resnet50``: ``microsoft/resnet-50`` (ImageNet-1k); an object is shown when its class is the
  top-1 prediction (church, garbage truck, parachute, tench). ``$MEMORA_BENCH_RESNET50`` names another folder
  or Hub id (a machine without the Hub; the end-to-end test's tiny random ResNet).
- ``art-style``: a ViT fine-tuned on WikiArt artists (UnlearnDiffAtk's style classifier); Van Gogh is
  shown when he is the top-1 artist. The reference distributes its own checkpoint, so its location is
  given by ``$MEMORA_BENCH_ART_CLASSIFIER`` (a folder or a Hub id).

Weights are fetched by ``transformers`` on the user's machine (cached by the Hub client); the sha256 of the
weight file actually loaded is recorded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from memora_bench.classifiers.mini import top1_hits
from memora_bench.specs import sha256_file

RESNET50 = ("microsoft/resnet-50", "main")


@dataclass
class HFImageClassifier:
    model: object
    processor: object
    id: str
    sha256: str
    labels: tuple[str, ...]

    def scores(self, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
        import torch
        from PIL import Image

        out = []
        for i in range(0, len(images), batch_size):
            batch = [Image.fromarray(np.asarray(im, np.uint8)) for im in images[i : i + batch_size]]
            inputs = self.processor(batch, return_tensors="pt")
            with torch.inference_mode():
                out.append(torch.softmax(self.model(**inputs).logits, dim=-1).numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.labels)), np.float32)

    def hits(self, scores: np.ndarray, label: str, threshold: float) -> np.ndarray:
        return top1_hits(scores, self.labels, label, threshold)

    def describe(self, row: np.ndarray, k: int = 5) -> dict:
        """The top-k labels of one image (a 1000-way score vector is not stored whole)."""
        top = np.argsort(-row)[:k]
        return {self.labels[j]: round(float(row[j]), 6) for j in top}


def _weights_sha256(folder: Path) -> str:
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (folder / name).exists():
            return sha256_file(folder / name)
    raise FileNotFoundError(f"no model.safetensors or pytorch_model.bin in {folder}")


def load_hf(source: str, revision: str | None = None, classifier_id: str | None = None) -> HFImageClassifier:
    """An image classifier from a local folder or a Hub id (with revision), labels from ``id2label``."""
    from huggingface_hub import snapshot_download
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    folder = Path(source) if Path(source).is_dir() else Path(snapshot_download(source, revision=revision))
    model = AutoModelForImageClassification.from_pretrained(str(folder)).eval()
    processor = AutoImageProcessor.from_pretrained(str(folder))
    labels = tuple(model.config.id2label[i] for i in range(len(model.config.id2label)))
    return HFImageClassifier(model, processor, classifier_id or source, _weights_sha256(folder), labels)


def load_resnet50(source: str | None = None) -> HFImageClassifier:
    """ImageNet ResNet-50 (``microsoft/resnet-50`` unless ``source`` or ``$MEMORA_BENCH_RESNET50`` names another
    folder or Hub id)."""
    source = source or os.environ.get("MEMORA_BENCH_RESNET50")
    return load_hf(source or RESNET50[0], None if source else RESNET50[1], "imagenet-resnet50")


def load_art_style(source: str | None = None) -> HFImageClassifier:
    """The WikiArt style classifier from ``source`` or ``$MEMORA_BENCH_ART_CLASSIFIER``."""
    source = source or os.environ.get("MEMORA_BENCH_ART_CLASSIFIER")
    if not source:
        raise ValueError("set MEMORA_BENCH_ART_CLASSIFIER to the folder or Hub id of the WikiArt style classifier "
                         "(UnlearnDiffAtk's ViT checkpoint); see docs/gpu.md")
    return load_hf(source, None, "art-style")
