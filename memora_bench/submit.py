"""Making a submission from a checkpoint: ``memora-bench init`` and ``evaluate --model`` (docs/submitting.md).

A submission is a folder with a manifest and the checkpoint inside it (the loader refuses paths that leave
the folder, and symlinks). :func:`make_submission` builds one around a checkpoint given by path or by Hub id:
the checkpoint is hard-linked into the folder (copied when the file system cannot link), its sha256 is
computed (a file's digest, or a folder's: the sorted "relative path, file sha256" lines), and the manifest
is written and loaded back through the strict loader, so what it writes always validates.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import yaml

from memora_bench.models.loading import folder_sha256
from memora_bench.specs import COMPONENTS, NAME_PATTERN, Submission, Task, load_submission, sha256_file


class SubmitError(ValueError):
    """A checkpoint or its description cannot make a submission; ``problems`` holds one line each."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


def checkpoint_sha256(path: Path) -> str:
    """What a manifest's ``checkpoint.sha256`` holds for ``path``: a file's sha256 or a folder's."""
    path = Path(path)
    return folder_sha256(path) if path.is_dir() else sha256_file(path)


def resolve_model(ref: str) -> Path:
    """A local file or folder, or a Hub reference ``owner/name[/path/in/repo][@revision]`` fetched into the
    Hugging Face cache (a folder of the repository, or one file)."""
    local = Path(ref)
    if local.exists():
        return local
    spec, _, revision = ref.partition("@")
    parts = spec.split("/")
    if len(parts) < 2 or not all(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", p) for p in parts):
        raise SubmitError([f"--model {ref!r}: no such file or folder, and not a Hub reference "
                           "owner/name[/path][@revision]"])
    repo, inner = "/".join(parts[:2]), "/".join(parts[2:])
    from huggingface_hub import snapshot_download  # a Hub client only when a Hub model is asked for

    try:
        root = Path(snapshot_download(repo, revision=revision or None,
                                      allow_patterns=[inner, f"{inner}/*"] if inner else None))
    except Exception as err:  # offline, unknown repository or revision: one line, never a traceback
        raise SubmitError([f"--model {ref!r}: cannot fetch from the Hugging Face Hub ({type(err).__name__}: "
                           f"{str(err).splitlines()[0][:160] if str(err) else 'no detail'})"]) from None
    path = root / inner if inner else root
    if not path.exists():
        raise SubmitError([f"--model {ref!r}: {inner!r} is not in {repo}@{revision or 'main'}"])
    return path


def _link_or_copy(src: Path, dst: Path) -> None:
    """``dst`` as a hard link of ``src`` (a folder: file by file), a copy where links are impossible."""
    if src.is_dir():
        for f in sorted(src.rglob("*")):
            if f.is_file():
                _link_or_copy(f, dst / f.relative_to(src))
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src.resolve(), dst)
    except OSError:
        shutil.copyfile(src, dst)


def make_submission(folder: Path, checkpoint: Path, component: str, tasks: list[Task], *, name: str = "",
                    erased: list[str] | None = None, method: str = "", authors: list[str] | None = None,
                    reference: str = "", overwrite: bool = False) -> Submission:
    """Write ``folder/submission.yaml`` for ``checkpoint`` (linked into ``folder`` unless it is already in
    it) and return it loaded by the strict loader. ``erased`` defaults to the tasks' concepts, the base model
    to the tasks' (all must share one)."""
    folder, checkpoint = Path(folder), Path(checkpoint)
    name = name or folder.name
    problems = []
    if not re.fullmatch(NAME_PATTERN, name):
        problems.append(f"name {name!r}: letters, digits, '.', '_' and '-' only (at most 100), e.g. "
                        f"{re.sub(r'[^A-Za-z0-9._-]+', '-', name).strip('-.') or 'my-method'}")
    if component not in COMPONENTS:
        problems.append(f"component {component!r}: expected one of {', '.join(COMPONENTS)}")
    if not checkpoint.exists():
        problems.append(f"checkpoint {checkpoint}: no such file or folder")
    if not tasks:
        problems.append("at least one task is needed")
    bases = {(t.base_model.id, t.base_model.revision) for t in tasks}
    if len(bases) > 1:
        problems.append(f"the tasks run on different base models ({sorted(bases)}): make one submission per base model")
    manifest = folder / "submission.yaml"
    if manifest.exists() and not overwrite:
        problems.append(f"{manifest} exists (pass overwrite to replace it)")
    if problems:
        raise SubmitError(problems)
    folder.mkdir(parents=True, exist_ok=True)
    inside = checkpoint.resolve().is_relative_to(folder.resolve())
    target = checkpoint if inside else folder / checkpoint.name
    if not inside:
        if target.exists():
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        _link_or_copy(checkpoint, target)
    base = tasks[0].base_model
    record = {
        "name": name,
        "method": method or f"{name} (manifest written by memora-bench)",
        "authors": list(authors or ["unknown"]),
        "reference": reference or "unknown",
        "base_model": {"id": base.id, "revision": base.revision},
        "erased": list(erased) if erased else [c.name for t in tasks for c in t.concepts],
        "tasks": [t.name for t in tasks],
        "checkpoint": {"path": target.resolve().relative_to(folder.resolve()).as_posix(),
                       "sha256": checkpoint_sha256(target), "component": component},
    }
    manifest.write_text(yaml.safe_dump(record, sort_keys=False, allow_unicode=True))
    return load_submission(manifest)
