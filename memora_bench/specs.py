"""Plain, frozen records built once from YAML: task cards, suites, submissions.

Loading is strict (STYLE.md 3): unknown keys are errors with a "did you mean", closed vocabularies are
checked, and every problem of a file is reported at once as a :class:`SpecError` naming file and field.
This module imports nothing heavy.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from memora_bench.classifiers.registry import CLASSIFIERS
from memora_bench.paths import default_cache_dir
from memora_bench.probes.registry import CONCEPT_KINDS, PROBES, ParamError, parse_params

COMPONENTS = ("unet", "text_encoder", "pipeline", "lora", "spm", "unet-delta8", "text_encoder-delta8")
SCHEDULERS = ("ddim", "lms")
OVERWRITE = ("never", "missing", "always")
PROMPT_COLUMNS = ("id", "prompt", "seed", "guidance", "concept")


class SpecError(ValueError):
    """One or more problems in spec files; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


# --- records ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Generation:
    scheduler: str
    steps: int
    guidance: float
    height: int
    width: int
    images_per_prompt: int = 1


@dataclass(frozen=True)
class Concept:
    """A concept a task erases, with the vocabulary the probes need (docs/adding-a-task.md). Everything past
    ``label`` is optional: the defaults fit Stable Diffusion as the references use it."""

    name: str
    kind: str
    prompt: str  # MemoRa's concept prompt: every training image is captioned with it
    label: str  # the classifier label that counts as showing the concept
    aliases: tuple[str, ...] = ()  # other words the task's prompts use for it ("7", "sieben")
    templates: tuple[str, ...] = ()  # concept inversion's captions, "{}" where the learnt word goes
    initializer: str = ""  # concept inversion's starting word
    contrast: tuple[tuple[str, str], ...] = ()  # Ring-A-Bell's (with the concept, without it) caption pairs
    neutral: str = ""  # the word that stands for "no concept" in the default pairs

    def caption_templates(self) -> tuple[str, ...]:
        """The card's templates, else textual inversion's (diffusers' ``imagenet_style_templates_small`` for a
        style, ``imagenet_templates_small`` otherwise), as the concept-inversion reference trains with."""
        return self.templates or (STYLE_TEMPLATES if self.kind == "style" else OBJECT_TEMPLATES)

    def initializer_word(self) -> str:
        """The card's initializer, else "art" for a style and the name's last word otherwise (the references:
        ``--initializer_token art`` for styles, the concept's own word for objects)."""
        return self.initializer or ("art" if self.kind == "style" else self.name.split()[-1])

    def words(self) -> tuple[str, ...]:
        """The name and every alias."""
        return (self.name, *[a for a in self.aliases if a != self.name])

    def contrast_pairs(self) -> tuple[tuple[str, str], ...]:
        """The card's pairs, else each caption template filled with each of the concept's words and with the
        neutral word (the card's, else "art" for a style, "object" otherwise)."""
        if self.contrast:
            return self.contrast
        neutral = self.neutral or ("art" if self.kind == "style" else "object")
        return tuple((t.format(w), t.format(neutral)) for t in self.caption_templates() for w in self.words())


# Textual inversion's caption templates (diffusers examples/textual_inversion/textual_inversion.py, which the
# concept-inversion reference trains with): objects, then styles.
OBJECT_TEMPLATES = (
    "a photo of a {}", "a rendering of a {}", "a cropped photo of the {}", "the photo of a {}",
    "a photo of a clean {}", "a photo of a dirty {}", "a dark photo of the {}", "a photo of my {}",
    "a photo of the cool {}", "a close-up photo of a {}", "a bright photo of the {}", "a cropped photo of a {}",
    "a photo of the {}", "a good photo of the {}", "a photo of one {}", "a close-up photo of the {}",
    "a rendition of the {}", "a photo of the clean {}", "a rendition of a {}", "a photo of a nice {}",
    "a good photo of a {}", "a photo of the nice {}", "a photo of the small {}", "a photo of the weird {}",
    "a photo of the large {}", "a photo of a cool {}", "a photo of a small {}",
)
STYLE_TEMPLATES = (
    "a painting in the style of {}", "a rendering in the style of {}", "a cropped painting in the style of {}",
    "the painting in the style of {}", "a clean painting in the style of {}", "a dirty painting in the style of {}",
    "a dark painting in the style of {}", "a picture in the style of {}", "a cool painting in the style of {}",
    "a close-up painting in the style of {}", "a bright painting in the style of {}",
    "a cropped painting in the style of {}", "a good painting in the style of {}",
    "a close-up painting in the style of {}", "a rendition in the style of {}", "a nice painting in the style of {}",
    "a small painting in the style of {}", "a weird painting in the style of {}", "a large painting in the style of {}",
)


