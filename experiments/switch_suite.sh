#!/usr/bin/env bash
# Make a newer suite version the official one once its results are complete (every control, baseline and the
# demo under results/NEW and submissions/demo-ablate-seven/results/NEW): the default suite in the code and the
# Makefile, every generated table of the docs, the site. What stays to do by hand is printed at the end (the
# prose that names the old version, README timings, NOTES).
#
#   bash experiments/switch_suite.sh mini-v4 mini-v5
set -euo pipefail
old=${1:?usage: switch_suite.sh OLD NEW}
new=${2:?usage: switch_suite.sh OLD NEW}
cd "$(dirname "$0")/.."
bin=.venv/bin
[ -d "results/$new" ] || { echo "no results/$new" >&2; exit 2; }
[ -f "submissions/demo-ablate-seven/results/$new/demo-ablate-seven/mini-seven.json" ] || {
  echo "the demo has no $new result" >&2; exit 2; }
expected=$(cd results/"$old" && ls -d */ | grep -v -e '^img/' -e '^shared/' | while read -r d; do ls "$d"*.json; done | wc -l)
have=$(cd results/"$new" && ls -d */ | grep -v -e '^img/' -e '^shared/' | while read -r d; do ls "$d"*.json; done | wc -l)
[ "$have" -ge "$expected" ] || { echo "results/$new has $have result files, results/$old $expected: not complete" >&2; exit 2; }

sed -i "s/^DEFAULT_SUITE = \"$old\"/DEFAULT_SUITE = \"$new\"/" memora_bench/paths.py
sed -i "s/^SUITE := $old/SUITE := $new/" Makefile
grep -q "^DEFAULT_SUITE = \"$new\"" memora_bench/paths.py && grep -q "^SUITE := $new" Makefile

$bin/memora-bench baselines table "results/$new" --only verdict --write docs/baselines.md
$bin/memora-bench controls table "results/$new" --write docs/scoring.md
$bin/memora-bench baselines table "results/$new" --only timing --write docs/performance.md
$bin/memora-bench baselines table "results/$new" --only probe-effect --since "$old" --write docs/scoring.md
$bin/memora-bench leaderboard "results/$new" --out leaderboard --keep-images

echo
echo "Still naming $old (check each: some must stay, e.g. the oracle-free validation on $old):"
grep -rn --include='*.md' --include='*.py' --include='*.yml' --include='*.yaml' "$old" \
  README.md docs controls/README.md memora_bench tests Makefile | grep -v "^docs/examples/.*$new" || true
