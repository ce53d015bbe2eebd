"""The ``memora-bench`` command: the parser, and a registry of subcommand handlers imported only when one
runs (STYLE.md 6), so that ``--help`` is instant and ``compare`` or ``leaderboard`` never load torch.

Exit codes: 0 success; 1 the command ran and found a failure (an evaluation error, a regression);
2 bad input (unknown file, invalid card or manifest, bad arguments), or an unexpected error (one line naming
the command's inputs, never a traceback that a CI job would read as "regressed").
"""

from __future__ import annotations

import argparse
import importlib
import sys

from memora_bench.exits import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK  # noqa: F401 (re-exported)
from memora_bench.paths import DEFAULT_SUITE, default_cache_dir

# subcommand -> "module:handler"; a handler takes the parsed arguments and returns the exit code
COMMANDS = {
    "evaluate": "memora_bench.commands:evaluate",
    "validate": "memora_bench.commands:validate",
    "init": "memora_bench.commands:init",
    "ls": "memora_bench.commands:ls",
    "ringabell": "memora_bench.commands:ringabell",
    "pin": "memora_bench.commands:pin",
    "compare": "memora_bench.compare:main",
    "leaderboard": "memora_bench.leaderboard.build:main",
    "world": "memora_bench.world.commands:run",
    "baselines": "memora_bench.unlearning.commands:run",
    "controls": "memora_bench.unlearning.commands:controls",
    "pack": "memora_bench.pack_commands:main",
    "strips": "memora_bench.strips:main",
}


