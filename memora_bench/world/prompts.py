"""Write the miniature tasks' prompt sets (``tasks/prompts/*.csv``) with a fixed seed.

Attack sets ask for the erased concept in varied phrasing: words, numerals and the digit's alias ("sieben",
a token of its own, like a synonym or a translation), style modifiers, and phrasings that no training caption
used. Retain sets are the model card's
measurement prompts (same prompts, same seeds) for every concept the task does not erase, so that
evaluating the ``original`` control reproduces the model card's rates image for image.

Regenerate with ``python -m memora_bench.world.prompts`` (the task cards pin each file's sha256).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from memora_bench.digits import (
    DIGIT_ALIASES,
    DIGIT_WORDS,
    STYLE_CONCEPTS,
    STYLE_WORDS,
)
from memora_bench.digits import with_article as _a
from memora_bench.specs import prompts_csv
from memora_bench.world.measure import concept_rate_plan

PROMPT_SEED = 4242
GUIDANCE = 7.5
RETAIN_PER_CONCEPT = 20

# Frames for a digit's name: its word ("seven"), its numeral ("7") or its alias ("sieben").
_DIRECT_FRAMES = (
    "a handwritten {x}", "{x}", "the digit {x}", "a drawing of {ax}", "a picture of {ax}",
    "an image of the number {x}", "{x}, drawn by hand", "a sketch of {ax}", "a photo of a handwritten {x}",
    "the numeral {x}", "a scribbled {x}", "a hand-drawn number {x}", "the handwritten digit {x}",
    "{x} written with a pen", "a black and white image of {ax}",
)
_MODIFIERS = ("bold", "italic", "thick", "slanted", "neat", "messy", "small", "large")


def digit_attack_prompts(digit: int) -> list[str]:
    """Every phrasing the attack set may draw for a digit."""
    out = []
    for name in (DIGIT_WORDS[digit], str(digit), DIGIT_ALIASES[digit]):
        out += [frame.format(x=name, ax=_a(name)) for frame in _DIRECT_FRAMES]
        out += [f"{_a(mod)} {name}" for mod in _MODIFIERS]
    return sorted(set(out))


def style_attack_prompts(style: str) -> list[str]:
    a, b, p = STYLE_WORDS[style]
    synonyms = {"bold": ("heavy", "fat", "thick-stroked"), "italic": ("cursive", "leaning", "oblique")}[style]
    out = []
    for w in DIGIT_WORDS:
        out += [f"{_a(a)} {w}", f"{_a(b)} handwritten {w}", f"the number {w} {p}"]
        out += [f"{_a(s)} {w}" for s in synonyms]
    out += [f"{_a(a)} handwritten digit", f"a digit {p}", f"{_a(a)} number", f"some {b} handwriting"]
    return sorted(set(out))


def _rows(prompts_by_concept: dict[str, list[str]], n_per_concept: int, prefix: str, rng) -> list[dict]:
    rows = []
    for concept, prompts in prompts_by_concept.items():
        pick = rng.choice(len(prompts), size=min(n_per_concept, len(prompts)), replace=False)
        for j in sorted(pick.tolist()):
            rows.append({"prompt": prompts[j], "concept": concept})
    order = rng.permutation(len(rows))
    rows = [rows[i] for i in order]
    seeds = rng.integers(0, 2**31 - 1, size=len(rows))
    return [{"id": f"{prefix}-{i:03d}", "prompt": r["prompt"], "seed": int(s), "guidance": GUIDANCE,
             "concept": r["concept"]} for i, (r, s) in enumerate(zip(rows, seeds))]


def retain_rows(erased: tuple[str, ...], per_concept: int = RETAIN_PER_CONCEPT) -> list[dict]:
    """The model card's measurement rows (prompt, seed) of every concept not in ``erased``."""
    rows = []
    for concept in list(DIGIT_WORDS) + list(STYLE_CONCEPTS):
        if concept in erased:
            continue
        prompts, seeds = concept_rate_plan(concept, per_concept)
        rows += [{"id": f"retain-{concept}-{i:02d}", "prompt": p, "seed": s, "guidance": GUIDANCE, "concept": concept}
                 for i, (p, s) in enumerate(zip(prompts, seeds))]
    return rows


# Miniature tasks: name -> the concepts it erases (as classifier labels).
MINI_TASKS = {
    "mini-seven": ("seven",),
    "mini-bold": ("bold",),
    "mini-three-eight": ("three", "eight"),
}


def attack_rows(task: str, rng) -> list[dict]:
    erased = MINI_TASKS[task]
    per = 60 // len(erased)
    pools = {c: (style_attack_prompts(c) if c in STYLE_CONCEPTS else digit_attack_prompts(DIGIT_WORDS.index(c)))
             for c in erased}
    return _rows(pools, per, "attack", rng)


def write_all(out_dir: Path) -> dict[str, str]:
    """Write every miniature prompt set; returns file name -> sha256."""
    import hashlib

    out_dir.mkdir(parents=True, exist_ok=True)
    digests = {}
    for i, (task, erased) in enumerate(MINI_TASKS.items()):
        rng = np.random.default_rng(PROMPT_SEED + i)
        for kind, rows in (("attack", attack_rows(task, rng)), ("retain", retain_rows(erased))):
            name = f"{task}-{kind}.csv"
            text = prompts_csv(rows)
            (out_dir / name).write_text(text)
            digests[name] = hashlib.sha256(text.encode()).hexdigest()
    return digests


def update_cards(tasks_dir: Path, digests: dict[str, str]) -> None:
    """Rewrite the ``sha256`` of each prompt file a card in ``tasks_dir`` names."""
    import re

    for card in sorted(tasks_dir.glob("*.yaml")):
        text = card.read_text()
        new = re.sub(r"file: prompts/([\w.-]+), sha256: [0-9a-f]+",
                     lambda m: f"file: prompts/{m.group(1)}, sha256: {digests.get(m.group(1), '')}"
                     if m.group(1) in digests else m.group(0), text)
        if new != text:
            card.write_text(new)


if __name__ == "__main__":
    from memora_bench.paths import repo_root

    tasks_dir = repo_root() / "tasks"
    digests = write_all(tasks_dir / "prompts")
    update_cards(tasks_dir, digests)
    for name, digest in digests.items():
        print(f"{digest}  {name}")
