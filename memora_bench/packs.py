"""A task's shared work, shipped beside the results so that a fresh clone does not pay it again.

Besides its own work, every submission of a task needs work that does not depend on it: the original model's
concept images and the ceiling, the retrain oracle's MemoRa training images, LoRA adapters and images at every
budget (the floor), concept inversion's source images, the classifier's reference features. On a fresh cache
the first submission of a task computes them (about 3 minutes on mini-three-eight, measured in
docs/performance.md). A **pack** is those cache entries, under their content keys, in one zip beside the results:

    results/<suite>/shared/<task>.zip     the entries (images/, tensors/, json/) and MANIFEST.json
    results/<suite>/shared/SHA256SUMS     each pack's sha256 (``sha256sum -c`` reads it)

The manifest names the suite, the task and each entry with its sha256. Which entries: those that evaluating the
original model and evaluating the oracle on the task both read or wrote (the cache's journal): the two share
nothing but the task's shared work. ``memora-bench pack build`` makes them (from a given cache, computing what
it lacks) and first checks that both evaluations reproduce the committed results to the count.

``evaluate`` installs the pack of each task it runs before the first unit: every entry the cache lacks is
written to it after its sha256 is checked (a pack that fails its checks is not used, with a warning: the work is
then computed, so a result never depends on the pack). Entries are content-keyed, so an entry whose stage's code
changed is simply never asked for. ``--no-pack`` skips the packs; ``memora-bench pack verify`` checks them.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
import zipfile
from pathlib import Path

from memora_bench.cache import Cache, atomic_write_bytes, is_key
from memora_bench.paths import repo_root

FORMAT = 1
MANIFEST = "MANIFEST.json"
SUMS = "SHA256SUMS"
KINDS = {"images": ".png", "tensors": ".safetensors", "json": ".json"}
MADE_FROM = ("original", "oracle")  # the shared work is what evaluating these two both used
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed, so that the same entries make the same bytes
# The generation stages of the task's shared work (the original model's images, the oracle's floor): a
# submission evaluated with its task's pack installed never draws in them (`pack check`).
SHARED_STAGES = ("generate_memora_concept", "generate_memora_ceiling", "generate_memora_oracle",
                 "generate_concept_inversion_source", "generate_unlearndiffatk_target", "generate_resurgence_source")


def computed_shared_work(result: dict) -> list[str]:
    """The shared stages in which ``result``'s run drew images (none when its task's shared work was cached)."""
    return [s for s in SHARED_STAGES if s in result["timing"]["stages"]]


class PackError(Exception):
    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


def folder(suite_name: str, root: Path | None = None) -> Path:
    return Path(root or repo_root()) / "results" / suite_name / "shared"


def pack_path(suite_name: str, task_name: str, root: Path | None = None) -> Path:
    return folder(suite_name, root) / f"{task_name}.zip"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def valid_entry(name: str) -> bool:
    """``<kind>/<key[:2]>/<key><suffix>`` and nothing else: a pack never writes outside the cache's folders."""
    parts = name.split("/")
    if len(parts) != 3 or parts[0] not in KINDS:
        return False
    kind, shard, file = parts
    key = file.removesuffix(KINDS[kind])
    return file.endswith(KINDS[kind]) and is_key(key) and shard == key[:2]


def read_sums(where: Path) -> dict[str, str]:
    path = Path(where) / SUMS
    if not path.exists():
        return {}
    out = {}
    for line in path.read_text().splitlines():
        if line.strip():
            sha, name = line.split(maxsplit=1)
            out[name.strip()] = sha
    return out


def write_sums(where: Path) -> None:
    lines = [f"{sha256_bytes(p.read_bytes())}  {p.name}" for p in sorted(Path(where).glob("*.zip"))]
    atomic_write_bytes(Path(where) / SUMS, ("\n".join(lines) + "\n").encode())


