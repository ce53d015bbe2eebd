"""The miniature world's digit (10-way) and style (plain / bold / italic) classifiers.

One small CNN, two heads' worth of weights. Images are 32x32; RGB input is averaged to grey, as the
miniature pipeline draws grey digits on three equal channels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from memora_bench.miniworld import WorldError, load_manifest, verify_files
from memora_bench.paths import world_dir
from memora_bench.specs import sha256_file

DIGIT_LABELS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
STYLE_LABELS = ("plain", "bold", "italic")
FEATURE_DIM = 128


class SmallCNN(nn.Module):
    """conv(32) conv(32) pool conv(64) conv(64) pool conv(128) pool -> 128 features -> classes."""

    def __init__(self, n_classes: int):
        super().__init__()

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]

        self.body = nn.Sequential(
            *block(1, 32), *block(32, 32), nn.MaxPool2d(2),
            *block(32, 64), *block(64, 64), nn.MaxPool2d(2),
            *block(64, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(FEATURE_DIM, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))


def to_grey_tensor(images: np.ndarray) -> torch.Tensor:
    """(N, H, W) grey or (N, H, W, 3) RGB images, uint8 or float in [0, 1], to a (N, 1, 32, 32) tensor."""
    arr = np.asarray(images)
    arr = arr.astype(np.float32) / 255.0 if arr.dtype == np.uint8 else arr.astype(np.float32)
    if arr.ndim == 4:
        arr = arr.mean(axis=-1)
    if arr.shape[1:] != (32, 32):
        raise ValueError(f"miniature classifiers take 32x32 images, got {arr.shape[1:]}")
    return torch.from_numpy(arr).unsqueeze(1)


@dataclass
class MiniClassifier:
    """A loaded miniature classifier: ``probs`` and ``features`` for a batch of images."""

    name: str
    labels: tuple[str, ...]
    model: SmallCNN
    sha256: str

    @torch.inference_mode()
    def probs(self, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
        x = to_grey_tensor(images)
        out = [torch.softmax(self.model(x[i : i + batch_size]), dim=1) for i in range(0, len(x), batch_size)]
        return torch.cat(out).numpy() if out else np.zeros((0, len(self.labels)), np.float32)

    def log_probs(self, images: torch.Tensor) -> torch.Tensor:
        """Differentiable log-probabilities (N, labels) of float RGB images (N, 3, 32, 32) in [0, 1] (the
        classifier-guidance probe's gradient)."""
        return torch.log_softmax(self.model(images.mean(dim=1, keepdim=True)), dim=1)

    @torch.inference_mode()
    def features(self, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
        x = to_grey_tensor(images)
        out = [self.model.features(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        return torch.cat(out).numpy() if out else np.zeros((0, FEATURE_DIM), np.float32)


def load_mini_classifier(path: Path, labels: tuple[str, ...], expected_sha256: str | None = None) -> MiniClassifier:
    """Load a classifier from safetensors, refusing a file whose sha256 is not the expected one."""
    from safetensors.torch import load_file

    if not path.exists():
        raise FileNotFoundError(f"classifier weights missing: {path}")
    digest = sha256_file(path)
    if expected_sha256 is not None and digest != expected_sha256:
        raise ValueError(f"classifier weights {path} have sha256 {digest}, expected {expected_sha256}")
    model = SmallCNN(len(labels))
    model.load_state_dict(load_file(str(path)), strict=True)
    model.eval()
    return MiniClassifier(path.stem, labels, model, digest)


def top1_hits(probs: np.ndarray, labels: tuple[str, ...], label: str, threshold: float) -> np.ndarray:
    """An image shows ``label`` when it is the top-1 class with probability >= ``threshold``."""
    if label not in labels:
        raise KeyError(f"label {label!r} is not one of {labels}")
    j = labels.index(label)
    return (probs.argmax(1) == j) & (probs[:, j] >= threshold)


class _Registered(MiniClassifier):
    def scores(self, images: np.ndarray) -> np.ndarray:
        return self.probs(images)

    def hits(self, scores: np.ndarray, label: str, threshold: float) -> np.ndarray:
        return top1_hits(scores, self.labels, label, threshold)

    @property
    def id(self) -> str:
        return f"mini-{self.name}"


def load_world_classifier(kind: str, world=None) -> _Registered:
    """The world's ``digit`` or ``style`` classifier, checked against the world manifest's sha256."""
    labels = DIGIT_LABELS if kind == "digit" else STYLE_LABELS
    world = Path(world) if world else world_dir()
    manifest = load_manifest(world)
    rel = f"classifiers/{kind}.safetensors"
    if rel not in manifest["files"]:
        raise WorldError(f"world.json lists no {rel}; rebuild the world with `memora-bench world train`")
    verify_files(manifest, world, only="classifiers")
    clf = load_mini_classifier(world / rel, labels, manifest["files"][rel]["sha256"])
    return _Registered(clf.name, clf.labels, clf.model, clf.sha256)


def load_digit(world=None) -> _Registered:
    """The shipped 10-way digit classifier, checked against world.json."""
    return load_world_classifier("digit", world)


def load_style(world=None) -> _Registered:
    """The shipped plain / bold / italic classifier, checked against world.json."""
    return load_world_classifier("style", world)
