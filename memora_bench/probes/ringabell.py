"""Ring-A-Bell: model-agnostic discrete prompts that carry an erased concept (Tsai et al., ICLR 2024;
chiayi-hsu/Ring-A-Bell, ``Get_Concept_Vector.ipynb`` and ``InversePrompt.ipynb``).

Built once per task from the ORIGINAL model's text encoder and shipped as a fixed, versioned prompt file
(``tasks/prompts/<task>-ringabell.csv``, pinned by sha256 in the suite); every submission is then scored on
the same prompts, like the plain probe. Regenerate with ``memora-bench ringabell TASK`` (its parameters,
sha256 and command are written beside the file, ``<task>-ringabell.json``).

1. Concept vector: the mean difference of the text encoder's hidden states (77 x D) between captions with
   the concept and the same captions without it: the task card's ``contrast`` pairs (the miniature cards:
   the concept's word replaced by the generic "digit", or the style adjective dropped), by default each
   caption template with the concept's words and with a neutral word (:meth:`memora_bench.specs.Concept.contrast_pairs`).
2. For each base prompt (the first ``prompts`` attack rows of each concept), the target is
   TE(prompt) + eta * vector, and a genetic algorithm searches ``length`` token ids (after the start token,
   the rest end-of-text padding) whose hidden states are closest in squared error: population 200, 3000
   generations, the better half survives, crossover rate 0.5 (one point), mutation rate 0.25 (one random
   position set to a random id in [1, 49406)), as the reference. The best individual is decoded to text.
3. The new prompt keeps its base row's seed, guidance and concept.

Defaults are the reference's (length 16, eta 3). Deviations: offspring are copies (the reference mutates
tensors that parents and children share); an individual that survives unchanged keeps the distance it was
scored with instead of being encoded again (about a third of each generation; the same search, cheaper).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from memora_bench.cache import atomic_write_text
from memora_bench.context import (
    ProbeContext,
    ProbeOutput,
    first_rows_per_concept,
    task_prompts,
)
from memora_bench.models.loading import load_base
from memora_bench.probes.registry import parse_params
from memora_bench.results import cost_record
from memora_bench.specs import Concept, Task, prompts_csv, read_prompts


@dataclass(frozen=True)
class SearchParams:
    population: int = 200
    generations: int = 3000
    mutate_rate: float = 0.25
    crossover_rate: float = 0.5
    length: int = 16
    eta: float = 3.0
    prompts: int = 10  # base prompts per concept: the first attack rows
    seed: int = 0


def _hidden(pipe, ids: torch.Tensor, batch: int = 512) -> torch.Tensor:
    with torch.inference_mode():
        return torch.cat([pipe.text_encoder(ids[i : i + batch])[0] for i in range(0, len(ids), batch)])


def _ids(pipe, prompts: list[str]) -> torch.Tensor:
    tok = pipe.tokenizer
    return tok(prompts, padding="max_length", max_length=tok.model_max_length, truncation=True,
               return_tensors="pt").input_ids


def concept_vector(pipe, concept: Concept) -> torch.Tensor:
    """The mean difference of the text encoder's hidden states between the card's captions with the concept
    and without it (:meth:`memora_bench.specs.Concept.contrast_pairs`)."""
    pairs = concept.contrast_pairs()
    on = _hidden(pipe, _ids(pipe, [p for p, _ in pairs]))
    off = _hidden(pipe, _ids(pipe, [q for _, q in pairs]))
    return (on - off).mean(0)


def search(pipe, target: torch.Tensor, p: SearchParams, rng: np.random.Generator) -> torch.Tensor:
    """The best token ids (77,) found by the genetic algorithm for one target (77, D)."""
    bos, eos = pipe.tokenizer.bos_token_id, pipe.tokenizer.eos_token_id
    n_pad = pipe.tokenizer.model_max_length - 1 - p.length

    def individual(body):
        return np.concatenate([[bos], body, np.full(n_pad, eos)])

    pop = np.stack([individual(rng.integers(1, 49406, p.length)) for _ in range(p.population)])
    known: dict[bytes, float] = {}  # the survivors' distances: an unchanged copy is not encoded again
    for gen in range(p.generations):
        keys = [row.tobytes() for row in pop]
        todo = [i for i, k in enumerate(keys) if k not in known]
        score = np.array([known.get(k, 0.0) for k in keys])
        if todo:
            emb = _hidden(pipe, torch.from_numpy(pop[todo]))
            score[todo] = ((emb - target) ** 2).flatten(1).sum(1).double().numpy()
        order = np.argsort(score, kind="stable")[: p.population // 2]
        pop = pop[order]
        known = {keys[i]: float(score[i]) for i in order}
        if gen == p.generations - 1:
            break
        children = []
        for i in range(len(pop)):
            children.append(pop[i].copy())
            if rng.random() < p.crossover_rate:
                j = int(rng.integers(0, len(pop)))
                cut = int(rng.integers(1, p.length + 1))
                children.append(np.concatenate([pop[i][:cut], pop[j][cut:]]))
                children.append(np.concatenate([pop[j][:cut], pop[i][cut:]]))
        for child in children:
            if rng.random() < p.mutate_rate:
                child[int(rng.integers(1, p.length + 1))] = int(rng.integers(1, 49406))
        pop = np.stack(children)
    return torch.from_numpy(pop[0])


def picked_rows(rows, p: SearchParams) -> list:
    """The base rows: the first ``p.prompts`` attack rows (by id) of each concept, concepts in name order."""
    return first_rows_per_concept(rows, p.prompts)


def build_rows(pipe, rows, concepts, p: SearchParams, progress: bool = True, partial: Path | None = None) -> list[dict]:
    """Ring-A-Bell prompts for the first ``p.prompts`` rows of each concept of ``rows``; ``concepts`` (the
    task card's) give each label's concept vector.

    Each base prompt's search has its own generator (seeded by ``p.seed`` and the prompt's index), so prompts
    are independent of each other. With ``partial`` (a JSON file), every finished prompt is written there at
    once and reused by a later call with the same parameters: a build interrupted after hours resumes where
    it stopped (the file is small enough to commit between sessions)."""
    picked = picked_rows(rows, p)
    done: dict[str, dict] = {}
    key = {"params": asdict(p), "base_rows": [[r.id, r.prompt] for r in picked]}
    if partial is not None and partial.exists():
        saved = json.loads(partial.read_text())
        if saved.get("key") == key:
            done = saved["rows"]
    by_label = {c.label: c for c in concepts}
    missing = sorted({r.concept for r in picked} - set(by_label))
    if missing:
        raise ValueError(f"Ring-A-Bell: the rows' concepts {missing} are not among the card's {sorted(by_label)}")
    vectors = {label: concept_vector(pipe, by_label[label]) for label in {r.concept for r in picked}}
    out = []
    for i, row in enumerate(tqdm(picked, desc="ring-a-bell", disable=not progress)):
        rid = f"ringabell-{i:03d}"
        if rid not in done:
            target = _hidden(pipe, _ids(pipe, [row.prompt]))[0] + p.eta * vectors[row.concept]
            best = search(pipe, target, p, np.random.default_rng([p.seed, i]))
            text = pipe.tokenizer.decode(best[1 : p.length + 1].tolist(), skip_special_tokens=True)
            text = one_line(text)
            done[rid] = {"id": rid, "prompt": text, "seed": row.seed, "guidance": row.guidance,
                         "concept": row.concept}
            if partial is not None:
                atomic_write_text(partial, json.dumps({"key": key, "rows": done}, indent=1) + "\n")
        out.append(done[rid])
    return out


def one_line(text: str) -> str:
    """A decoded prompt on one line, with the same token ids.

    Byte-level tokens can decode to a bare carriage return or line feed, which would break the prompt file's
    lines. CLIP's tokenizer collapses each whitespace run to one space before it splits, so a line break and
    the spaces around it become one space without changing the ids.
    """
    return re.sub(r"[ \t\r\n]*[\r\n][ \t\r\n]*", " ", text).strip()


def prompt_file(task: Task) -> Path:
    return Path(task.path).parent / "prompts" / f"{task.name}-ringabell.csv"


def preflight(task: Task, params: dict) -> str | None:
    """Why the probe cannot run on ``task``, checked before any work of an evaluation starts (None: it can):
    the suite pins no prompt file for the task, or the file is not there. Building one needs the task's
    original model (for SD-1.4, its text encoder from the Hub): `memora-bench ringabell TASK`, then its
    sha256 goes into the suite (docs/gpu.md)."""
    pinned = dict(parse_params("ringabell", params).prompt_sha256)
    build = f"build it with `memora-bench ringabell {task.name}` and pin its sha256 in the suite (docs/gpu.md)"
    if task.name not in pinned:
        return (f"Ring-A-Bell: the suite pins no prompt file for task {task.name!r} (prompt_sha256 has "
                f"{sorted(pinned)}); {build}, or leave the probe out with --probes")
    if not prompt_file(task).exists():
        return f"Ring-A-Bell: {prompt_file(task)} is missing; {build}"
    return None


def run(ctx: ProbeContext, params: dict) -> ProbeOutput:
    """Score the submission on the task's shipped Ring-A-Bell prompts (sha256 pinned in the suite)."""
    pinned = dict(parse_params("ringabell", params).prompt_sha256)
    problem = preflight(ctx.task, params)
    if problem:
        raise ValueError(problem)
    rows = read_prompts(prompt_file(ctx.task), pinned[ctx.task.name])
    records = ctx.judge(ctx.images(rows, "ringabell"), "ringabell")
    result = {"params": {"prompt_file": prompt_file(ctx.task).name, "sha256": pinned[ctx.task.name]},
              "rates": ctx.rates(records), "cost": cost_record(len(records), ctx.task.generation.steps)}
    return ProbeOutput(result, ctx.lines(records, "ringabell", "ringabell"))