def write_pack(path: Path, cache: Cache, entries: list[str], meta: dict) -> dict:
    """Write the cache's ``entries`` (relative paths) and a manifest into the zip ``path``; returns the manifest."""
    bad = [e for e in entries if not valid_entry(e)]
    if bad:
        raise PackError([f"not a cache entry: {e}" for e in bad[:5]])
    data = {e: (Path(cache.root) / e).read_bytes() for e in sorted(entries)}
    manifest = {"format": FORMAT, **meta, "entries": {e: sha256_bytes(b) for e, b in data.items()},
                "bytes": sum(len(b) for b in data.values())}
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False) as tmp:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as z:  # PNGs and float tensors do not compress
            for name, blob in [(MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode())] + list(data.items()):
                z.writestr(zipfile.ZipInfo(name, date_time=ZIP_TIME), blob)
    Path(tmp.name).replace(path)
    write_sums(path.parent)
    return manifest


def open_pack(path: Path) -> tuple[zipfile.ZipFile, dict]:
    """The pack's zip and manifest, after checking the zip's sha256 against SHA256SUMS and the manifest's form."""
    path = Path(path)
    expected = read_sums(path.parent).get(path.name)
    if expected is None:
        raise PackError([f"{path}: not listed in {path.parent / SUMS}"])
    actual = sha256_bytes(path.read_bytes())
    if actual != expected:
        raise PackError([f"{path}: sha256 {actual[:12]}... but {SUMS} says {expected[:12]}... (damaged, or a Git "
                         f"LFS pointer: rebuild it with `memora-bench pack build`)"])
    z = zipfile.ZipFile(path)
    try:
        manifest = json.loads(z.read(MANIFEST))
    except (KeyError, ValueError) as err:
        z.close()
        raise PackError([f"{path}: no readable {MANIFEST} ({err})"]) from err
    problems = [] if manifest.get("format") == FORMAT else [f"{path}: pack format {manifest.get('format')!r}, "
                                                           f"this code reads {FORMAT}"]
    names = set(z.namelist()) - {MANIFEST}
    entries = manifest.get("entries", {})
    problems += [f"{path}: entry {e!r} is not a cache entry" for e in sorted(names | set(entries)) if not valid_entry(e)]
    problems += [f"{path}: {e} is in the zip but not in the manifest" for e in sorted(names - set(entries))]
    problems += [f"{path}: {e} is in the manifest but not in the zip" for e in sorted(set(entries) - names)]
    if problems:
        z.close()
        raise PackError(problems)
    return z, manifest


def verify(path: Path) -> dict:
    """Every check: the zip's sha256, the manifest, every entry's sha256. Returns the manifest; raises PackError."""
    z, manifest = open_pack(path)
    with z:
        bad = [e for e, sha in manifest["entries"].items() if sha256_bytes(z.read(e)) != sha]
    if bad:
        raise PackError([f"{path}: entry {e} does not match its sha256" for e in bad])
    return manifest


def install(cache: Cache, suite, task, root: Path | None = None) -> tuple[Path | None, int]:
    """Write the entries of the task's pack that ``cache`` lacks (each checked against its sha256). Returns the
    pack's path (None when the suite has no pack for the task) and the number of entries written. A pack that
    fails a check is reported on stderr and skipped: the evaluation then computes that work itself."""
    path = pack_path(suite.name, task.name, root)
    if not path.exists():
        return None, 0
    written = 0
    try:
        z, manifest = open_pack(path)
        with z:
            if (manifest["suite"], manifest["task"]["name"]) != ({"name": suite.name, "version": suite.version},
                                                                 task.name):
                raise PackError([f"{path}: made for {manifest['suite']} / {manifest['task']['name']}, not "
                                 f"{suite.name} v{suite.version} / {task.name}"])
            for entry, sha in sorted(manifest["entries"].items()):
                target = Path(cache.root) / entry
                if target.exists():
                    continue
                blob = z.read(entry)
                if sha256_bytes(blob) != sha:
                    raise PackError([f"{path}: entry {entry} does not match its sha256"])
                atomic_write_bytes(target, blob)
                written += 1
    except (PackError, zipfile.BadZipFile, OSError) as err:
        problems = err.problems if isinstance(err, PackError) else [f"{path}: {err}"]
        for p in problems:
            print(f"warning: shared-work pack not used: {p}; the work is computed instead", file=sys.stderr)
    return path, written
