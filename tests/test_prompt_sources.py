"""Prompt sets fetched on first use: conversion, the pinned sha256, the cache, task cards that use them."""

from __future__ import annotations

from pathlib import Path

import pytest

from memora_bench.prompt_sources import PromptSource, PromptSourceError, cached_path, convert, materialise
from memora_bench.specs import SpecError, load_task, read_prompts, sha256_bytes

UPSTREAM = Path(__file__).parent / "fixtures" / "upstream" / "church-like.csv"
SOURCE = PromptSource(url=UPSTREAM.as_uri(), concept="church", id_prefix="church-", guidance="evaluation_guidance")


def test_convert_maps_columns_and_keeps_quoted_commas():
    text = convert(UPSTREAM.read_text(), SOURCE)
    assert text.splitlines()[0] == "id,prompt,seed,guidance,concept"
    assert text.splitlines()[2] == 'church-1,"Stained glass window, of a church.",36416,7.5,church'
    assert text.splitlines()[3] == "church-2,Modern church architecture.,42726,9.0,church"


def test_default_guidance_when_upstream_has_none():
    text = convert("case_number,prompt,evaluation_seed\n0,Irises by Vincent van Gogh,348\n",
                   PromptSource(url="x", concept="vangogh", default_guidance=7.5))
    assert text.splitlines()[1] == "0,Irises by Vincent van Gogh,348,7.5,vangogh"


def test_missing_upstream_column_is_named():
    with pytest.raises(PromptSourceError, match=r"no column\(s\) \['evaluation_seed'\]"):
        convert("case_number,prompt\n0,a church\n", PromptSource(url="u", concept="church"))


def test_materialise_fetches_once_and_checks_the_pin(tmp_path):
    sha = sha256_bytes(convert(UPSTREAM.read_text(), SOURCE).encode())
    path = materialise(SOURCE, sha, tmp_path)
    assert path == cached_path(sha, tmp_path)
    rows = read_prompts(path, sha)
    assert [r.id for r in rows] == ["church-0", "church-1", "church-2"] and rows[2].guidance == 9.0
    # cached: a source that can no longer be fetched still gives the same file
    gone = PromptSource(url=(tmp_path / "gone.csv").as_uri(), concept="church")
    assert materialise(gone, sha, tmp_path) == path


def test_wrong_pin_and_unreachable_source_fail_loudly(tmp_path):
    with pytest.raises(PromptSourceError, match="the card pins 0{64}"):
        materialise(SOURCE, "0" * 64, tmp_path)
    assert not cached_path("0" * 64, tmp_path).exists()
    with pytest.raises(PromptSourceError, match="cannot fetch"):
        materialise(PromptSource(url=(tmp_path / "nope.csv").as_uri(), concept="c"), "1" * 64, tmp_path)


def _card(tmp_path: Path, attack: str) -> Path:
    (tmp_path / "prompts").mkdir(exist_ok=True)
    (tmp_path / "prompts" / "retain.csv").write_text("id,prompt,seed,guidance,concept\nr0,a tench,1,7.5,tench\n")
    retain_sha = sha256_bytes((tmp_path / "prompts" / "retain.csv").read_bytes())
    card = tmp_path / "sd-church.yaml"
    card.write_text(f"""name: sd-church
version: 1
description: Erase church.
base_model: {{id: CompVis/stable-diffusion-v1-4, revision: main}}
concepts:
  - {{name: church, kind: object, prompt: a photo of a church, label: church}}
attack_prompts: {attack}
retain_prompts: {{file: prompts/retain.csv, sha256: {retain_sha}}}
classifiers:
  - {{name: imagenet-resnet50, threshold: 0.5}}
generation: {{scheduler: ddim, steps: 50, guidance: 7.5, height: 512, width: 512, images_per_prompt: 1}}
""")
    return card


def test_task_card_with_a_fetched_prompt_set(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMORA_BENCH_CACHE", str(tmp_path / "cache"))
    sha = sha256_bytes(convert(UPSTREAM.read_text(), SOURCE).encode())
    attack = (f"{{sha256: {sha}, source: {{url: '{UPSTREAM.as_uri()}', concept: church, "
              f"id_prefix: church-, guidance: evaluation_guidance}}}}")
    task = load_task(_card(tmp_path, attack))  # not fetched yet: the card still loads
    assert task.attack_prompts.source.url == UPSTREAM.as_uri()
    from memora_bench.context import task_prompts

    rows = task_prompts(task, "attack_prompts")  # first use fetches into the cache
    assert len(rows) == 3 and cached_path(sha).exists()
    assert load_task(task.path).attack_prompts.sha256 == sha  # and from then on the card's load checks it


def test_card_needs_exactly_one_of_file_and_source(tmp_path):
    sha = "a" * 64
    both = f"{{sha256: {sha}, file: prompts/retain.csv, source: {{url: 'file:///x', concept: church}}}}"
    with pytest.raises(SpecError, match="exactly one of 'file'"):
        load_task(_card(tmp_path, both))
    with pytest.raises(SpecError, match="exactly one of 'file'"):
        load_task(_card(tmp_path, f"{{sha256: {sha}}}"))