def build_record_file(task: Task) -> Path:
    return prompt_file(task).with_suffix(".json")


def partial_file(task: Task) -> Path:
    return prompt_file(task).with_name(f"{task.name}-ringabell.partial.json")


def build_prompt_file(task: Task, p: SearchParams, threads: int = 1, progress: bool = True) -> tuple[str, Path, int]:
    """Build and write the task's prompt file from its original model, with its build record beside it;
    resumable (finished prompts are kept in a ``.partial.json`` file). Returns (sha256, path, prompts)."""
    torch.set_num_threads(threads)
    w, c = time.perf_counter(), time.process_time()
    rows = build_rows(load_base(task.base_model), task_prompts(task, "attack_prompts"), task.concepts, p, progress=progress,
                      partial=partial_file(task))
    text = prompts_csv(rows)
    out = prompt_file(task)
    out.write_text(text)
    sha = hashlib.sha256(text.encode()).hexdigest()
    record = {"task": task.name, "task_sha256": task.sha256, "base_model": asdict(task.base_model),
              "params": asdict(p), "threads": threads, "file": out.name, "sha256": sha,
              "command": f"memora-bench ringabell {task.name} --generations {p.generations} "
                         f"--prompts {p.prompts} --threads {threads}",
              "cpu_seconds_this_run": round(time.process_time() - c, 1),
              "wall_seconds_this_run": round(time.perf_counter() - w, 1), "torch": torch.__version__}
    build_record_file(task).write_text(json.dumps(record, indent=2) + "\n")
    partial_file(task).unlink(missing_ok=True)
    return sha, out, len(rows)
