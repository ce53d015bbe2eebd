"""Render the static site: index (one table per task), one page per submission, CSV and JSON downloads."""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markdown_it import MarkdownIt

from memora_bench import __version__
from memora_bench.cache import Cache, atomic_write_text, is_key
from memora_bench.exits import EXIT_BAD_INPUT, EXIT_OK
from memora_bench.leaderboard.rows import build_tables, flat_records, rate_cell
from memora_bench.paths import repo_root
from memora_bench.probes.registry import title
from memora_bench.results import ResultError, load_image_lines, load_result
from memora_bench.scoring import is_original, is_retrain_oracle
from memora_bench.specs import sha256_file
from memora_bench.verdict import display_interval

HERE = Path(__file__).parent
STRIP = 8  # images per strip


class LeaderboardError(ValueError):
    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def load_all(paths: list[Path]) -> dict[tuple[str, str], tuple[dict, Path]]:
    """(submission, task) -> (result, its file), from result files or folders searched recursively."""
    out, problems = {}, []
    for path in map(Path, paths):
        if not path.exists():
            problems.append(f"{path}: no such file or folder")
            continue
        for f in [path] if path.is_file() else sorted(path.rglob("*.json")):
            try:
                data = load_result(f)
            except ResultError as err:  # JSON, schema or semantic errors, naming the file: keep going
                problems.append(str(err).splitlines()[0][:400])
                continue
            key = (data["submission"]["name"], data["task"]["name"])
            if key in out:
                problems.append(f"{f}: a second result for submission {key[0]!r} on task {key[1]!r} "
                                f"(first: {out[key][1]})")
                continue
            out[key] = (data, f)
    if not out and not problems:
        problems.append("no result files found in " + ", ".join(map(str, paths)))
    if problems:
        raise LeaderboardError(problems)
    return out


def slug(name: str) -> str:
    """A safe, unique file name for a submission name."""
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "submission"
    return f"{clean[:60]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def _env():
    return Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True),
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


# --- recovery curve as inline SVG -----------------------------------------------------------------------------

W, H, PAD = 380, 250, 44


def _xy(budget: float, rate: float, max_x: float) -> tuple[float, float]:
    x = PAD + (W - 2 * PAD) * (math.log2(1 + budget) / max_x if max_x else 0)
    y = H - PAD - (H - 2 * PAD) * rate
    return round(x, 1), round(y, 1)


def curve_svg(concept: str, entry: dict, budgets: list[int]) -> dict:
    """Coordinates of the submission's curve, the oracle floor and the original ceiling, with bands."""
    max_x = math.log2(1 + max(budgets)) or 1.0

    def series(points: list[dict], name: str, css: str) -> dict:
        line = [_xy(b, p["rate"], max_x) for b, p in zip(budgets, points)]
        lo = [_xy(b, display_interval(p)[0], max_x) for b, p in zip(budgets, points)]
        hi = [_xy(b, display_interval(p)[1], max_x) for b, p in zip(budgets, points)]
        band = " ".join(f"{x},{y}" for x, y in hi + lo[::-1])
        dots = [{"x": x, "y": y, "title": f"{name}, {b} steps: {p['k']}/{p['n']} = {100 * p['rate']:.1f} %"}
                for (x, y), b, p in zip(line, budgets, points)]
        return {"name": name, "css": css, "points": " ".join(f"{x},{y}" for x, y in line), "band": band,
                "dots": dots}

    out = {"concept": concept, "width": W, "height": H, "series": [series(entry["curve"], "submission", "sub")]}
    if entry.get("oracle_curve"):
        out["series"].append(series(entry["oracle_curve"], "retrain oracle (floor)", "oracle"))
    ceiling = entry.get("ceiling")
    if ceiling:
        y = _xy(0, ceiling["rate"], max_x)[1]
        out["ceiling"] = {"y": y, "x1": PAD, "x2": W - PAD,
                          "title": f"original model: {ceiling['k']}/{ceiling['n']} = {100 * ceiling['rate']:.1f} %"}
    out["xticks"] = [{"x": _xy(b, 0, max_x)[0], "label": str(b)} for b in budgets]
    out["yticks"] = [{"y": _xy(0, r, max_x)[1], "label": f"{int(r * 100)} %"} for r in (0, 0.5, 1)]
    out["axis"] = {"x1": PAD, "x2": W - PAD, "y0": H - PAD, "ytop": PAD}
    out["titles"] = {"x": {"x": W / 2, "y": H - 8, "text": "LoRA relearning steps (log scale)"},
                     "y": {"x": 12, "y": H / 2, "text": "images showing the concept"}}
    legend = [(s["name"], s["css"]) for s in out["series"]] + ([("original model (ceiling)", "ceiling")]
                                                                 if ceiling else [])
    out["legend"] = [{"x": PAD + 8, "y": PAD - 26 + 12 * i, "text": name, "css": css} for i, (name, css) in enumerate(legend)]
    return out


