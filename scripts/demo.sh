#!/usr/bin/env bash
# The main job end to end on a small built-in synthetic example (called by `make demo`).
# Rerunning it reuses what exists: the corpus, the cache (same key) and finished steps.
set -euo pipefail
cd "$(dirname "$0")/.."
ICTAL=.venv/bin/ictal
CFG=configs/demo.yaml

if [ ! -f demo/corpus/ground_truth.json ]; then
  $ICTAL synth demo/corpus --patients 12 --hours 3 --seed 7
fi
# census exits 4 when some files are unusable; the demo corpus has none.
$ICTAL census demo/corpus -c $CFG --json demo/census.json
$ICTAL build -c $CFG
$ICTAL verify -c $CFG --full
echo "demo finished: see demo/"
