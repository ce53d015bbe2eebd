# Two commands for a fresh machine: `make demo` (run the main job) and `make test` (run the tests).
# Both create or reuse the virtual environment .venv in this folder.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
# The official suite (memora_bench.paths.DEFAULT_SUITE): what the demo, the gate, the results and the site use.
SUITE := mini-v5

.PHONY: demo test test-slow bench gate gate-all packs world baselines leaderboard chromium clean-venv

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/memora-bench evaluate demo-ablate-seven --suite $(SUITE) --out runs/demo

# The tests run in TEST_WORKERS processes (pytest-xdist), a test file per process: most of a test's time is one
# evaluation subprocess drawing on one thread, so two processes fill a 2-core machine (10m30s -> 7m18s here).
# TEST_MARKS selects the tests (default: all but the slow, GPU and benchmark ones); `make test TEST_MARKS='not gpu
# and not benchmark'` runs the slow ones in the same session (not yet timed as a whole CI: .ci/run keeps two steps).
# Two workers on two cores oversubscribe them (a worker's in-process training uses torch's threads, and its
# evaluations run jobs side by side): OpenMP's default spin-wait then burns the other worker's CPU, so the
# tests run with OMP_WAIT_POLICY=PASSIVE (numbers do not depend on it; measured in docs/performance.md).
TEST_WORKERS ?= 2
TEST_MARKS ?= not slow and not gpu and not benchmark
TEST_ENV := OMP_WAIT_POLICY=PASSIVE
test: $(VENV)/.installed chromium
	$(TEST_ENV) $(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile -m "$(TEST_MARKS)"

# The leaderboard's browser tests need a Chromium; as root on Debian it is installed, otherwise we say how.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	{ if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else echo "The browser tests need Chromium: install it (Debian: sudo apt-get install chromium)." >&2; exit 1; fi; }

test-slow: $(VENV)/.installed
	$(TEST_ENV) $(BIN)/pytest -m slow -n $(TEST_WORKERS) --dist loadfile

bench: $(VENV)/.installed
	MEMORA_BENCH_SHORT=1 $(BIN)/pytest -m benchmark -p no:cacheprovider --benchmark-json=runs/benchmark.json

# This project's own regression gate: re-evaluate the demo submission with the official suite $(SUITE) on a cold
# cache (nothing but the committed shared-work pack, checked first) and require every count to equal its committed
# result, so a code change that moves a score fails CI. Counts do not depend on the thread count
# (tests/test_executors.py); a redrawn image may differ by one level in a few pixels (docs/ci.md). `make gate-all`
# also re-evaluates SalUn on mini-seven (an LTM result beside the demo's STM one), the two side by side on one
# thread each: about 1.5x the gate's time, which CI does not spend.
define gate_prepare
	rm -rf runs/gate runs/gate-cache
	mkdir -p runs/gate
	$(BIN)/memora-bench pack verify --suite $(SUITE)
endef
GATE_DEMO := submissions/demo-ablate-seven/results/$(SUITE)/demo-ablate-seven

gate: $(VENV)/.installed
	$(gate_prepare)
	$(BIN)/memora-bench evaluate demo-ablate-seven --suite $(SUITE) --out runs/gate --cache-dir runs/gate-cache --quiet
	$(BIN)/memora-bench compare $(GATE_DEMO) runs/gate/demo-ablate-seven --exact
	$(BIN)/memora-bench pack check runs/gate

gate-all: $(VENV)/.installed
	$(gate_prepare)
	OMP_NUM_THREADS=1 $(BIN)/memora-bench evaluate demo-ablate-seven --suite $(SUITE) --out runs/gate \
	  --cache-dir runs/gate-cache --quiet > runs/gate/demo-ablate-seven.log 2>&1 & demo=$$!; \
	OMP_NUM_THREADS=1 $(BIN)/memora-bench evaluate salun-mini-seven --suite $(SUITE) --out runs/gate \
	  --cache-dir runs/gate-cache --quiet > runs/gate/salun-mini-seven.log 2>&1 & salun=$$!; \
	status=0; wait $$demo || status=$$?; wait $$salun || status=$$?; \
	cat runs/gate/demo-ablate-seven.log runs/gate/salun-mini-seven.log; exit $$status
	$(BIN)/memora-bench compare $(GATE_DEMO) runs/gate/demo-ablate-seven --exact
	$(BIN)/memora-bench compare results/$(SUITE)/salun-mini-seven runs/gate/salun-mini-seven --exact
	$(BIN)/memora-bench pack check runs/gate

# Build every baseline not yet built (fixed seeds); evaluate the controls, every baseline and the demo with the
# official suite $(SUITE) into results/$(SUITE), one process per (submission, task) so that each result lands on
# its own (resumable: a result already there is kept); regenerate the tables in docs/baselines.md (the retired
# suites' tables from their committed results: plain from mini-v1, MemoRa from mini-v2, the adversarial probes
# from mini-v3; the verdict from mini-v4) and the controls' calibration table in docs/scoring.md.
baselines: $(VENV)/.installed
	$(BIN)/memora-bench baselines build all --skip-built
	for t in mini-seven mini-bold mini-three-eight; do \
	  for s in original oracle hidden-original-$$t hidden-oracle-$$t $$(cd controls && ls -d ladder-*-$$t | sort -t- -k2 -n) \
	           $$(cd baselines && ls -d *-$$t); do \
	    $(BIN)/memora-bench evaluate $$s --suite $(SUITE) --tasks $$t --out results/$(SUITE) --quiet || exit 1; \
	  done; \
	done
	$(BIN)/memora-bench evaluate demo-ablate-seven --suite $(SUITE) --out submissions/demo-ablate-seven/results/$(SUITE) --quiet
	$(BIN)/memora-bench baselines table results/mini-v1 --only plain --write docs/baselines.md
	$(BIN)/memora-bench baselines table results/mini-v2 --only memora --write docs/baselines.md
	$(BIN)/memora-bench baselines table results/mini-v3 --only adversarial --write docs/baselines.md
	$(BIN)/memora-bench baselines table results/$(SUITE) --only verdict --write docs/baselines.md
	$(BIN)/memora-bench controls table results/$(SUITE) --write docs/scoring.md
	$(BIN)/memora-bench baselines table results/$(SUITE) --only timing --write docs/performance.md

# The committed leaderboard site, rebuilt from the committed results (images from the local cache, the img/ folder
# committed beside the results, or the site's own), every image shown kept in results/$(SUITE)/img for fresh clones.
leaderboard: $(VENV)/.installed
	$(BIN)/memora-bench leaderboard results/$(SUITE) --out leaderboard --keep-images

# Each task's shared work (the oracle's MemoRa floor, the original's images) packed into results/$(SUITE)/shared:
# evaluates the original model and the oracle per task (from the cache, computing what it lacks) and checks
# both against their committed results first. Rebuild after a change that moves a shared stage's cache keys.
packs: $(VENV)/.installed
	$(BIN)/memora-bench pack build --suite $(SUITE)

world: $(VENV)/.installed
	$(BIN)/memora-bench world train

clean-venv:
	rm -rf $(VENV)