# --- per task: every method's recovery curve on one chart, and robustness against utility --------------------------

OW, OH = 600, 320
PALETTE = 8  # CSS classes c0 .. c7; a ninth method repeats a colour with a dashed line


def overview_svg(task: str, concept: str, items: list[dict], budgets: list[int]) -> dict | None:
    """Every method's MemoRa curve for ``concept`` on one chart (log axis), with the retrain oracle's curve (the
    floor) and the original model's rate (the ceiling). Controls other than the oracle and the original are left
    out: the chart compares methods. None when no method was attacked with MemoRa on this concept."""
    max_x = math.log2(1 + max(budgets)) or 1.0

    def xy(b, r):
        x = PAD + (OW - 2 * PAD - 170) * (math.log2(1 + b) / max_x)
        return round(x, 1), round(OH - PAD - (OH - 2 * PAD) * r, 1)

    methods, oracle, ceiling = [], None, None
    for d in items:
        entry = ((d["probes"].get("memora") or {}).get("concepts") or {}).get(concept)
        if entry is None or list(d["probes"]["memora"]["params"]["budgets"]) != list(budgets):
            continue
        if is_retrain_oracle(d):
            oracle = entry["curve"]
        elif is_original(d):
            ceiling = ceiling or entry.get("ceiling")
        elif not d["submission"].get("control"):
            methods.append((d["submission"]["name"], entry["curve"]))
        ceiling = ceiling or entry.get("ceiling")
        oracle = oracle or entry.get("oracle_curve")
    if not methods:
        return None
    lines = []
    for i, (name, curve) in enumerate(sorted(methods)):
        pts = [xy(b, p["rate"]) for b, p in zip(budgets, curve)]
        lines.append({"name": name, "css": f"c{i % PALETTE}" + (" dashed" if i >= PALETTE else ""),
                      "points": " ".join(f"{x},{y}" for x, y in pts),
                      "dots": [{"x": x, "y": y, "title": f"{name}, {b} steps: {p['k']}/{p['n']}"}
                               for (x, y), b, p in zip(pts, budgets, curve)]})
    if oracle:
        pts = [xy(b, p["rate"]) for b, p in zip(budgets, oracle)]
        lines.append({"name": "retrain oracle (floor)", "css": "oracle", "points": " ".join(f"{x},{y}" for x, y in pts),
                      "dots": [{"x": x, "y": y, "title": f"retrain oracle, {b} steps: {p['k']}/{p['n']}"}
                               for (x, y), b, p in zip(pts, budgets, oracle)]})
    x_end = xy(max(budgets), 0)[0]
    out = {"task": task, "concept": concept, "width": OW, "height": OH, "lines": lines,
           "axis": {"x1": PAD, "x2": x_end, "y0": OH - PAD, "ytop": PAD},
           "xticks": [{"x": xy(b, 0)[0], "label": str(b)} for b in budgets],
           "yticks": [{"y": xy(0, r)[1], "label": f"{int(r * 100)} %"} for r in (0, 0.5, 1)],
           "titles": {"x": {"x": (PAD + x_end) / 2, "y": OH - 8, "text": "LoRA relearning steps (log scale)"},
                      "y": {"x": 12, "y": OH / 2, "text": "images showing the concept"}}}
    if ceiling:
        out["ceiling"] = {"y": xy(0, ceiling["rate"])[1], "x1": PAD, "x2": x_end,
                          "title": f"original model: {ceiling['k']}/{ceiling['n']}"}
    legend = [(x["name"], x["css"]) for x in lines] + ([("original model (ceiling)", "ceiling")] if ceiling else [])
    out["legend"] = [{"x": x_end + 16, "y": PAD + 14 * i, "text": name, "css": css} for i, (name, css) in enumerate(legend)]
    return out


