"""Malformed input, end to end through the command line: every bad input gets a clear error naming the
problem, a non-zero exit, and leaves no result file and no cache entry behind.

Each case builds one bad input in a fresh folder (a copy of the small fixture suite, its task card and
prompt files, and a submission) and runs one command on it. The table is the list the closing note of the
submissions issue refers to; add a case here when a new kind of bad input is found.
"""

from __future__ import annotations

import json
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import torch
from safetensors.torch import save_file

from memora_bench import cli
from memora_bench.paths import repo_root
from memora_bench.specs import sha256_file
from tests.helpers import make_result, write_result

ROOT = repo_root()
FIXTURES = ROOT / "tests" / "fixtures"
MANIFEST = ("name: sub\nmethod: m\nauthors: [a]\nreference: r\nbase_model: {id: world/base, revision: mini-world-v2}\n"
            "erased: [seven]\ntasks: [mini-seven-small]\n")
# A real tensor of the miniature UNet, with its real shape: the starting point of every bad checkpoint.
UNET_KEY = "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight"


@dataclass
class Case:
    name: str
    kind: str  # manifest, checkpoint, task, prompts, suite, cli, result
    build: Callable[[Path], list[str]]  # builds the bad input under the folder, returns the command's arguments
    says: tuple[str, ...]  # every one of these must appear in the command's output


class World:
    """A scratch copy of the fixture suite and task card, and helpers that write submissions into it."""

    def __init__(self, root: Path):
        self.root = root
        shutil.copytree(FIXTURES / "benchmark", root / "benchmark")
        shutil.copytree(FIXTURES / "tasks", root / "tasks")
        self.suite = root / "benchmark" / "mini-small.yaml"
        self.card = root / "tasks" / "mini-seven-small.yaml"
        self.attack_csv = root / "tasks" / "prompts" / "mini-seven-small-attack.csv"

    def evaluate(self, *refs, extra: tuple[str, ...] = ()) -> list[str]:
        return ["evaluate", *map(str, refs), "--suite", str(self.suite), "--out", str(self.root / "out"),
                "--cache-dir", str(self.root / "cache"), *extra]

    def submission(self, extra: str = "", text: str | None = None) -> Path:
        folder = self.root / "sub"
        folder.mkdir(exist_ok=True)
        (folder / "submission.yaml").write_text(MANIFEST + extra if text is None else text)
        return folder

    def checkpoint(self, tensors: dict | None = None, raw: bytes | None = None, file: str = "w.safetensors",
                   component: str = "unet", sha: str | None = None) -> Path:
        folder = self.root / "sub"
        folder.mkdir(exist_ok=True)
        path = folder / file
        if raw is not None:
            path.write_bytes(raw)
        elif file.endswith(".safetensors"):
            save_file(tensors, str(path))
        else:
            torch.save(tensors, path)
        digest = sha or sha256_file(path)
        return self.submission(f"checkpoint: {{path: {file}, sha256: '{digest}', component: {component}}}\n")

    def set_card(self, old: str, new: str) -> None:
        text = self.card.read_text()
        assert old in text, old
        self.card.write_text(text.replace(old, new))

    def set_csv(self, edit: Callable[[list[str]], list[str]], rehash: bool = True) -> None:
        """Edit the attack prompt file; with rehash, the card's sha256 follows, so the file's content is judged."""
        old_sha = sha256_file(self.attack_csv)
        lines = edit(self.attack_csv.read_text().splitlines())
        self.attack_csv.write_text("\n".join(lines) + "\n" if lines else "")
        if rehash:
            self.set_card(old_sha, sha256_file(self.attack_csv))


def good_tensor() -> torch.Tensor:
    from safetensors import safe_open

    from memora_bench.paths import world_dir

    with safe_open(str(world_dir() / "base" / "unet" / "diffusion_pytorch_model.safetensors"), "pt") as f:
        return f.get_tensor(UNET_KEY).clone()


class Marker:
    """Unpickling this object would create a file: proof that a refused .pt was never unpickled."""

    path = ""

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def code_running_pt(w: World) -> list[str]:
    marker = w.root / "PWNED"
    Marker.path = str(marker)
    folder = w.root / "sub"
    folder.mkdir(exist_ok=True)
    torch.save({UNET_KEY: Marker()}, folder / "w.pt")  # torch's own zip format, so only the global is refused
    w.submission(f"checkpoint: {{path: w.pt, sha256: '{sha256_file(folder / 'w.pt')}', component: unet}}\n")
    return w.evaluate(folder)