@dataclass(frozen=True)
class PromptSource:
    """Where a prompt set published elsewhere lives and which upstream column becomes which of ours
    (fetched and converted on first use by :mod:`memora_bench.prompt_sources`)."""

    url: str  # pinned to a commit or revision; file:// works too
    concept: str  # the classifier label every row is scored against
    id: str = "case_number"
    prompt: str = "prompt"
    seed: str = "evaluation_seed"
    guidance: str = ""  # upstream guidance column; empty: every row gets default_guidance
    default_guidance: float = 7.5
    id_prefix: str = ""
    rows: int = 0  # keep the first N upstream rows (0: all), e.g. 1,000 of a 10,000-caption set


UNPINNED = "unpinned"  # a fetched prompt set's sha256 before `memora-bench pin` ran on a networked machine


def unpinned_sets(task) -> list[str]:
    """The prompt sets of ``task`` fetched from elsewhere whose sha256 is not pinned yet."""
    return [key for key, ps in (("attack_prompts", task.attack_prompts), ("retain_prompts", task.retain_prompts))
            if ps.source is not None and ps.sha256 == UNPINNED]


def fetched_prompts_path(sha256: str, root: Path | None = None) -> Path:
    """Where a fetched set is kept once converted: ``prompts/<sha256>.csv`` in the cache folder (or ``root``)."""
    return (root or default_cache_dir()) / "prompts" / f"{sha256}.csv"


@dataclass(frozen=True)
class PromptSet:
    sha256: str  # of the file (for a fetched set: of the converted file)
    file: str = ""  # relative to the card's folder; empty when the set is fetched from ``source``
    source: PromptSource | None = None  # a set published elsewhere, fetched on first use

    def path(self, card_dir: Path) -> Path:
        """Where the set's prompt CSV is read from: beside the card, or where a fetched set is kept (it may not
        have been fetched yet: :func:`memora_bench.prompt_sources.prompt_file` fetches it)."""
        if self.source is None:
            return Path(card_dir) / self.file
        return fetched_prompts_path(self.sha256)


@dataclass(frozen=True)
class ClassifierRef:
    name: str  # key of memora_bench.classifiers.registry.CLASSIFIERS
    threshold: float


@dataclass(frozen=True)
class BaseModel:
    id: str  # "world/base" (a folder relative to the repository root) or a hub id
    revision: str


@dataclass(frozen=True)
class Quality:
    """Image quality on captions outside the task (SD-1.4 tasks; AdvUnlearn's protocol): CLIP score of each
    image with its caption (open_clip), and FID against a folder of real images (torchmetrics)."""

    prompts: PromptSet  # the captions (e.g. the first 1,000 of COCO-10k), one image per row
    clip_model: str = "ViT-B-32"  # open_clip architecture and pretrained tag (the reference's
    clip_pretrained: str = "openai"  # openai/clip-vit-base-patch32)
    real_images: str = ""  # environment variable naming a folder of real images for FID; empty: no FID


QUALITY_KEYS = {"prompts", "clip", "fid"}


@dataclass(frozen=True)
class Task:
    name: str
    version: int
    description: str
    base_model: BaseModel
    concepts: tuple[Concept, ...]
    attack_prompts: PromptSet
    retain_prompts: PromptSet
    classifiers: tuple[ClassifierRef, ...]
    generation: Generation
    oracle: BaseModel | None = None  # the retrain oracle (the same model trained without the concept)
    quality: Quality | None = None  # CLIP score and FID on captions outside the task (SD-1.4 tasks)
    path: str = ""  # the card's file, filled in by the loader
    sha256: str = ""


@dataclass(frozen=True)
class ProbeConfig:
    name: str
    params: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Suite:
    name: str
    version: int
    description: str
    tasks: tuple[str, ...]
    probes: tuple[ProbeConfig, ...]
    bootstrap: int
    bootstrap_seed: int
    confidence: float
    path: str = ""
    sha256: str = ""


@dataclass(frozen=True)
class Checkpoint:
    path: str  # relative to the submission folder
    sha256: str
    component: str


