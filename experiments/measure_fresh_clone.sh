#!/usr/bin/env bash
# Session 19: fresh-clone timings on an idle machine (issue 29): make demo (install, then the evaluation),
# a warm rerun, and one submission per task on a fresh cache, each compared --exact with the committed result.
set -uo pipefail
LOG=/work/main/runs/s19/measure.log
exec > >(tee -a "$LOG") 2>&1
echo "start $(date)"
rm -rf /work/fresh; git clone -q /work/main /work/fresh; cd /work/fresh; git log --oneline | head -1
/usr/bin/time -f "TIME install %e s" make .venv/.installed > /work/main/runs/s19/install.log 2>&1; tail -1 /work/main/runs/s19/install.log
/usr/bin/time -f "TIME demo-fresh %e s" make demo > /work/main/runs/s19/demo1.log 2>&1; tail -25 /work/main/runs/s19/demo1.log
/usr/bin/time -f "TIME demo-warm %e s" make demo > /work/main/runs/s19/demo2.log 2>&1; tail -3 /work/main/runs/s19/demo2.log
.venv/bin/memora-bench compare submissions/demo-ablate-seven/results/mini-v4/demo-ablate-seven runs/demo/demo-ablate-seven --exact | tail -2
for t in mini-seven mini-bold mini-three-eight; do
  rm -rf /tmp/fresh-$t /tmp/out-$t
  /usr/bin/time -f "TIME salun-$t %e s" .venv/bin/memora-bench evaluate salun-$t --suite mini-v4 --tasks $t \
    --cache-dir /tmp/fresh-$t --out /tmp/out-$t --profile --quiet > /work/main/runs/s19/salun-$t.log 2>&1
  tail -45 /work/main/runs/s19/salun-$t.log | grep -v "^$" | tail -40
  .venv/bin/memora-bench compare results/mini-v4/salun-$t /tmp/out-$t/salun-$t --exact | tail -2
done
echo "end $(date)"