def scatter_svg(table) -> dict | None:
    """Robustness against utility for a task scored by the verdict: each method's index (x; 0 like the retrain
    oracle, 1 like the original) against its retained-concept accuracy (y), with the original and the oracle as
    reference points. None for tables without an index."""
    points = []
    for row in table.rows:
        idx, ret = row.cells.get("index"), row.cells.get("retain")
        if idx is None or ret is None or idx.sort is None or ret.sort is None:
            continue
        if row.control and row.submission not in ("original", "oracle"):
            continue
        points.append((row.submission, float(idx.sort), float(ret.sort), row.label, row.control))
    if not points:
        return None
    lo = min(0.0, min(p[1] for p in points))
    hi = max(1.0, max(p[1] for p in points))
    y_lo = min(0.5, min(p[2] for p in points))
    w, h, right = 540, OH, 110  # room on the right for the labels of the points at the top of the index

    def xy(i, r):
        return (round(PAD + (w - PAD - right) * (i - lo) / (hi - lo), 1),
                round(h - PAD - (h - 2 * PAD) * (r - y_lo) / (1 - y_lo), 1))

    dots = [{"x": xy(i, r)[0], "y": xy(i, r)[1], "name": name, "css": label or "undefined",
             "reference": control, "title": f"{name}: index {i:.2f}, retained {100 * r:.1f} %, {label}"}
            for name, i, r, label, control in sorted(points, key=lambda p: (-p[2], p[1], p[0]))]
    placed: list[tuple[float, float]] = []
    for d in dots:  # labels of points that coincide are stacked downwards instead of printed on each other
        lx, ly = d["x"] + 6, d["y"] - 5
        while any(abs(lx - px) < 90 and abs(ly - py) < 11 for px, py in placed):
            ly += 11
        placed.append((lx, ly))
        d["lx"], d["ly"] = lx, round(ly, 1)
    ticks = sorted({round(lo, 1), 0.0, 0.5, 1.0, round(hi, 1)})
    return {"task": table.task, "width": w, "height": h, "dots": dots,
            "axis": {"x1": PAD, "x2": w - right, "y0": h - PAD, "ytop": PAD},
            "xticks": [{"x": xy(t, y_lo)[0], "label": f"{t:.1f}"} for t in ticks],
            "yticks": [{"y": xy(lo, r)[1], "label": f"{int(round(r * 100))} %"} for r in (y_lo, (y_lo + 1) / 2, 1.0)],
            "titles": {"x": {"x": (PAD + w - right) / 2, "y": h - 8,
                             "text": "index: how much comes back (0 like the oracle, 1 like the original)"},
                       "y": {"x": 12, "y": h / 2, "text": "retained accuracy (higher is better)"}}}


def task_charts(results, tables) -> dict[str, dict]:
    """Per task: its overview charts (one per erased concept) and its robustness-against-utility scatter."""
    by_task: dict[str, list[dict]] = {}
    for (_, task), (data, _) in sorted(results.items()):
        by_task.setdefault(task, []).append(data)
    out = {}
    for table in tables:
        items = by_task[table.task]
        concepts = sorted({c for d in items for c in ((d["probes"].get("memora") or {}).get("concepts") or {})})
        budgets = next((list(d["probes"]["memora"]["params"]["budgets"]) for d in items
                        if d["probes"].get("memora")), [])
        overviews = [o for c in concepts if (o := overview_svg(table.task, c, items, budgets))] if budgets else []
        out[table.task] = {"overviews": overviews, "scatter": scatter_svg(table)}
    return out


