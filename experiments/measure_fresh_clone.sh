#!/usr/bin/env bash
# Fresh-clone timings on an idle machine (issue 29): make demo (install, then the evaluation),
# a warm rerun, and one submission per task on a fresh cache, each compared --exact with the committed result.
set -uo pipefail
# usage: bash experiments/measure_fresh_clone.sh [RUN_DIR]  (from the checkout to clone; default RUN_DIR runs/fresh)
SRC=$(pwd)
RUN=$(realpath -m "${1:-runs/fresh}")
mkdir -p "$RUN"
LOG=$RUN/measure.log
exec > >(tee -a "$LOG") 2>&1
echo "start $(date)"
SUITE=$(sed -n 's/^DEFAULT_SUITE = "\([^"]*\)".*/\1/p' "$SRC/memora_bench/paths.py")  # the official suite
echo "suite $SUITE"
rm -rf /work/fresh; git clone -q "$SRC" /work/fresh; cd /work/fresh; git log --oneline | head -1
/usr/bin/time -f "TIME install %e s" make .venv/.installed > $RUN/install.log 2>&1; tail -1 $RUN/install.log
/usr/bin/time -f "TIME demo-fresh %e s" make demo > $RUN/demo1.log 2>&1; tail -25 $RUN/demo1.log
/usr/bin/time -f "TIME demo-warm %e s" make demo > $RUN/demo2.log 2>&1; tail -3 $RUN/demo2.log
.venv/bin/memora-bench compare submissions/demo-ablate-seven/results/$SUITE/demo-ablate-seven runs/demo/demo-ablate-seven --exact | tail -2
for t in mini-seven mini-bold mini-three-eight; do
  rm -rf /tmp/fresh-$t /tmp/out-$t
  /usr/bin/time -f "TIME salun-$t %e s" .venv/bin/memora-bench evaluate salun-$t --suite $SUITE --tasks $t \
    --cache-dir /tmp/fresh-$t --out /tmp/out-$t --profile --quiet > $RUN/salun-$t.log 2>&1
  tail -45 $RUN/salun-$t.log | grep -v "^$" | tail -40
  .venv/bin/memora-bench compare results/$SUITE/salun-$t /tmp/out-$t/salun-$t --exact | tail -2
done
echo "end $(date)"
