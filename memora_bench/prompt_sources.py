"""Prompt sets published elsewhere, fetched on first use.

The SD-1.4 tasks score the prompt lists the papers used (UnlearnDiffAtk's per-concept CSVs, I2P's nudity
prompts). A card names such a set by a URL pinned to a commit, the upstream column of each of our columns,
and the sha256 of the set *after conversion* to this project's prompt CSV (id, prompt, seed, guidance,
concept). The converted file is kept in the cache folder, under its sha256, so a set is fetched once per
machine; a conversion that does not reproduce the pinned sha256 is an error, never a silent change of the
prompts a result was scored on.
"""

from __future__ import annotations

import csv
import io
import urllib.request
from pathlib import Path

from memora_bench.cache import atomic_write_text
from memora_bench.specs import (
    UNPINNED,
    PromptSet,
    PromptSource,
    fetched_prompts_path,
    load_task,
    prompts_csv,
    sha256_bytes,
    unpinned_sets,
)

__all__ = ["PromptSource", "PromptSourceError", "cached_path", "convert", "fetch", "materialise", "pin_card",
           "prompt_file"]

FETCH_TIMEOUT_S = 60


class PromptSourceError(RuntimeError):
    """A prompt set could not be fetched or does not convert to its pinned content."""


def cached_path(sha256: str, root: Path | None = None) -> Path:
    """Where a fetched set is kept: ``prompts/<sha256>.csv`` in the default cache folder (or ``root``)."""
    return fetched_prompts_path(sha256, root)


def prompt_file(ps: PromptSet, card_dir: Path) -> Path:
    """The prompt CSV of a card's set: beside the card, or fetched and converted now if it is not yet."""
    return ps.path(card_dir) if ps.source is None else materialise(ps.source, ps.sha256)


def convert(text: str, src: PromptSource) -> str:
    """The upstream CSV ``text`` as this project's prompt CSV (rows in upstream order)."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    wanted = [c for c in (src.id, src.prompt, src.seed, src.guidance) if c]
    missing = [c for c in wanted if c not in header]
    if missing:
        raise PromptSourceError(f"{src.url}: no column(s) {missing}; it has {header}")
    rows = []
    for line, rec in enumerate(reader, start=2):
        try:
            seed = int(float(rec[src.seed]))
            guidance = float(rec[src.guidance]) if src.guidance else src.default_guidance
        except (TypeError, ValueError) as err:
            raise PromptSourceError(f"{src.url}:{line}: bad seed or guidance ({err})") from err
        rows.append({"id": f"{src.id_prefix}{rec[src.id]}", "prompt": rec[src.prompt], "seed": seed,
                     "guidance": guidance, "concept": src.concept})
    if not rows:
        raise PromptSourceError(f"{src.url}: no rows")
    if src.rows:
        if len(rows) < src.rows:
            raise PromptSourceError(f"{src.url}: has {len(rows)} rows, the card keeps the first {src.rows}")
        rows = rows[:src.rows]
    return prompts_csv(rows)


def fetch(url: str, timeout: float = FETCH_TIMEOUT_S) -> str:
    """The text at ``url`` (UTF-8)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (pinned https or file URLs)
            raw = resp.read()
    except OSError as err:
        raise PromptSourceError(f"cannot fetch {url}: {err}") from err
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise PromptSourceError(f"{url}: not UTF-8 text") from err


def materialise(src: PromptSource, sha256: str, root: Path | None = None) -> Path:
    """The converted prompt file for ``src``, fetching and converting it on first use; checked against ``sha256``."""
    path = cached_path(sha256, root)
    if path.exists():
        return path
    text = convert(fetch(src.url), src)
    digest = sha256_bytes(text.encode("utf-8"))
    if digest != sha256:
        raise PromptSourceError(f"{src.url}: converted prompt set has sha256 {digest}, the card pins {sha256} "
                                f"(the upstream file or the column mapping changed)")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)
    return path


def pin_card(card: Path, root: Path | None = None) -> list[tuple[str, str, int]]:
    """Pin every fetched prompt set of the task card ``card`` whose ``sha256`` is ``unpinned``
    (:func:`memora_bench.specs.unpinned_sets`): fetch it, convert it, keep the converted file in the cache and
    write its sha256 into the card in place of ``unpinned`` (the rest of the card's text, comments included,
    unchanged). Returns (set, sha256, rows) per set pinned. For a machine with network access: a card whose
    upstream file could not be fetched byte-exact where it was written ships unpinned, and evaluation refuses it
    until this has run."""
    task = load_task(card)
    lines = card.read_text().splitlines(keepends=True)
    pinned = []
    for key in unpinned_sets(task):
        src = getattr(task, key).source
        converted = convert(fetch(src.url), src)
        digest = sha256_bytes(converted.encode("utf-8"))
        path = cached_path(digest, root)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, converted)
        # the set's own "sha256: unpinned": the first after the line that opens the set
        start = next((i for i, line in enumerate(lines) if line.startswith(f"{key}:")), len(lines))
        at = next((i for i in range(start, len(lines)) if f"sha256: {UNPINNED}" in lines[i]), None)
        if at is None:
            raise PromptSourceError(f"{card}: cannot find {key}'s 'sha256: {UNPINNED}' to replace; its sha256 is "
                                    f"{digest}")
        lines[at] = lines[at].replace(f"sha256: {UNPINNED}", f"sha256: {digest}", 1)
        pinned.append((key, digest, len(converted.splitlines()) - 1))
    if pinned:
        atomic_write_text(card, "".join(lines))
    return pinned