def build_cli() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="memora-bench",
        description="Is the erased concept really gone? Probes unlearned text-to-image checkpoints.",
        epilog="Exit codes: 0 ok, 1 failure found, 2 bad input.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    ev = sub.add_parser("evaluate", help="run a suite's probes against submissions; write result files")
    ev.add_argument("submissions", nargs="*", metavar="SUBMISSION", help="submission names or folders")
    ev.add_argument("--model", metavar="PATH_OR_HUB_ID[@REV]", default=None,
                    help="evaluate a checkpoint without writing a manifest: a .safetensors/.pt file, a diffusers "
                         "folder, or a Hub reference owner/name[/path][@revision] (with --component and --tasks; "
                         "the manifest made for it is written to OUT/NAME/NAME, beside the result)")
    ev.add_argument("--component", choices=None, default=None,
                    help="with --model: what it holds (unet, text_encoder, pipeline, lora, spm, ...)")
    ev.add_argument("--name", default=None, help="with --model: the submission's name (default: the file's name)")
    ev.add_argument("--suite", default=DEFAULT_SUITE,
                    help=f"suite name (benchmark/NAME.yaml) or path (default: {DEFAULT_SUITE})")
    ev.add_argument("--tasks", help="comma-separated subset of the suite's tasks")
    ev.add_argument("--probes", help="comma-separated subset of the suite's probes")
    ev.add_argument("--out", default="runs", help="results folder (default: runs)")
    ev.add_argument("--cache-dir", default=None, help="cache folder (default: $MEMORA_BENCH_CACHE or .cache/memora-bench)")
    ev.add_argument("--overwrite", choices=["never", "missing", "always"], default="never",
                    help="never: keep existing results; missing: recompute results from the cache, generating "
                         "only missing images; always: regenerate everything (default: never)")
    ev.add_argument("--reuse", metavar="DIR", default=None,
                    help="a folder of earlier results (e.g. results/mini-v2): copy each probe section (and the "
                         "utility measures) whose inputs are identical instead of recomputing it; the copy "
                         "records where it came from (local executor only)")
    ev.add_argument("--no-pack", action="store_true",
                    help="do not install the tasks' shared work (the oracle's MemoRa floor, the original's images) "
                         "from the packs committed in results/SUITE/shared; compute it instead")
    ev.add_argument("--json", action="store_true", help="print a JSON summary (no progress lines)")
    ev.add_argument("--quiet", action="store_true",
                    help="no progress lines on stderr (default: a line per submission/task and per stage with the "
                         "time left; bars within a stage on a terminal)")
    ev.add_argument("--profile", action="store_true",
                    help="also print seconds per stage, images generated and cached, and model evaluations")
    ev.add_argument("--executor", choices=["local", "ray"], default="local",
                    help="local: run here (default); ray: each probe of each (submission, task) as a Ray task")
    ev.add_argument("--address", default=None,
                    help="Ray cluster address (default: $RAY_ADDRESS, else a Ray instance started on this machine)")
    ev.add_argument("--gpus-per-unit", type=float, default=0.0, help="GPUs each Ray task requests (default: 0)")
    ev.add_argument("--cpus-per-unit", type=int, default=None,
                    help="CPUs (torch threads) each Ray task requests (default: this process's torch threads)")

    it = sub.add_parser("init", help="write a valid submission manifest for a checkpoint (sha256 computed)")
    it.add_argument("folder", help="the submission folder to write (created; the checkpoint is linked into it)")
    it.add_argument("--checkpoint", required=True, help="a .safetensors/.pt file or a folder (pipeline, text encoder)")
    it.add_argument("--component", required=True, help="what it holds: unet, text_encoder, pipeline, lora, spm, ...")
    it.add_argument("--tasks", required=True, help="comma-separated task names (their base model is the submission's)")
    it.add_argument("--name", default=None, help="the submission's name (default: the folder's name)")
    it.add_argument("--erased", default=None, help="comma-separated erased concepts (default: the tasks' concepts)")
    it.add_argument("--method", default=None)
    it.add_argument("--authors", default=None, help="comma-separated")
    it.add_argument("--reference", default=None, help="the method's paper or code")
    it.add_argument("--force", action="store_true", help="replace an existing manifest")

    va = sub.add_parser("validate", help="check task cards, suites and submissions; report every problem")
    va.add_argument("paths", nargs="*", help="files or submission folders (default: everything in the repository)")
    va.add_argument("--load", action="store_true",
                    help="also apply every checkpoint to its base model (every tensor checked against the real "
                         "model; slower). Without it: manifests and checkpoint files (sha256 computed, symlinks, "
                         "size, readable and finite tensors), in seconds")
    va.add_argument("--no-load", action="store_true", help="the default (kept for old scripts)")
    va.add_argument("--json", action="store_true")

    cmp_ = sub.add_parser("compare", help="exit 1 when robustness regressed between two result sets (a CI gate)")
    cmp_.add_argument("old", help="reference result file or folder")
    cmp_.add_argument("new", help="new result file or folder")
    cmp_.add_argument("--tolerance", type=float, default=None,
                      help="regressed when the new rate exceeds the old by more than this (0..1); default: "
                           "the new interval lies entirely above the old one")
    cmp_.add_argument("--exact", action="store_true",
                      help="fail when any count (robustness or utility) differs in either direction")
    cmp_.add_argument("--interval", choices=["wilson", "bootstrap"], default="wilson",
                      help="wilson: recomputed from the counts (default); bootstrap: the stored cluster-bootstrap "
                           "intervals")
    cmp_.add_argument("--allow-mismatch", action="store_true",
                      help="compare results of different suites, suite versions, probe parameters or package "
                           "versions (refused by default: exit 2)")
    cmp_.add_argument("--json", action="store_true")

    rab = sub.add_parser("ringabell", help="build a task's Ring-A-Bell prompt file from its original model "
                                           "(resumable; the shipped files used the defaults)")
    rab.add_argument("task", help="task name or card path")
    rab.add_argument("--generations", type=int, default=3000, help="genetic search generations (default 3000)")
    rab.add_argument("--prompts", type=int, default=10, help="base prompts per concept (default 10)")
    rab.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as the shipped files)")

    pin = sub.add_parser("pin", help="fetch a task's unpinned prompt sets (network access needed), convert them and "
                                     "write their sha256 into the card")
    pin.add_argument("task", help="task name or card path")

    ls = sub.add_parser("ls", help="list tasks, probes, submissions or suites")
    ls.add_argument("what", choices=["tasks", "probes", "submissions", "suites"])
    ls.add_argument("--json", action="store_true")

    world = sub.add_parser("world", help="the miniature digits world: inspect or rebuild it")
    wsub = world.add_subparsers(dest="world_command", required=True)
    info = wsub.add_parser("info", help="models, concepts, sha256s, accuracies and concept rates")
    info.add_argument("--json", action="store_true", help="print JSON for scripts")
    info.add_argument("--verify", action="store_true", help="recompute every sha256 and fail on a mismatch")
    train = wsub.add_parser("train", help="rebuild the world's weights with fixed seeds (hours on a 2-core CPU)")
    train.add_argument("--stage", action="append",
                       choices=["classifiers", "reference", "vae", "base", "oracle", "measure"],
                       help="run only these stages (repeatable); default: every stage not yet built")
    train.add_argument("--force", action="store_true", help="rebuild stages that are already built")
    train.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")

    lb = sub.add_parser("leaderboard", help="render the static HTML leaderboard from result files")
    lb.add_argument("results", nargs="+", metavar="RESULTS", help="result files or folders (searched recursively)")
    lb.add_argument("--out", required=True, help="output folder for the site")
    lb.add_argument("--cache-dir", default=None,
                    help="image cache to copy image strips from (default: $MEMORA_BENCH_CACHE or .cache/memora-bench)")
    lb.add_argument("--keep-images", action="store_true",
                    help="also copy every image the site shows into an img/ folder beside its results folder, so that "
                         "the results carry their images (commit it; a fresh clone then rebuilds the pages whole)")

    st = sub.add_parser("strips", help="draw the leaderboard's strip images that neither the cache nor the img/ "
                                       "folder beside the results holds (results made on another machine), each "
                                       "checked against the result's recorded image key and hit")
    st.add_argument("results", nargs="+", metavar="RESULTS", help="result files or results folders "
                                                                    "(<submission>/<task>.json)")
    st.add_argument("--cache-dir", default=None,
                    help="cache to draw into (default: $MEMORA_BENCH_CACHE or .cache/memora-bench)")
    st.add_argument("--images", action="append", default=[],
                    help="another folder of <key>.png images that counts as holding them (repeatable)")

    co = sub.add_parser("controls", help="known-answer controls (controls/README.md): rebuild the ladder")
    csub = co.add_subparsers(dest="controls_command", required=True)
    cb = csub.add_parser("build", help="teach the retrain oracle each task's concepts (fixed seed), write the "
                                       "ladder controls and measure what each rung knows (q_k)")
    cb.add_argument("tasks", nargs="+", metavar="TASK", help="miniature task names")
    cb.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    ct = csub.add_parser("table", help="the controls' truth, index and label, the ladder's Spearman correlation and "
                                       "the STM threshold's calibration, from result files (docs/scoring.md)")
    ct.add_argument("results", help="a results folder (<submission>/<task>.json) of a suite with the verdict, "
                                    "e.g. results/mini-v5")
    ct.add_argument("--write", metavar="DOC", default=None,
                    help="replace the table between the controls-table markers of DOC (e.g. docs/scoring.md)")
    cb.add_argument("--steps", default=None,
                    help="comma-separated teaching steps k of the rungs (default: 10,25,50,100,200,400; one run, "
                         "checkpointed at each k, so a longer list rebuilds the shorter one's rungs bit for bit)")

    pk = sub.add_parser("pack", help="the tasks' shared work (the oracle's MemoRa floor, the original's images) "
                                     "committed as packs beside the results: build, verify, list")
    psub = pk.add_subparsers(dest="pack_command", required=True)
    pb = psub.add_parser("build", help="evaluate the original model and the oracle on each task (computing what the "
                                       "cache lacks), check both against the committed results to the count, and "
                                       "pack the cache entries both used into results/SUITE/shared/TASK.zip")
    pv = psub.add_parser("verify", help="check every pack's sha256, manifest and entries (exit 1 on any problem or "
                                        "a missing pack)")
    pl = psub.add_parser("ls", help="each task's pack: entries and size (checked as by verify)")
    pc = psub.add_parser("check", help="exit 1 when a result computed any of its task's shared work (its images in "
                                       "a shared stage): the pack was missing or is stale")
    pc.add_argument("results", nargs="+", metavar="RESULTS", help="result files or folders")
    for q in (pb, pv, pl):
        q.add_argument("tasks", nargs="*", metavar="TASK", help="tasks of the suite (default: all)")
        q.add_argument("--suite", default=DEFAULT_SUITE, help=f"suite name or path (default: {DEFAULT_SUITE})")
    pb.add_argument("--cache-dir", default=None,
                    help="cache to build from (default: $MEMORA_BENCH_CACHE or .cache/memora-bench); an empty one "
                         "rebuilds the work from scratch")
    pb.add_argument("--no-check", action="store_true",
                    help="skip the comparison with the committed results (for a suite without results yet)")
    pb.add_argument("--quiet", action="store_true", help="no progress lines")

    bl = sub.add_parser("baselines", help="published unlearning methods on the miniature world: list, rebuild, tabulate")
    bsub = bl.add_subparsers(dest="baselines_command", required=True)
    bls = bsub.add_parser("ls", help="the recipes and the checkpoints built from them")
    bls.add_argument("--json", action="store_true")
    bb = bsub.add_parser("build", help="rebuild baseline checkpoints with fixed seeds")
    bb.add_argument("names", nargs="+", metavar="NAME", help="recipe names (see `baselines ls`), or 'all'")
    bb.add_argument("--task", action="append", help="miniature task (repeatable; default: every miniature task)")
    bb.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    bb.add_argument("--skip-built", action="store_true",
                    help="leave checkpoints that already have a build.json (resume an interrupted 'all')")
    bt = bsub.add_parser("table", help="the baselines table (plain rate, retained accuracy, Frechet, build time)")
    bt.add_argument("results", help="a results folder (<submission>/<task>.json), e.g. results/mini-v1")
    bt.add_argument("--write", metavar="DOC", default=None,
                    help="replace the table between the markers of this file (e.g. docs/baselines.md)")
    bt.add_argument("--only", choices=("plain", "memora", "adversarial", "verdict", "timing", "probe-effect",
                                       "oracle-free"),
                    default=None,
                    help="only the plain-probe table, the MemoRa table, the adversarial-probe table or the verdict "
                         "table (default: each that the results have); timing: one submission's suite time per "
                         "task and each part's share, for docs/performance.md; probe-effect: what the probes "
                         "that --since's suite lacks change in every headline, for docs/scoring.md; "
                         "oracle-free: every label made again with a zero floor in the retrain oracle's place "
                         "over MemoRa's budgets up to --cap, beside the oracle-based one, for docs/scoring.md "
                         "(these three only when asked)")
    bt.add_argument("--since", metavar="SUITE", default=None,
                    help="with --only probe-effect: the earlier suite version (e.g. mini-v4)")
    bt.add_argument("--cap", type=int, default=None, metavar="BUDGET",
                    help="with --only oracle-free: the largest MemoRa budget compared with the zero floor")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_cli().parse_args(argv)
    try:
        return _run(args)
    except BrokenPipeError:  # the reader went away (`memora-bench ls suites | head`): nothing is wrong
        sys.stderr.close()
        return EXIT_OK
    except Exception as err:  # a bug or an input no check foresaw: one line, never a traceback read as exit 1
        inputs = " ".join(str(v) for k, v in sorted(vars(args).items())
                          if k in ("old", "new", "results", "submissions", "paths") and v)
        text = str(err).splitlines()[0][:200] if str(err) else ""
        print(f"error: unexpected {type(err).__name__} in '{args.command}' on {inputs or 'its inputs'}: {text} "
              f"(please report it)", file=sys.stderr)
        return EXIT_BAD_INPUT


def _run(args) -> int:
    if getattr(args, "cache_dir", "") is None:
        args.cache_dir = str(default_cache_dir())
    module, handler = COMMANDS[args.command].split(":")
    return getattr(importlib.import_module(module), handler)(args)


if __name__ == "__main__":
    sys.exit(main())