# --- the methods' papers ------------------------------------------------------------------------------------------

def _is_link(url) -> bool:
    return isinstance(url, str) and re.fullmatch(r"https?://[^\s\"'<>]+", url) is not None


def papers(results) -> dict[str, dict]:
    """Submission name -> {"reference", "authors"} for the board's paper links: from the result's submission
    block when it carries them, else from the submission manifest in this repository (baselines/, controls/,
    submissions/) whose sha256 the result records, so a link is never taken from a file the result did not
    name. Only http(s) addresses become links."""
    manifests: dict[str, Path] | None = None
    out = {}
    for (sub, _), (data, _) in sorted(results.items()):
        if sub in out:
            continue
        record = data["submission"]
        ref, authors = record.get("reference"), record.get("authors")
        if ref is None:
            if manifests is None:
                manifests = {sha256_file(f): f for folder in ("baselines", "controls", "submissions")
                             for f in sorted((repo_root() / folder).glob("*/submission.yaml"))}
            path = manifests.get(record.get("manifest_sha256", ""))
            if path is not None:
                try:
                    manifest = yaml.safe_load(path.read_text()) or {}
                except (OSError, yaml.YAMLError):
                    manifest = {}
                ref, authors = manifest.get("reference"), manifest.get("authors")
        if _is_link(ref):
            out[sub] = {"reference": ref, "authors": tuple(str(a) for a in (authors or []))}
    return out


# --- the scoring doc as a page --------------------------------------------------------------------------------------

def scoring_html(markdown_text: str) -> str:
    """docs/scoring.md as HTML (CommonMark with tables; raw HTML in the source is escaped, not passed through,
    and the generated tables' marker comments are dropped)."""
    text = re.sub(r"<!--.*?-->", "", markdown_text, flags=re.S)
    return MarkdownIt("commonmark", {"html": False}).enable("table").render(text)


# --- image strips -------------------------------------------------------------------------------------------------

def _lines(result: dict, path: Path) -> list[dict]:
    try:  # every line's image_key is checked to be a cache key: it names files we read and write
        return load_image_lines(result, path)
    except ResultError as err:
        raise LeaderboardError([str(err)]) from None


@dataclass(frozen=True)
class ImageStores:
    """Where the images a page shows come from: the cache, then the ``img/`` folders committed beside the
    results, then the site's own ``img/`` from an earlier build; ``keep`` (a results folder's ``img/``) also
    receives every image shown, so that the results carry their images into a fresh clone."""

    cache: Cache | None
    beside_results: tuple[Path, ...] = ()
    keep: Path | None = None
    shown: set[str] = field(default_factory=set)  # the keys of the images the build's pages show


def _regular(path: Path) -> bool:
    return path.is_file() and not path.is_symlink()


def _copy_image(key: str, stores: ImageStores, out: Path) -> str | None:
    """The image's site path, copied into ``out/img`` from the first store that has it; None if none has it.
    The images kept beside the results come first: a cache may hold a redraw of the same key whose pixels
    differ in the last bit (another thread count), and the site must show what a fresh clone rebuilds.
    ``key`` is a validated cache key, so every copy reads and writes only ``<folder>/<key>.png``."""
    if not is_key(key):
        raise LeaderboardError([f"image_key {key[:80]!r} is not a cache key"])
    dst = out / "img" / f"{key}.png"
    sources = [folder / f"{key}.png" for folder in stores.beside_results] + \
        ([stores.cache.path("images", key, ".png")] if stores.cache is not None else []) + [dst]
    src = next((p for p in sources if _regular(p)), None)
    if src is None:
        return None
    if src != dst and (not dst.exists() or dst.read_bytes() != src.read_bytes()):
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    keep = stores.keep / f"{key}.png" if stores.keep is not None else None
    if keep is not None and not keep.exists():
        keep.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, keep)
    stores.shown.add(key)
    return f"../img/{key}.png"