@dataclass(frozen=True)
class Recipe:
    """How a known-answer control is made from its base model (and checkpoint), applied when it is loaded:
    ``hide`` replaces the text encoder's token embeddings of each word by those of another word (the
    concept is hidden from the prompts; the UNet is untouched)."""

    hide: tuple[tuple[str, str], ...] = ()

    def as_dict(self) -> dict:
        return {"hide": [list(pair) for pair in self.hide]}


@dataclass(frozen=True)
class Submission:
    name: str
    method: str
    authors: tuple[str, ...]
    reference: str
    base_model: BaseModel
    erased: tuple[str, ...]
    tasks: tuple[str, ...]
    checkpoint: Checkpoint | None  # None: the base model itself (the `original` control)
    control: bool = False
    notes: str = ""
    recipe: Recipe | None = None  # known-answer controls only (memora_bench/unlearning/controls.py)
    path: str = ""
    sha256: str = ""


@dataclass(frozen=True)
class PromptRow:
    id: str
    prompt: str
    seed: int
    guidance: float
    concept: str


# --- strict building ----------------------------------------------------------------------------------------

def _suggest(key: str, allowed) -> str:
    close = difflib.get_close_matches(key[:200], list(allowed), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def short(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters: an error message never echoes an unbounded value."""
    text = repr(value) if len(repr(value)) <= limit else repr(value)[:limit] + "..."
    return text


NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"  # a folder name, a file name and an HTML id can all hold it


def bad_name(name: str) -> str:
    """Why ``name`` cannot name a submission, task or suite ('' if it can)."""
    import re

    if re.fullmatch(NAME_PATTERN, name):
        return ""
    return (f"{short(name)} is not a valid name: letters, digits, '.', '_' and '-' only, starting with a letter "
            f"or digit, at most 100 characters")


def invisible_characters(text: str) -> list[str]:
    """Format and control characters (bidi overrides, zero-width joiners, ...) that make a text display as
    another; newlines and tabs are allowed."""
    import unicodedata

    return sorted({f"U+{ord(c):04X}" for c in text if unicodedata.category(c) in ("Cf", "Cc") and c not in "\n\t"})


MAX_SPEC_BYTES = 1 << 20  # a card, suite or manifest is a screenful; a bigger file is refused unread


class _StrictLoader(yaml.SafeLoader):
    """YAML without aliases (``*name``: a few lines of them expand to gigabytes) and without duplicate keys
    (PyYAML keeps the last one silently)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.constructor.ConstructorError(None, None, "aliases (*name) are not allowed", mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)) or key is None:
                if key in seen:
                    raise yaml.constructor.ConstructorError(None, None, f"duplicate key {short(key)}",
                                                            key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep)


def parse_yaml(text: str) -> Any:
    """Parse a spec's YAML strictly (no aliases, no duplicate keys); raises ``yaml.YAMLError``."""
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)