def symlink_escape(w: World) -> list[str]:
    outside = w.root / "outside.safetensors"
    save_file({UNET_KEY: good_tensor()}, str(outside))
    folder = w.submission(f"checkpoint: {{path: w.safetensors, sha256: '{sha256_file(outside)}', component: unet}}\n")
    (folder / "w.safetensors").symlink_to(outside)
    return w.evaluate(folder)


def other_base_revision(w: World) -> list[str]:
    folder = w.checkpoint({UNET_KEY: good_tensor()})
    manifest = folder / "submission.yaml"
    manifest.write_text(manifest.read_text().replace("mini-world-v2", "mini-world-v9"))
    return w.evaluate(folder)


def oversized(w: World) -> list[str]:
    """A sparse file one byte over the size limit: refused before it is read (no disk space, no hashing)."""
    from memora_bench.models.loading import MAX_CHECKPOINT_BYTES

    folder = w.submission("checkpoint: {path: w.safetensors, sha256: '" + "0" * 64 + "', component: unet}\n")
    with open(folder / "w.safetensors", "wb") as f:
        f.truncate(MAX_CHECKPOINT_BYTES + 1)
    return w.evaluate(folder)


def header_too_long(w: World) -> list[str]:
    return w.evaluate(w.checkpoint(raw=struct.pack("<Q", 10**9) + b"{}"))


def header_not_json(w: World) -> list[str]:
    return w.evaluate(w.checkpoint(raw=struct.pack("<Q", 8) + b"not json"))


def card_without_sha_update(w: World) -> list[str]:
    w.set_csv(lambda lines: lines[:-1], rehash=False)
    return w.evaluate("original")


def nan_or_inf(value: float):
    def build(w: World) -> list[str]:
        t = good_tensor()
        t[0, 0] = value
        return w.evaluate(w.checkpoint({UNET_KEY: t}))
    return build


def result_case(payload: Callable[[Path], Path]):
    def build(w: World) -> list[str]:
        old = write_result(w.root / "old", make_result())
        return ["compare", str(old), str(payload(w.root))]
    return build


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


