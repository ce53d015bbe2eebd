"""The measurements behind "Why a baseline does or does not erase" in docs/baselines.md.

    python docs/diagnostics/baselines.py misses        # retained concepts each baseline damages, and as what
    python docs/diagnostics/baselines.py neighbours    # cosine of the base text encoder's digit-word states
    python docs/diagnostics/baselines.py word-alone    # ESD on bold: the name alone vs sentences
    python docs/diagnostics/baselines.py fmn-loss      # FMN's attention loss over 35 and 350 steps

A diagnostic, not part of the benchmark: nothing here feeds a result or a recipe.
"""

from __future__ import annotations

import collections
import itertools
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SEEDS = list(range(5000, 5020))
DIGITS = "zero one two three four five six seven eight nine".split()


def misses(results: Path = ROOT / "results" / "mini-v1") -> None:
    for lines in sorted(results.glob("*/*.images.jsonl")):
        wrong = collections.defaultdict(collections.Counter)
        total = collections.Counter()
        for line in lines.open():
            r = json.loads(line)
            if r["prompt_set"] == "attack":
                continue
            total[r["concept"]] += 1
            if not r["hit"]:
                wrong[r["concept"]][max(r["scores"], key=r["scores"].get)] += 1
        shown = {c: f"{total[c] - sum(w.values())}/{total[c]} {dict(w)}" for c, w in sorted(wrong.items())}
        print(lines.parent.name, lines.name.split(".")[0], shown)


def neighbours() -> None:
    import torch

    from memora_bench.miniworld import load_pipeline

    pipe = load_pipeline("base")
    ids = pipe.tokenizer([f"a handwritten {d}" for d in DIGITS], padding="max_length", max_length=77,
                         return_tensors="pt").input_ids
    with torch.no_grad():
        word = pipe.text_encoder(ids).last_hidden_state[:, 3]  # <bos> a handwritten <digit>
    cos = torch.nn.functional.cosine_similarity(word[:, None], word[None], dim=-1)
    pairs = [float(cos[i, j]) for i, j in itertools.combinations(range(10), 2)]
    print(f"mean pairwise cosine {sum(pairs) / len(pairs):.3f}, min {min(pairs):.3f}")
    for erased in ("seven", "three", "eight"):
        i = DIGITS.index(erased)
        print(erased, {d: round(float(cos[i, j]), 3) for j, d in enumerate(DIGITS) if j != i})


def word_alone(names=("esd-x-mini-bold", "esd-u-mini-bold")) -> None:
    from memora_bench.miniworld import load_classifier, load_pipeline
    from memora_bench.models.generate import GenerationConfig, generate
    from memora_bench.models.loading import load_submission_pipeline
    from memora_bench.specs import load_submission, load_task

    style = load_classifier("style")
    base_model = load_task(ROOT / "tasks" / "mini-bold.yaml").base_model
    prompts = ["bold", "a bold handwritten digit", "a bold handwritten seven", "a bold drawing of the number seven"]
    for name in ("base", *names):
        pipe = load_pipeline("base") if name == "base" else load_submission_pipeline(
            load_submission(ROOT / "baselines" / name / "submission.yaml"), base_model)
        for prompt in prompts:
            images = generate(pipe, [prompt] * len(SEEDS), SEEDS, GenerationConfig())
            print(name, repr(prompt), dict(collections.Counter(style.labels[i] for i in style.probs(images).argmax(1))))


def fmn_loss() -> None:
    import torch

    from memora_bench.miniworld import load_pipeline
    from memora_bench.unlearning import fmn
    from memora_bench.unlearning.common import Target

    losses = []
    loss = fmn._AttentionProbes.loss
    fmn._AttentionProbes.loss = lambda self: losses.append(float(loss(self).detach())) or loss(self)
    target = Target(task="mini-seven", erased=("seven",), prompts=("a handwritten seven",))
    for steps in (35, 350):
        losses.clear()
        torch.manual_seed(0)
        fmn.fmn(load_pipeline("base"), target, fmn.FMNParams(steps=steps))
        print(f"{steps} steps: mean of first five {sum(losses[:5]) / 5:.2f}, of last five {sum(losses[-5:]) / 5:.2f}")


if __name__ == "__main__":
    commands = {"misses": misses, "neighbours": neighbours, "word-alone": word_alone, "fmn-loss": fmn_loss}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        sys.exit(f"usage: {Path(__file__).name} {{{'|'.join(commands)}}}")
    commands[sys.argv[1]]()