class _Reader:
    """Reads one mapping of a YAML file, collecting problems instead of stopping at the first."""

    def __init__(self, where: str, problems: list[str]):
        self.where, self.problems = where, problems

    def mapping(self, data: Any, field_name: str, allowed: set[str], required: set[str]) -> dict:
        if not isinstance(data, dict):
            self.problems.append(f"{self.where}: {field_name or 'top level'} must be a mapping, got {type(data).__name__}")
            return {}
        prefix = f"{field_name}." if field_name else ""
        for key in data:
            if key not in allowed:
                self.problems.append(f"{self.where}: unknown key '{prefix}{str(key)[:80]}'{_suggest(str(key), allowed)}")
        for key in sorted(required - set(data)):
            self.problems.append(f"{self.where}: missing required key '{prefix}{key}'")
        return data

    def get(self, data: dict, key: str, kind: type | tuple, name: str, default: Any = None, choices=None) -> Any:
        if key not in data:
            return default
        value = data[key]
        ok = isinstance(value, kind) and not (kind in (int, float, (int, float)) and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            expected = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            self.problems.append(f"{self.where}: '{name}' must be {expected}, got {short(value)}")
            return default
        if isinstance(value, str) and invisible_characters(value):
            self.problems.append(f"{self.where}: '{name}' contains invisible or control characters "
                                 f"({', '.join(invisible_characters(value)[:5])})")
            return default
        if choices is not None and value not in choices:
            self.problems.append(f"{self.where}: '{name}' is {short(value)}; expected one of {list(choices)}"
                                 f"{_suggest(str(value), choices)}")
            return default
        return value


def _filled_by_loader(cls) -> set[str]:
    """Fields the loader fills in (the file's own path and hash), which a YAML file may not set."""
    return {"path", "sha256"} if cls in (Task, Suite, Submission) else set()


def _keys(cls) -> set[str]:
    return {f.name for f in fields(cls)} - _filled_by_loader(cls)


def _required(cls) -> set[str]:
    from dataclasses import MISSING

    required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
    return required - _filled_by_loader(cls)


def _read_yaml(path: Path, problems: list[str]) -> Any:
    try:
        if path.stat().st_size > MAX_SPEC_BYTES:
            problems.append(f"{path}: larger than {MAX_SPEC_BYTES // 1024} KiB; a spec file is refused unread")
            return None
        text = path.read_text()
    except OSError as err:
        problems.append(f"{path}: cannot read ({err.strerror})")
        return None
    except UnicodeDecodeError:
        problems.append(f"{path}: not UTF-8 text")
        return None
    try:
        return parse_yaml(text)
    except yaml.YAMLError as err:
        problems.append(f"{path}: not valid YAML ({_yaml_reason(err)})")
        return None


def read_yaml_file(path: Path) -> Any:
    """A YAML spec file's data, read strictly; raises :class:`SpecError`."""
    problems: list[str] = []
    data = _read_yaml(Path(path), problems)
    if problems:
        raise SpecError(problems)
    return data


def _yaml_reason(err: yaml.YAMLError) -> str:
    """The problem and where it is, e.g. 'duplicate key 'name', line 3'."""
    problem = getattr(err, "problem", None)
    mark = getattr(err, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem}, line {mark.line + 1} column {mark.column + 1}"
    return str(err).splitlines()[0][:200]


def _open(path: Path) -> tuple[Path, list[str], "_Reader", dict]:
    """Read a YAML spec: (path, problems, reader, top-level mapping); raises when it cannot be read at all."""
    path = Path(path)
    problems: list[str] = []
    data = _read_yaml(path, problems)
    if data is None:
        raise SpecError(problems or [f"{path}: empty file"])
    return path, problems, _Reader(str(path), problems), data


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _base_model(r: _Reader, data: Any) -> BaseModel:
    m = r.mapping(data, "base_model", _keys(BaseModel), _required(BaseModel))
    return BaseModel(r.get(m, "id", str, "base_model.id", ""), str(r.get(m, "revision", (str, int), "base_model.revision", "")))


def _positive(r: _Reader, value: Any, name: str) -> None:
    if isinstance(value, (int, float)) and value <= 0:
        r.problems.append(f"{r.where}: '{name}' must be positive, got {value}")


def _nonempty_list(m: dict, key: str, path: Path, problems: list[str]) -> list:
    value = m.get(key, [])
    if not isinstance(value, list) or not value:
        problems.append(f"{path}: '{key}' must be a non-empty list")
        return []
    return value


def _prompt_set(r: _Reader, m: dict, key: str, path: Path, problems: list[str]) -> PromptSet:
    """The prompt set under ``m[key]``: a CSV beside the card (``file``) or a set published elsewhere (``source``)."""
    pm = r.mapping(m.get(key, {}), key, _keys(PromptSet), _required(PromptSet)) if key in m else {}
    source = None
    if "source" in pm:
        names = {f.name for f in fields(PromptSource)}
        sm = r.mapping(pm["source"], f"{key}.source", names, {"url", "concept"})
        kw = {k: v for k, v in sm.items() if k in names and isinstance(v, (str, int, float))}
        if "rows" in kw and (not isinstance(kw["rows"], int) or kw["rows"] < 0):
            problems.append(f"{path}: '{key}.source.rows' must be a whole number >= 0 (0: every row), "
                            f"got {kw['rows']!r}")
            kw.pop("rows")
        source = PromptSource(**kw) if {"url", "concept"} <= set(kw) else None
    ps = PromptSet(r.get(pm, "sha256", str, f"{key}.sha256", ""), r.get(pm, "file", str, f"{key}.file", ""), source)
    if pm and bool(ps.file) == (source is not None):
        problems.append(f"{path}: '{key}' needs exactly one of 'file' (a CSV beside the card) or 'source' "
                        f"(a set fetched on first use)")
    return ps


def _quality(r: _Reader, data: Any, path: Path, problems: list[str]) -> Quality:
    qm = r.mapping(data, "quality", QUALITY_KEYS, {"prompts", "clip"})
    ps = _prompt_set(r, {"quality.prompts": qm.get("prompts")} if "prompts" in qm else {}, "quality.prompts",
                     path, problems)
    cm = r.mapping(qm.get("clip", {}), "quality.clip", {"model", "pretrained"}, {"model", "pretrained"})
    fm = r.mapping(qm["fid"], "quality.fid", {"real_images"}, {"real_images"}) if "fid" in qm else {}
    env = r.get(fm, "real_images", str, "quality.fid.real_images", "")
    if env and not env.replace("_", "").isalnum():
        problems.append(f"{path}: 'quality.fid.real_images' names an environment variable, got {env!r}")
    return Quality(ps, r.get(cm, "model", str, "quality.clip.model", ""),
                   r.get(cm, "pretrained", str, "quality.clip.pretrained", ""), env)


def _strings(r, m: dict, key: str, name: str) -> tuple[str, ...]:
    """A list of non-empty strings (each checked like every string of a card)."""
    if key not in m:
        return ()
    value = m[key]
    if not isinstance(value, list) or not value:
        r.problems.append(f"{r.where}: '{name}' must be a non-empty list, got {short(value)}")
        return ()
    out = [r.get({key: v}, key, str, f"{name}[{j}]") for j, v in enumerate(value)]
    bad = [j for j, v in enumerate(out) if v is not None and not v.strip()]
    if bad:
        r.problems.append(f"{r.where}: '{name}[{bad[0]}]' is empty")
    return tuple(v for v in out if v)


def _concept(r, cm: dict, name: str) -> Concept:
    """One concept of a task card with its vocabulary (:class:`Concept`), every problem named."""
    templates = _strings(r, cm, "templates", f"{name}.templates")
    for j, t in enumerate(templates):
        if t.count("{}") != 1 or t.replace("{}", "").count("{") or t.replace("{}", "").count("}"):
            r.problems.append(f"{r.where}: '{name}.templates[{j}]' must hold exactly one {{}} and no other "
                              f"braces, got {short(t)}")
    pairs = []
    raw = cm.get("contrast", [])
    if not isinstance(raw, list) or ("contrast" in cm and not raw):
        r.problems.append(f"{r.where}: '{name}.contrast' must be a non-empty list of [with, without] pairs")
        raw = []
    for j, pair in enumerate(raw):
        both = _strings(r, {"pair": pair}, "pair", f"{name}.contrast[{j}]") if isinstance(pair, list) else ()
        if len(both) != 2 or both[0] == both[1]:
            r.problems.append(f"{r.where}: '{name}.contrast[{j}]' must be two different captions [with the "
                              f"concept, without it], got {short(pair)}")
            continue
        pairs.append((both[0], both[1]))
    return Concept(
        r.get(cm, "name", str, f"{name}.name", ""),
        r.get(cm, "kind", str, f"{name}.kind", "", CONCEPT_KINDS),
        r.get(cm, "prompt", str, f"{name}.prompt", ""),
        r.get(cm, "label", str, f"{name}.label", ""),
        aliases=_strings(r, cm, "aliases", f"{name}.aliases"),
        templates=templates,
        initializer=r.get(cm, "initializer", str, f"{name}.initializer", ""),
        contrast=tuple(pairs),
        neutral=r.get(cm, "neutral", str, f"{name}.neutral", ""),
    )


def load_task(path: Path) -> Task:
    """A task card; raises :class:`SpecError` listing every problem of the card and its prompt files."""
    path, problems, r, data = _open(path)
    m = r.mapping(data, "", _keys(Task), _required(Task))
    concepts = []
    for i, c in enumerate(_nonempty_list(m, "concepts", path, problems)):
        cm = r.mapping(c, f"concepts[{i}]", _keys(Concept), _required(Concept))
        concepts.append(_concept(r, cm, f"concepts[{i}]"))
    sets = {key: _prompt_set(r, m, key, path, problems) for key in ("attack_prompts", "retain_prompts")}
    classifiers = []
    for i, c in enumerate(_nonempty_list(m, "classifiers", path, problems)):
        cm = r.mapping(c, f"classifiers[{i}]", _keys(ClassifierRef), _required(ClassifierRef))
        threshold = r.get(cm, "threshold", float, f"classifiers[{i}].threshold", 0.0)
        if not 0.0 <= threshold <= 1.0:
            problems.append(f"{path}: 'classifiers[{i}].threshold' must be in [0, 1], got {threshold}")
        classifiers.append(ClassifierRef(r.get(cm, "name", str, f"classifiers[{i}].name", "", CLASSIFIERS), threshold))
    gm = r.mapping(m.get("generation", {}), "generation", _keys(Generation), _required(Generation)) if "generation" in m else {}
    gen = Generation(
        r.get(gm, "scheduler", str, "generation.scheduler", "ddim", SCHEDULERS),
        r.get(gm, "steps", int, "generation.steps", 50),
        r.get(gm, "guidance", float, "generation.guidance", 7.5),
        r.get(gm, "height", int, "generation.height", 0),
        r.get(gm, "width", int, "generation.width", 0),
        r.get(gm, "images_per_prompt", int, "generation.images_per_prompt", 1),
    )
    for name in ("steps", "height", "width", "images_per_prompt"):
        _positive(r, getattr(gen, name), f"generation.{name}")
    version = r.get(m, "version", int, "version", 0)
    _positive(r, version, "version")
    task = Task(
        name=r.get(m, "name", str, "name", ""),
        version=version,
        description=r.get(m, "description", str, "description", ""),
        base_model=_base_model(r, m.get("base_model", {})) if "base_model" in m else BaseModel("", ""),
        concepts=tuple(concepts),
        attack_prompts=sets["attack_prompts"],
        retain_prompts=sets["retain_prompts"],
        classifiers=tuple(classifiers),
        generation=gen,
        oracle=_base_model(r, m["oracle"]) if m.get("oracle") is not None else None,
        quality=_quality(r, m["quality"], path, problems) if "quality" in m else None,
        path=str(path),
        sha256=sha256_file(path) if path.exists() else "",
    )
    problems += [f"{path}: 'name' {why}" for why in [bad_name(task.name)] if why and "name" in m]
    if task.name and task.name != path.stem:
        problems.append(f"{path}: 'name' is {task.name!r} but the file is named {path.stem!r}")
    labels = {c.label for c in concepts}
    sets = {"attack_prompts": task.attack_prompts, "retain_prompts": task.retain_prompts}
    if task.quality is not None:
        sets["quality.prompts"] = task.quality.prompts
    for key, ps in sets.items():
        if ps.source is not None:
            fetched = fetched_prompts_path(ps.sha256)  # checked here once fetched; before that, when first used
            rows = read_prompts(fetched, ps.sha256, problems) if fetched.exists() else []
        elif ps.file:
            rows = read_prompts(path.parent / ps.file, ps.sha256, problems)
        else:
            rows = []
        if key == "attack_prompts":
            for row in rows:
                if row.concept not in labels:
                    problems.append(f"{path.parent / ps.file}: row {row.id}: concept {row.concept!r} is not "
                                    f"one of the task's concept labels {sorted(labels)}")
    if problems:
        raise SpecError(problems)
    return task


def prompts_csv(rows: list[dict]) -> str:
    """A prompt file's text: the header and one line per row (the inverse of :func:`read_prompts`)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(PROMPT_COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    text = buf.getvalue()
    back = list(csv.DictReader(io.StringIO(text, newline="")))
    if [r["prompt"] for r in back] != [str(r["prompt"]) for r in rows]:
        raise ValueError("a prompt does not survive a CSV round trip (a bare carriage return?)")
    return text


def read_prompts(path: Path, expected_sha256: str | None, problems: list[str] | None = None) -> list[PromptRow]:
    """Rows of a prompt CSV (id, prompt, seed, guidance, concept), checked against its sha256.

    With ``problems`` given, problems are appended there; otherwise a :class:`SpecError` is raised.
    """
    own = problems is None
    problems = [] if own else problems
    rows: list[PromptRow] = []
    try:
        raw = Path(path).read_bytes()
    except OSError as err:
        problems.append(f"{path}: cannot read prompt file ({err.strerror})")
        raw = None
    if raw is not None:
        digest = sha256_bytes(raw)
        if expected_sha256 is not None and digest != expected_sha256:
            problems.append(f"{path}: sha256 is {digest}, the card says {expected_sha256}")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            problems.append(f"{path}: not UTF-8 text")
            text = ""
        reader = csv.DictReader(io.StringIO(text, newline=""))  # keeps newlines inside quoted prompts
        header = reader.fieldnames or []
        missing = [c for c in PROMPT_COLUMNS if c not in header]
        extra = [c for c in header if c not in PROMPT_COLUMNS]
        if missing:
            problems.append(f"{path}: missing column(s) {missing}; expected {list(PROMPT_COLUMNS)}")
        for c in extra:
            problems.append(f"{path}: unknown column '{c}'{_suggest(c, PROMPT_COLUMNS)}")
        seen: set[str] = set()
        if not missing:
            for rec in reader:
                line = reader.line_num  # the record's last physical line
                bad = _prompt_row(rec, f"{path}:{line}", problems)
                if bad is None:
                    continue
                if bad.id in seen:
                    problems.append(f"{path}:{line}: duplicate id {bad.id!r}")
                seen.add(bad.id)
                rows.append(bad)
            if not rows and not any(p.startswith(f"{path}:") for p in problems):
                problems.append(f"{path}: no prompt rows")
    if own and problems:
        raise SpecError(problems)
    return rows


def _prompt_row(rec: dict, where: str, problems: list[str]) -> PromptRow | None:
    if None in rec or any(v is None for v in rec.values()):
        problems.append(f"{where}: wrong number of fields")
        return None
    try:
        seed = int(rec["seed"])
    except ValueError:
        problems.append(f"{where}: seed {rec['seed']!r} is not an integer")
        return None
    try:
        guidance = float(rec["guidance"])
    except ValueError:
        problems.append(f"{where}: guidance {rec['guidance']!r} is not a number")
        return None
    if seed < 0 or guidance < 0 or guidance != guidance:
        problems.append(f"{where}: seed and guidance must be non-negative")
        return None
    if not rec["prompt"].strip() or not rec["id"].strip():
        problems.append(f"{where}: empty id or prompt")
        return None
    return PromptRow(rec["id"], rec["prompt"], seed, guidance, rec["concept"])


def load_suite(path: Path) -> Suite:
    """A suite file; every problem at once."""
    path, problems, r, data = _open(path)
    m = r.mapping(data, "", _keys(Suite), _required(Suite))
    tasks = m.get("tasks", [])
    if not isinstance(tasks, list) or not tasks or not all(isinstance(t, str) for t in tasks):
        problems.append(f"{path}: 'tasks' must be a non-empty list of task names")
        tasks = []
    probes = []
    raw = m.get("probes", {})
    if not isinstance(raw, dict) or not raw:
        problems.append(f"{path}: 'probes' must be a non-empty mapping of probe name to parameters")
        raw = {}
    for name, params in raw.items():
        if name not in PROBES:
            problems.append(f"{path}: unknown probe '{str(name)[:60]}'{_suggest(str(name), PROBES)}")
            continue
        try:
            parse_params(name, params)
        except ParamError as err:
            problems += [f"{path}: probes.{name}: {p}" for p in err.problems]
            continue
        probes.append(ProbeConfig(name, tuple(sorted((params or {}).items()))))
    confidence = r.get(m, "confidence", float, "confidence", 0.95)
    if not 0.5 < confidence < 1.0:
        problems.append(f"{path}: 'confidence' must be in (0.5, 1), got {confidence}")
    suite = Suite(
        name=r.get(m, "name", str, "name", ""),
        version=r.get(m, "version", int, "version", 0),
        description=r.get(m, "description", str, "description", ""),
        tasks=tuple(tasks),
        probes=tuple(probes),
        bootstrap=r.get(m, "bootstrap", int, "bootstrap", 1000),
        bootstrap_seed=r.get(m, "bootstrap_seed", int, "bootstrap_seed", 0),
        confidence=confidence,
        path=str(path),
        sha256=sha256_file(path) if path.exists() else "",
    )
    problems += [f"{path}: 'name' {why}" for why in [bad_name(suite.name)] if why and "name" in m]
    problems += [f"{path}: task {why}" for t in tasks for why in [bad_name(t)] if why]
    _positive(r, suite.version, "version")
    _positive(r, suite.bootstrap, "bootstrap")
    if problems:
        raise SpecError(problems)
    return suite


def load_submission(path: Path) -> Submission:
    """A submission manifest (``submissions/<name>/submission.yaml``); every problem at once.

    Only the manifest is checked here; the checkpoint's content is checked when it is loaded.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "submission.yaml"
    path, problems, r, data = _open(path)
    m = r.mapping(data, "", _keys(Submission), _required(Submission) - {"checkpoint"})
    ckpt = None
    if m.get("checkpoint") is not None:
        cm = r.mapping(m["checkpoint"], "checkpoint", _keys(Checkpoint), _required(Checkpoint))
        ckpt = Checkpoint(
            r.get(cm, "path", str, "checkpoint.path", ""),
            r.get(cm, "sha256", str, "checkpoint.sha256", ""),
            r.get(cm, "component", str, "checkpoint.component", "", COMPONENTS),
        )
        escaped = len(problems)
        _check_inside(path.parent, ckpt.path, problems, str(path))
        if ckpt.path and len(problems) == escaped and not (path.parent / ckpt.path).exists():
            problems.append(f"{path}: checkpoint.path {ckpt.path!r}: no such file in the submission folder")
        if ckpt.sha256 and (len(ckpt.sha256) != 64 or any(ch not in "0123456789abcdef" for ch in ckpt.sha256)):
            problems.append(f"{path}: 'checkpoint.sha256' must be 64 lowercase hex digits")
    elif not m.get("control", False):
        problems.append(f"{path}: missing required key 'checkpoint' (only a control may evaluate the base model)")

    def str_list(key: str) -> tuple[str, ...]:
        v = m.get(key, [])
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            problems.append(f"{path}: '{key}' must be a list of strings")
            return ()
        for x in v:
            if invisible_characters(x):
                problems.append(f"{path}: '{key}' contains invisible or control characters "
                                f"({', '.join(invisible_characters(x)[:5])})")
        return tuple(v)

    sub = Submission(
        name=r.get(m, "name", str, "name", ""),
        method=r.get(m, "method", str, "method", ""),
        authors=str_list("authors"),
        reference=r.get(m, "reference", str, "reference", ""),
        base_model=_base_model(r, m.get("base_model", {})) if "base_model" in m else BaseModel("", ""),
        erased=str_list("erased"),
        tasks=str_list("tasks"),
        checkpoint=ckpt,
        control=r.get(m, "control", bool, "control", False),
        notes=r.get(m, "notes", str, "notes", ""),
        recipe=_recipe(r, m["recipe"], path, problems) if m.get("recipe") is not None else None,
        path=str(path),
        sha256=sha256_file(path) if path.exists() else "",
    )
    problems += [f"{path}: 'name' {why}" for why in [bad_name(sub.name)] if why and "name" in m]
    if sub.recipe is not None and not sub.control:
        problems.append(f"{path}: 'recipe' is for known-answer controls (control: true): a submission's model "
                        f"is its checkpoint")
    problems += [f"{path}: tasks: {why}" for t in sub.tasks for why in [bad_name(t)] if why]
    if sub.name and sub.name != path.parent.name:
        problems.append(f"{path}: 'name' is {sub.name!r} but the folder is {path.parent.name!r}")
    if problems:
        raise SpecError(problems)
    return sub


def _recipe(r: _Reader, data: Any, path: Path, problems: list[str]) -> Recipe:
    """A known-answer control's recipe: ``hide`` maps each word to the word whose token embeddings replace it."""
    rm = r.mapping(data, "recipe", {"hide"}, {"hide"})
    hide = rm.get("hide", {})
    if not isinstance(hide, dict) or not hide or not all(
            isinstance(k, (str, int)) and isinstance(v, (str, int)) and str(k).strip() and str(v).strip()
            for k, v in hide.items()):
        problems.append(f"{path}: 'recipe.hide' must map each word to hide to a replacement word")
        return Recipe()
    return Recipe(tuple((str(k), str(v)) for k, v in hide.items()))


def _check_inside(folder: Path, rel: str, problems: list[str], where: str) -> None:
    """A checkpoint path must stay inside its submission folder, also through symlinks."""
    if not rel:
        return
    if "://" in rel:
        problems.append(f"{where}: checkpoint URLs are not fetched here; download it into the submission folder")
        return
    target = (folder / rel)
    try:
        resolved = target.resolve()
    except OSError:
        resolved = target
    if Path(rel).is_absolute() or folder.resolve() not in resolved.parents:
        problems.append(f"{where}: checkpoint.path {rel!r} escapes the submission folder {folder}")
