#!/usr/bin/env bash
# The main job end to end on a small built-in synthetic example (called by `make demo`).
set -euo pipefail
cd "$(dirname "$0")/.."
ICTAL=.venv/bin/ictal
CFG=configs/demo.yaml
rm -rf demo/corpus
$ICTAL synth demo/corpus --patients 12 --hours 3 --seed 7
# census exits 4 when some files are unusable; the demo corpus has none.
$ICTAL census demo/corpus -c $CFG --json demo/census.json
echo "demo finished: see demo/"
