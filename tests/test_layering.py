"""The package's layering contract, checked over the import statements of every module (DESIGN.md, "How the
engine hangs together"): data flows one way, no import cycles, no package module imported inside a
function, and the commands that read result files never load torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from memora_bench.paths import repo_root

PACKAGE = repo_root() / "memora_bench"

# Lower layers first; a module may import modules of its own layer or below, never above. The first
# matching prefix decides a module's layer.
LAYERS = [
    ("leaves", ["memora_bench", "memora_bench.exits", "memora_bench.paths", "memora_bench.cache", "memora_bench.progress",
                "memora_bench.timing", "memora_bench.provenance", "memora_bench.probes.registry", "memora_bench.classifiers.registry",
                "memora_bench.probes"]),
    # the miniature world's data (memora_bench.digits: real digits for the Frechet reference) is read by the
    # utility measure and by the world's training; the probes read every concept word from the task card
    ("specs, scores, results", ["memora_bench.specs", "memora_bench.scoring", "memora_bench.verdict",
                                "memora_bench.results",
                                "memora_bench.prompt_sources", "memora_bench.miniworld", "memora_bench.digits",
                                "memora_bench.world.tokenizer", "memora_bench.world.configs"]),
    ("models, classifiers", ["memora_bench.models", "memora_bench.classifiers"]),
    ("context", ["memora_bench.context"]),
    ("probes and measures", ["memora_bench.probes.", "memora_bench.utility", "memora_bench.quality"]),
    ("parts, reuse", ["memora_bench.parts", "memora_bench.reuse", "memora_bench.packs"]),
    ("runner, executors", ["memora_bench.runner", "memora_bench.executors"]),
    ("commands", ["memora_bench.commands", "memora_bench.submit", "memora_bench.api", "memora_bench.compare", "memora_bench.leaderboard",
                  "memora_bench.pack_commands", "memora_bench.strips",
                  "memora_bench.unlearning", "memora_bench.world", "memora_bench.cli"]),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def layer(module: str) -> int:
    best = None
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            exact = module == prefix
            under = prefix != "memora_bench" and (prefix.endswith(".") and module.startswith(prefix)
                                                  or module.startswith(prefix + "."))
            if exact or under:
                length = len(prefix) + (1 if exact else 0)
                if best is None or length > best[0]:
                    best = (length, i)
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best[1]


def _target(name: str) -> str:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def imports() -> list[tuple[str, str, bool, int]]:
    """(importer, imported package module, inside a function?, line) for every import statement."""
    out = []
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text())
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("memora_bench"):
                targets = [_target(f"{node.module}.{a.name}") for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [_target(a.name) for a in node.names if a.name.startswith("memora_bench")]
            else:
                continue
            inside, n = False, node
            while n in parents:
                n = parents[n]
                inside = inside or isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            out += [(name, t, inside, node.lineno) for t in targets if t and t != name]
    return out


def test_every_module_is_in_a_layer_and_imports_only_its_layer_or_below():
    wrong = [f"{a} ({LAYERS[layer(a)][0]}) imports {b} ({LAYERS[layer(b)][0]}), line {line}"
             for a, b, _, line in imports() if layer(b) > layer(a)]
    assert wrong == []


def test_no_package_module_is_imported_inside_a_function():
    local = [f"{a}:{line} imports {b}" for a, b, inside, line in imports() if inside]
    assert local == []


def test_there_are_no_import_cycles():
    graph: dict[str, set[str]] = {}
    for a, b, _, _ in imports():
        graph.setdefault(a, set()).add(b)
    # Tarjan's strongly connected components: a component of more than one module is a cycle.
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in list(graph):
        if v not in index:
            visit(v)
    assert cycles == []


def test_the_contract_sees_a_violation():
    """The checks above can fail: a probe importing the runner is caught."""
    assert layer("memora_bench.runner") > layer("memora_bench.probes.memora") > layer("memora_bench.context")
    assert layer("memora_bench.context") > layer("memora_bench.models.generate") > layer("memora_bench.specs")


def test_help_compare_and_the_leaderboard_do_not_load_torch():
    code = ("import sys; from memora_bench.cli import build_cli; build_cli(); import memora_bench.compare, "
            "memora_bench.leaderboard.build; print(sorted(m for m in ('torch', 'diffusers', 'transformers') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_evaluation_path_never_imports_the_worlds_training_package():
    """DESIGN.md: `unlearning` and `world` use the models and are never imported by the evaluation path."""
    evaluation = [m for m in MODULES if not m.startswith(("memora_bench.world", "memora_bench.unlearning"))
                  and m not in ("memora_bench.cli", "memora_bench.commands")]
    wrong = [f"{a} imports {b}, line {line}" for a, b, _, line in imports()
             if a in evaluation and b.startswith(("memora_bench.world", "memora_bench.unlearning"))]
    assert wrong == []


def test_the_probes_read_their_concept_words_from_the_card_not_the_world():
    """Issue 27: Ring-A-Bell's pairs and concept inversion's captions and initializer come from the task card
    (specs.Concept), so no probe imports the miniature world's captions."""
    wrong = [f"{a} imports {b}, line {line}" for a, b, _, line in imports()
             if a.startswith("memora_bench.probes") and b in ("memora_bench.digits", "memora_bench.miniworld")]
    assert wrong == []