def strip_lines(lines: list[dict]) -> tuple[list[dict], list[dict]]:
    """The image lines of a page's plain strip (the first attack prompts) and MemoRa strip (the same prompts
    recovered at the largest budget, first attack seed); also what ``memora-bench strips`` redraws."""
    plain = sorted((x for x in lines if x["probe"] == "plain" and x.get("prompt_set") == "attack"),
                   key=lambda x: (x["prompt_id"], x["seed"]))[:STRIP]
    rec = [x for x in lines if x["probe"] == "memora"]
    if rec:
        top, seed = max(x["budget"] for x in rec), min(x["attack_seed"] for x in rec)
        rec = sorted((x for x in rec if x["budget"] == top and x["attack_seed"] == seed),
                     key=lambda x: (x["prompt_id"], x["seed"]))[:STRIP]
    return plain, rec


def resurgence_lines(lines: list[dict]) -> list[dict]:
    """The first attack prompts as concept resurgence's fine-tuned model draws them at its largest budget (the
    first fine-tuning seed): the concept coming back with no attack on it."""
    rs = [x for x in lines if x["probe"] == "resurgence"]
    if not rs:
        return []
    top, seed = max(x["budget"] for x in rs), min(x["attack_seed"] for x in rs)
    return sorted((x for x in rs if x["budget"] == top and x["attack_seed"] == seed),
                  key=lambda x: (x["prompt_id"], x["seed"]))[:STRIP]


def strips(result: dict, path: Path, original: tuple[dict, Path] | None, stores: ImageStores, out: Path) -> list[dict]:
    """Original model / unlearned / recovered images for the same first attack prompts."""
    lines = _lines(result, path)
    plain, rec = strip_lines(lines)
    out_strips = []

    def strip(title: str, items: list[dict]) -> dict:
        return {"title": title, "images": [{"src": _copy_image(x["image_key"], stores, out), "prompt": x["prompt"],
                                            "hit": x["hit"], "caption": f"{x['prompt_id']} · seed {x['seed']}"}
                                           for x in items]}

    if original is not None and original[0] is not result:
        ids = {(x["prompt_id"], x["seed"]) for x in plain}
        orig = [x for x in _lines(*original) if x["probe"] == "plain" and (x["prompt_id"], x["seed"]) in ids]
        if orig:
            out_strips.append(strip("original model", sorted(orig, key=lambda x: (x["prompt_id"], x["seed"]))))
    if plain:
        out_strips.append(strip("this submission (plain probe)", plain))
    if rec:
        top, seed = rec[0]["budget"], rec[0]["attack_seed"]
        out_strips.append(strip(f"recovered by MemoRa ({top} steps, attack seed {seed})", rec))
    resurged = resurgence_lines(lines)
    if resurged:
        out_strips.append(strip(f"after {resurged[0]['budget']} steps of fine-tuning on other concepts only "
                                "(concept resurgence)", resurged))
    return out_strips


# --- pages --------------------------------------------------------------------------------------------------------

def probe_breakdown(section: dict) -> list[tuple[str, str]]:
    """What a probe's single rate pools, as (part, "k/n" over every concept) pairs: concept resurgence's rate at
    each fine-tuning budget, completion's and inpainting's finishes (prompt, empty prompt) and interrupt steps,
    each variant of a grid probe (noise-based, classifier guidance). Empty for the other probes."""
    def kn(rates: dict) -> str:
        return f"{rates['all']['k']}/{rates['all']['n']}"

    out = [(f"after {c['budget']} fine-tuning steps", kn(c["rates"])) for c in section.get("curve", [])
           if isinstance(c, dict) and "budget" in c and "rates" in c]
    names = {"concept": "finished under the prompt", "neutral": "finished under the empty prompt"}
    out += [(names.get(how, how), kn(rates)) for how, rates in section.get("by_finish", {}).items()]
    out += [(f"from interrupt step {i}", kn(rates)) for i, rates in section.get("by_interrupt", {}).items()]
    out += [(", ".join(f"{k.replace('_', ' ')} {v}" for k, v in g.items() if k not in ("k", "n")), f"{g['k']}/{g['n']}")
            for g in section.get("grid", [])]
    return out


