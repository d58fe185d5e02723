#!/usr/bin/env bash
# The Fashion-MNIST benchmark: both architectures; class-wise forgetting of "Dress" (3) and "Bag"
# (8) and a random 10%; 3 seeds, each against its own retrain (3 retrain seeds: the noise floor);
# every method with the probe and relearning; then the targets summary (WIDTH=1: also the width sweep).
# Writes $RESULTS/<config>/ (report.md, results.csv/json, plots/; RESULTS defaults to
# benchmarks/results). Resumable: rerun the same command after an interruption and finished cells
# are reused. Extra arguments go to each
# `prunelora bench` call (e.g. --seeds 0 for a quicker look, --data-dir DIR); the width sweep takes
# --data-dir and --device from them. WIDTH=1 adds the width sweep (about 12 minutes).
#
# Needs /usr/share/datasets/fashion-mnist (apt-get install dataset-fashion-mnist) or --data-dir.
# Time on 2 CPU cores: see the "took ... s" line of each report. Run nothing else meanwhile: the
# wall times are the measurements.
set -euo pipefail
cd "$(dirname "$0")/.."
make --no-print-directory .venv/.installed >/dev/null
BIN=.venv/bin
RESULTS=${RESULTS:-benchmarks/results}
start=$(date +%s)
for config in fashion-mnist-resnet8 fashion-mnist-vit-tiny; do
  "$BIN/prunelora" bench --config "configs/$config.yaml" --out "$RESULTS/$config" --no-progress "$@"
done
"$BIN/python" benchmarks/fashion_mnist_summary.py --results "$RESULTS" --out "$RESULTS/fashion-mnist-summary.md"
if [ "${WIDTH:-0}" = 1 ]; then
  "$BIN/python" benchmarks/width_sweep.py --no-progress --out "$RESULTS/fashion-mnist-width" "$@"
fi
echo "run_fashion_mnist.sh: $(( $(date +%s) - start )) s end to end"
