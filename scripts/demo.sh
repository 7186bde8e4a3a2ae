#!/usr/bin/env bash
# The main job end to end on a small built-in synthetic example (called by `make demo`):
# synth -> census -> build -> verify -> train -> bench -> evaluate dev -> evaluate eval -> report.
# Rerunning reuses the corpus and the cache (same key) and trains a new run.
set -euo pipefail
cd "$(dirname "$0")/.."
ICTAL=.venv/bin/ictal
CFG=configs/demo.yaml

# A realistic corpus: seizures of every kind and strength among artifacts and look-alikes, about
# 40 of them in eval. A demo corpus written with other arguments is replaced.
SYNTH_ARGS="--patients 24 --hours 18 --seed 7 --difficulty realistic"
if [ "$(cat demo/corpus.args 2>/dev/null)" != "$SYNTH_ARGS" ]; then
  # Only a corpus that ictal synth wrote is replaced; anything else there is left alone.
  if [ -e demo/corpus ] && ! grep -qs '"generator": "ictal-synth"' demo/corpus/ground_truth.json
  then
    echo "demo/corpus holds files ictal synth did not write: move them away, then rerun" >&2
    exit 2
  fi
  rm -rf demo/corpus demo/corpus.args
  # shellcheck disable=SC2086
  $ICTAL synth demo/corpus $SYNTH_ARGS
  echo "$SYNTH_ARGS" > demo/corpus.args
fi
# census exits 4 when some files are unusable; the demo corpus has none.
$ICTAL census demo/corpus -c $CFG --json demo/census.json
$ICTAL build -c $CFG
$ICTAL verify -c $CFG --full
$ICTAL train -c $CFG
RUN=$(ls -td demo/runs/*/ | head -n 1)
RUN=${RUN%/}
$ICTAL bench -c $CFG --batches 10
# Operating points are chosen on dev, frozen to a file, and applied unchanged to eval.
$ICTAL evaluate "$RUN/checkpoints/best.pt" --split dev
$ICTAL evaluate "$RUN/checkpoints/best.pt" --split eval \
  --operating-points "$RUN/eval-best-dev/operating_points.json"
$ICTAL report "$RUN"
$ICTAL status -c $CFG
echo "demo finished: report in $RUN/report.html"
echo "ictal is installed in .venv, not on your PATH: source .venv/bin/activate (or run .venv/bin/ictal)"