def _kv(obj, prefix: str = "") -> list[tuple[str, str]]:
    """A nested dict as (dotted key, text) pairs, for the manifest and provenance lists."""
    if isinstance(obj, dict):
        return [pair for k, v in obj.items() for pair in _kv(v, f"{prefix}{k}.")]
    if isinstance(obj, list) and obj and all(isinstance(v, dict) for v in obj):
        return [pair for i, v in enumerate(obj) for pair in _kv(v, f"{prefix}{i}.")]
    return [(prefix.rstrip("."), obj if isinstance(obj, str) else json.dumps(obj))]


def _original_for(results, task: str, base: dict):
    """The result of the original model on the task: a control with no checkpoint that erased nothing.

    (The retrain oracle is a control with no checkpoint too, and a result records the task's base model, not
    the control's own, so "erased nothing" is what tells the original from the oracle.)"""
    for (sub, t), (data, path) in sorted(results.items()):
        if t == task and is_original(data) and data["base_model"] == base:
            return data, path
    return None


def build_site(paths: list[Path], out: Path, cache_dir: Path | None = None, keep_images: bool = False) -> dict:
    """Render the site into ``out``; returns a summary (pages, tables, images). Images come from the cache,
    the ``img/`` folders beside the results folders, or the site's earlier build; ``keep_images`` copies every
    image shown into the ``img/`` folder beside the results folder it belongs to."""
    results = load_all(paths)
    cache = Cache(Path(cache_dir)) if cache_dir and Path(cache_dir).exists() else None
    folders = [Path(p) for p in paths if Path(p).is_dir()]
    beside = tuple(f / "img" for f in folders)
    out = Path(out)
    (out / "submissions").mkdir(parents=True, exist_ok=True)
    (out / "static").mkdir(exist_ok=True)
    for f in (HERE / "static").iterdir():
        shutil.copyfile(f, out / "static" / f.name)
    env = _env()
    scoring = repo_root() / "docs" / "scoring.md"
    if scoring.exists():
        shutil.copyfile(scoring, out / "scoring.md")
        _write(out / "scoring.html", env.get_template("scoring.html").render(
            body=scoring_html(scoring.read_text()), version=__version__, root=""))
    page_of = {}
    for sub, _ in results:
        page_of[sub] = f"submissions/{slug(sub)}.html"
    tables = build_tables({k: v[0] for k, v in results.items()}, lambda s: page_of[s])
    links = papers(results)
    for table in tables:
        for row in table.rows:
            if row.submission in links:
                row.reference, row.authors = links[row.submission]["reference"], links[row.submission]["authors"]
    records = flat_records(tables)
    _write(out / "index.html", env.get_template("index.html").render(
        tables=tables, version=__version__, n_results=len(results), root="", charts=task_charts(results, tables),
        verdict=any(c.id == "index" for t in tables for c in t.columns),
        nudity_tasks=_nudity_tasks(results), about=_about(results)))
    _write(out / "leaderboard.json", json.dumps({"memora_bench": __version__, "rows": records}, indent=2) + "\n")
    _write(out / "leaderboard.csv", _csv(records))
    pages, shown = 0, set()
    for sub in sorted(page_of):
        sections = []
        for (s, task), (data, path) in sorted(results.items()):
            if s != sub:
                continue
            try:
                home = next((f for f in folders if path.resolve().is_relative_to(f.resolve())), None)
                stores = ImageStores(cache, beside, home / "img" if keep_images and home is not None else None,
                                     shown)
                sections.append(_section(task, data, path, tables, sub, results, stores, out))
            except (KeyError, TypeError, ValueError, IndexError, StopIteration) as err:
                raise LeaderboardError([f"{path}: cannot be shown ({type(err).__name__}: {str(err)[:160]})"]) from None
        manifest = _kv(next(data for (s, _), (data, _) in results.items() if s == sub)["submission"])
        _write(out / page_of[sub], env.get_template("submission.html").render(
            name=sub, sections=sections, manifest=manifest, version=__version__, root="../"))
        pages += 1
    _prune(out, set(page_of.values()), shown)
    images = len(list((out / "img").glob("*.png"))) if (out / "img").exists() else 0
    return {"out": str(out), "tables": len(tables), "pages": pages, "results": len(results), "images": images}