CASES = [
    # --- submission manifests ---
    Case("manifest-not-yaml", "manifest", lambda w: w.evaluate(w.submission(text="name: [unclosed\n")),
         ("not valid YAML",)),
    Case("manifest-a-list", "manifest", lambda w: w.evaluate(w.submission(text="- a\n- b\n")),
         ("top level must be a mapping",)),
    Case("manifest-empty", "manifest", lambda w: w.evaluate(w.submission(text="")), ("empty file",)),
    Case("manifest-typo-key", "manifest",
         lambda w: w.evaluate(w.submission(text=MANIFEST.replace("authors:", "author:"))),
         ("unknown key 'author' (did you mean 'authors'?)", "missing required key 'authors'")),
    Case("manifest-missing-revision", "manifest",
         lambda w: w.evaluate(w.submission(text=MANIFEST.replace(", revision: mini-world-v2", ""))),
         ("missing required key 'base_model.revision'",)),
    Case("manifest-wrong-type", "manifest",
         lambda w: w.evaluate(w.submission(text=MANIFEST.replace("erased: [seven]", "erased: 7"))),
         ("'erased' must be",)),
    Case("manifest-name-not-folder", "manifest",
         lambda w: w.evaluate(w.submission(text=MANIFEST.replace("name: sub", "name: other"))),
         ("'name' is 'other' but the folder is 'sub'",)),
    Case("manifest-unknown-base-revision", "manifest", other_base_revision,
         ("base_model is world/base@mini-world-v9, but task mini-seven-small runs on world/base@mini-world-v2",)),
    Case("manifest-checkpoint-escapes", "manifest",
         lambda w: w.evaluate(w.submission("checkpoint: {path: ../../etc/passwd, sha256: '" + "0" * 64
                                           + "', component: unet}\n")),
         ("escapes the submission folder",)),
    Case("manifest-symlink-escapes", "manifest", symlink_escape, ("escapes the submission folder",)),
    Case("manifest-checkpoint-missing", "manifest",
         lambda w: w.evaluate(w.submission("checkpoint: {path: w.safetensors, sha256: '" + "0" * 64
                                           + "', component: unet}\n")),
         ("checkpoint.path 'w.safetensors': no such file in the submission folder",)),
    Case("manifest-sha-not-hex", "manifest",
         lambda w: w.evaluate(w.checkpoint({UNET_KEY: good_tensor()}, sha="XYZ")),
         ("must be 64 lowercase hex digits",)),
    Case("manifest-unknown-component", "manifest",
         lambda w: w.evaluate(w.checkpoint({UNET_KEY: good_tensor()}, component="unnet")),
         ("'checkpoint.component' is 'unnet'", "did you mean 'unet'")),
    # --- checkpoints ---
    Case("checkpoint-sha-mismatch", "checkpoint",
         lambda w: w.evaluate(w.checkpoint({UNET_KEY: good_tensor()}, sha="0" * 64)),
         ("sha256 is", "the manifest says " + "0" * 64)),
    Case("checkpoint-over-size-limit", "checkpoint", oversized, ("w.safetensors: larger than the 8 GiB limit",)),
    Case("checkpoint-junk-bytes", "checkpoint", lambda w: w.evaluate(w.checkpoint(raw=b"junk")),
         ("malformed safetensors file", "header too small")),
    Case("checkpoint-header-too-long", "checkpoint", header_too_long, ("malformed safetensors file", "header too large")),
    Case("checkpoint-header-not-json", "checkpoint", header_not_json, ("malformed safetensors file", "invalid JSON")),
    Case("checkpoint-unexpected-tensor", "checkpoint",
         lambda w: w.evaluate(w.checkpoint({"not_a_layer.weight": torch.zeros(3)})),
         ("unexpected tensor 'not_a_layer.weight'",)),
    Case("checkpoint-compvis-keys", "checkpoint",
         lambda w: w.evaluate(w.checkpoint({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(3)})),
         ("CompVis",)),
    Case("checkpoint-misshaped", "checkpoint",
         lambda w: w.evaluate(w.checkpoint({UNET_KEY: torch.zeros(3, 5)})),
         (f"{UNET_KEY!r} has shape (3, 5), expected (64, 64)",)),
    Case("checkpoint-wrong-dtype", "checkpoint",
         lambda w: w.evaluate(w.checkpoint({UNET_KEY: good_tensor().to(torch.int64)})),
         (f"{UNET_KEY!r} has dtype torch.int64, expected a floating-point tensor",)),
    Case("checkpoint-nan", "checkpoint", nan_or_inf(float("nan")), (f"{UNET_KEY!r} contains NaN or Inf",)),
    Case("checkpoint-inf", "checkpoint", nan_or_inf(float("inf")), (f"{UNET_KEY!r} contains NaN or Inf",)),
    Case("checkpoint-pickle-runs-code", "checkpoint", code_running_pt,
         ("w.pt: refused, not unpickled: not a weights-only torch file (its pickle needs GLOBAL",)),
    Case("checkpoint-unknown-format", "checkpoint",
         lambda w: w.evaluate(w.checkpoint(raw=b"PK\x03\x04", file="w.ckpt")),
         ("w.ckpt: refused, not unpickled: not a weights-only torch file", "not a ZIP archive")),
    Case("checkpoint-component-mismatch", "checkpoint",
         lambda w: w.evaluate(w.checkpoint({UNET_KEY: good_tensor()}, component="text_encoder")),
         (f"unexpected tensor {UNET_KEY!r} (a UNet tensor: should checkpoint.component be 'unet'?)",)),
    # --- task cards ---
    Case("task-not-yaml", "task", lambda w: (w.card.write_text("name: [unclosed\n"), w.evaluate("original"))[1],
         ("not valid YAML",)),
    Case("task-steps-not-int", "task", lambda w: (w.set_card("steps: 50", "steps: fifty"), w.evaluate("original"))[1],
         ("'generation.steps' must be int, got 'fifty'",)),
    Case("task-negative-height", "task",
         lambda w: (w.set_card("height: 32", "height: -32"), w.evaluate("original"))[1],
         ("'generation.height' must be positive",)),
    Case("task-unknown-classifier", "task",
         lambda w: (w.set_card("name: mini-digit", "name: mini-digits"), w.evaluate("original"))[1],
         ("'classifiers[0].name' is 'mini-digits'", "did you mean 'mini-digit'?")),
    # --- prompt files ---
    Case("prompts-hash-mismatch", "prompts", card_without_sha_update, ("sha256 is", "the card says")),
    Case("prompts-missing-column", "prompts",
         lambda w: (w.set_csv(lambda ls: [ls[0].replace(",seed", ",sed")] + ls[1:]), w.evaluate("original"))[1],
         ("missing column(s) ['seed']", "unknown column 'sed' (did you mean 'seed'?)")),
    Case("prompts-seed-not-int", "prompts",
         lambda w: (w.set_csv(lambda ls: [ls[0], "attack-000,a seven,notaseed,7.5,seven"] + ls[2:]),
                    w.evaluate("original"))[1],
         ("seed 'notaseed' is not an integer",)),
    Case("prompts-duplicate-id", "prompts",
         lambda w: (w.set_csv(lambda ls: ls[:2] + [ls[1]] + ls[3:]), w.evaluate("original"))[1],
         ("duplicate id",)),
    Case("prompts-foreign-concept", "prompts",
         lambda w: (w.set_csv(lambda ls: [ls[0], ls[1].rsplit(",", 1)[0] + ",nine"] + ls[2:]), w.evaluate("original"))[1],
         ("concept 'nine' is not one of the task's concept labels",)),
    Case("prompts-ragged-row", "prompts",
         lambda w: (w.set_csv(lambda ls: [ls[0], "attack-000,a seven,1"] + ls[2:]), w.evaluate("original"))[1],
         ("wrong number of fields",)),
    Case("prompts-no-rows", "prompts", lambda w: (w.set_csv(lambda ls: ls[:1]), w.evaluate("original"))[1],
         ("no prompt rows",)),
    Case("prompts-not-utf8", "prompts",
         lambda w: (w.attack_csv.write_bytes(b"\xff\xfe\x00garbage"),
                    w.set_card(sha256_file(FIXTURES / "tasks" / "prompts" / "mini-seven-small-attack.csv"),
                               sha256_file(w.attack_csv)), w.evaluate("original"))[2],
         ("not UTF-8",)),
    # --- suites and the command line ---
    Case("suite-unknown-probe", "suite",
         lambda w: (w.suite.write_text(w.suite.read_text().replace("plain: {}", "plian: {}")), w.evaluate("original"))[1],
         ("unknown probe 'plian' (did you mean 'plain'?)",)),
    Case("suite-bad-confidence", "suite",
         lambda w: (w.suite.write_text(w.suite.read_text().replace("confidence: 0.95", "confidence: 1.5")),
                    w.evaluate("original"))[1],
         ("'confidence' must be in (0.5, 1)",)),
    Case("suite-task-without-card", "suite",
         lambda w: (w.suite.write_text(w.suite.read_text().replace("[mini-seven-small]", "[mini-nowhere]")),
                    w.evaluate("original"))[1],
         ("task 'mini-nowhere' has no card",)),
    Case("cli-unknown-task", "cli", lambda w: w.evaluate("original", extra=("--tasks", "nope")),
         ("task 'nope' is not in suite",)),
    Case("cli-unknown-probe", "cli", lambda w: w.evaluate("original", extra=("--probes", "nope")),
         ("probe 'nope' is not in suite",)),
    Case("cli-unknown-submission", "cli", lambda w: w.evaluate("no-such-submission"),
         ("no submission named 'no-such-submission'",)),
    # --- result files (compare) ---
    Case("result-not-json", "result", result_case(lambda r: _write(r / "new" / "x.json", "{not json")),
         ("not a JSON result file",)),
    Case("result-schema-invalid", "result",
         result_case(lambda r: _write(r / "new" / "x.json", json.dumps({"schema_version": 1}))),
         ("not a valid result file",)),
    Case("result-other-task-version", "result",
         result_case(lambda r: write_result(r / "new", make_result(task_version=2))),
         ("task version differs (1 vs 2)", "not comparable")),
    Case("result-missing", "result", result_case(lambda r: r / "nope.json"), ("nope.json: no such file or folder",)),
    Case("result-empty-folder", "result", result_case(lambda r: (r / "empty").mkdir() or r / "empty"),
         ("empty: no result files",)),
]


def test_there_are_at_least_30_bad_inputs_of_every_kind():
    assert len(CASES) >= 30 and len({c.name for c in CASES}) == len(CASES)
    assert {c.kind for c in CASES} == {"manifest", "checkpoint", "task", "prompts", "suite", "cli", "result"}


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_refused_clearly_and_leaves_nothing(case, tmp_path, capsys):
    w = World(tmp_path)
    argv = case.build(w)
    code = cli.main(argv)
    out = capsys.readouterr()
    said = out.out + out.err
    assert code in (1, 2), f"exit {code}\n{said}"
    for text in case.says:
        assert text in said, f"{text!r} not in:\n{said}"
    # No result file (of the failing submission or any other) and no cache entry.
    assert not _files(tmp_path / "out"), _files(tmp_path / "out")
    assert not _files(tmp_path / "cache"), _files(tmp_path / "cache")
    assert not (tmp_path / "PWNED").exists(), "the pickle's code ran"
