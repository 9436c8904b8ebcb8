#!/usr/bin/env bash
# The `quick` experiment on both shared sets, one after another, each in a fresh workspace, then
# the Markdown tables for BENCHMARKS.md. Run on a quiet machine: the stage timings are the result.
#
#   bench/reproduce.sh [PRESET]        # default quick; writes bench/out/<name>/ and bench/out/tables.md
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${1:-quick}
data=${PATHSYNTH_DATA:-../shared/data}
out=bench/out
mkdir -p "$out"
abnormal=light_dysplastic,moderate_dysplastic,severe_dysplastic,carcinoma_in_situ

run() {  # name source modality [classes] [pixel size]
  local name=$1 source=$2 modality=$3 classes=${4:-} pixel=${5:-}
  rm -rf "$out/ws-$name"
  local start=$SECONDS
  pathsynth reproduce "$source" --modality "$modality" --preset "$preset" --name "$name" \
    ${classes:+--classes "$classes"} ${pixel:+--pixel-size "$pixel"} -w "$out/ws-$name" > "$out/$name.log" 2>&1
  echo "$name: $((SECONDS - start)) s wall" | tee -a "$out/walltimes.txt"
}

: > "$out/walltimes.txt"
run "bach-$preset" "$data/bach" histology "" 0.84
run "herlev4-$preset" "$data/herlev" cytology "$abnormal"
run "herlev7-$preset" "$data/herlev" cytology
python bench/experiment_table.py "$out"/ws-*/experiments/*/results.json > "$out/tables.md"
cat "$out/tables.md"