def _prune(out: Path, pages: set[str], shown: set[str]) -> None:
    """Remove what an earlier build left in the site and this one no longer shows: submission pages of results
    gone, and ``img/<key>.png`` images no page shows (once read as a store, they are not needed)."""
    for page in (out / "submissions").glob("*.html"):
        if f"submissions/{page.name}" not in pages:
            page.unlink()
    for image in (out / "img").glob("*.png") if (out / "img").exists() else ():
        if is_key(image.stem) and image.stem not in shown:
            image.unlink()


def _about(results) -> dict:
    """What the board shows, for its header: the suites (name, version), the newest result's date, the code
    versions (``environment.code``) and memora-bench versions the results were made with."""
    data = [d for d, _ in results.values()]
    return {"suites": sorted({f"{d['suite']['name']} v{d['suite']['version']}" for d in data}),
            "newest": max((d.get("created", "")[:10] for d in data), default=""),
            "code": sorted({(d.get("environment", {}).get("code") or "unrecorded")[:12] for d in data}),
            "versions": sorted({d.get("environment", {}).get("memora_bench", "?") for d in data})}


def _section(task: str, data: dict, path: Path, tables, sub: str, results, stores: ImageStores, out: Path) -> dict:
    """One task's section of a submission's page."""
    table = next(t for t in tables if t.task == task)
    row = next(r for r in table.rows if r.submission == sub)
    memora = data["probes"].get("memora")
    curves = [curve_svg(name, entry, list(memora["params"]["budgets"]))
              for name, entry in memora["concepts"].items()] if memora else []
    return {
        "task": task, "table": table, "row": row, "curves": curves,
        "strips": strips(data, path, _original_for(results, task, data["base_model"]), stores, out),
        "nudity": any(c.get("kind") == "nudity" for c in data["task"]["concepts"]),
        "probes": [{"name": title(p), "params": _kv(r.get("params") or {}),
                    "concepts": [(c, rate_cell(rt, "", c)) for c, rt in r.get("rates", {}).items()],
                    "breakdown": probe_breakdown(r)}
                   for p, r in data["probes"].items()],
        "provenance": _kv({"suite": data["suite"], "task": {k: v for k, v in data["task"].items()
                                                            if k != "concepts"},
                           "base_model": data["base_model"], "environment": data["environment"],
                           "created": data.get("created", ""), "result_file": str(path)}),
        "timing": sorted((data.get("timing") or {}).get("stages", {}).items()),
    }


def _nudity_tasks(results) -> list[str]:
    return sorted({t for (_, t), (d, _) in results.items() if any(c.get("kind") == "nudity" for c in d["task"]["concepts"])})


def spreadsheet_safe(value):
    """A CSV cell a spreadsheet will not run: text starting with = + - @ (or a tab or carriage return) gets
    a leading apostrophe (OWASP's advice against CSV injection); numbers stay numbers."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _csv(records: list[dict]) -> str:
    """The rows as CSV (pandas): one column per field in order of first appearance, empty where a row has no
    value, every text cell made spreadsheet-safe; values are written as Python prints them (no float casts)."""
    fields = list(dict.fromkeys(k for r in records for k in r))
    frame = pd.DataFrame.from_records([{k: spreadsheet_safe(v) for k, v in r.items()} for r in records],
                                      columns=fields).astype(object)
    return frame.where(frame.notna(), None).to_csv(index=False, lineterminator="\n")


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)


def main(args) -> int:
    """``memora-bench leaderboard RESULTS... --out DIR``: render the static site from result files."""
    try:
        summary = build_site([Path(p) for p in args.results], Path(args.out), Path(args.cache_dir),
                             keep_images=getattr(args, "keep_images", False))
    except LeaderboardError as err:
        for line in err.problems:
            print(f"error: {line}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"leaderboard: {summary['tables']} task table(s), {summary['pages']} submission page(s), "
          f"{summary['images']} image(s) from {summary['results']} result file(s)")
    print(f"open {Path(args.out) / 'index.html'}")
    return EXIT_OK
