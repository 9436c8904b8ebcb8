#!/usr/bin/env bash
# GPU checks and benchmarks, prepared for a session that is lent one GPU (H100 or H200) for a
# few minutes. Installs nothing from a network (needs torch, numpy, pillow, typer, rich; diffusers
# from wheels carried in .whl/, see BENCHMARKS.md), runs from the source tree via PYTHONPATH,
# writes under ${OUT:-bench/out/gpu} and prints a short table last. The steps run in the order of
# what matters most and share one deadline, BUDGET seconds (default 530): each step's timeout is
# its own limit or what is left, whichever is less, and a step with under 20 s left is skipped.
#
#   OUT=/tmp/gpu bash bench/gpu.sh
#   SKIP_DIFFUSION=1 SKIP_GAN_CHECKS=1 bash bench/gpu.sh    # only the GAN speed steps
#   WITH_EMBED=1 bash bench/gpu.sh                          # also the ViT-L embedding (issue 9)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/out/gpu}
BUDGET=${BUDGET:-530}
DEVICE=${DEVICE:-cuda}  # DEVICE=cpu: try the script's flow on a machine without a GPU
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
STATUS="$OUT/status.txt"
: > "$STATUS"
check() {  # check NAME LIMIT CMD...: run under min(LIMIT, time left), record pass/FAIL and seconds
  local name=$1 limit=$2; shift 2
  local left=$((BUDGET - SECONDS))
  if [ "$left" -lt 20 ]; then
    echo "$name skipped (${left}s of the budget left)" >> "$STATUS"
    return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  local start=$SECONDS
  if timeout "$limit" "$@" > "$OUT/$name.log" 2>&1; then
    echo "$name pass $((SECONDS - start))s" >> "$STATUS"
  else
    echo "$name FAIL(rc=$?) $((SECONDS - start))s (see $name.log)" >> "$STATUS"
    tail -n 5 "$OUT/$name.log"
  fi
}

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null \
  || echo "no GPU ($DEVICE)"; } | tee "$OUT/gpu.txt"
if [ -d .whl ] && ! python -c "import diffusers" 2>/dev/null; then
  python -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
    .whl/*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/gpu.txt"

# Synthetic class folders (no licensed data travels): 3 classes x 64 images.
python - "$OUT/data" <<'PY'
import sys
from pathlib import Path
import numpy as np
from PIL import Image
root = Path(sys.argv[1]); rng = np.random.default_rng(0)
for c in range(3):
    (root / f"class{c}").mkdir(parents=True, exist_ok=True)
    for i in range(64):
        pixels = np.clip(rng.normal(80 * c + 40, 30, (40, 48, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(root / f"class{c}" / f"{i}.png")
PY
rm -rf "$OUT/runs" "$OUT"/gen-* "$OUT"/dgen-*

# 1. Diffusion (issue 10): CUDA smoke train, exact resume, byte-identical generation; then speed
#    at 128 px: training eager (cuDNN search off / on) and compiled, sampling eager and compiled,
#    guided at every step and only inside a guidance interval.
if [ -z "${SKIP_DIFFUSION:-}" ] && python -c "import diffusers" 2>/dev/null; then
  check diff-train 90 python -m pathsynth train-diffusion --data "$OUT/data" --preset smoke \
    --steps 30 --device $DEVICE --runs "$OUT/runs" --name diff-smoke
  DRUN=$(ls -d "$OUT"/runs/*-diff-smoke 2>/dev/null | head -n 1)
  check diff-resume 60 python -m pathsynth train-diffusion --resume "$DRUN" --steps 40
  check diff-generate 90 bash -c "python -m pathsynth generate '$DRUN' --per-class 32 --seed 3 --out '$OUT/dgen-a' \
    && python -m pathsynth generate '$DRUN' --per-class 32 --seed 3 --out '$OUT/dgen-b' && diff -r '$OUT/dgen-a' '$OUT/dgen-b'"
  check diff-speed 320 python bench/generators.py --synthetic --device $DEVICE --preset gpu \
    --train-steps 20 --warmup 5 --sample-batch 512 --set run.compile=true --compile-sampler \
    --guidance-interval 0.2,0.8 --json "$OUT/diffusion.json"
elif [ -z "${SKIP_DIFFUSION:-}" ]; then
  echo "diffusion skipped (no diffusers)" >> "$STATUS"
fi

# 2. GAN speed: paper preset, batch 64, 128 px: eager fp32 reference vs tuned step, FLOP/s,
#    generation to PNG; then the tuned step compiled with CUDA graphs (compile time apart).
check gan-bench 100 python bench/gan.py --steps 30 --warmup 5 --gen 5000 --images 1024 --flops \
  --json "$OUT/bench.json"
check gan-compile 200 python bench/gan.py --steps 30 --warmup 5 --gen 0 --images 1024 --compile \
  --skip-reference --set run.compile_mode=reduce-overhead --json "$OUT/bench-compile.json"

# 3. GAN CUDA correctness: train, resume, generate twice with one seed, NCCL under torchrun.
if [ -z "${SKIP_GAN_CHECKS:-}" ]; then
  check cuda-train 60 python -m pathsynth train-gan --data "$OUT/data" --preset smoke --steps 40 \
    --device $DEVICE --runs "$OUT/runs" --name cuda-smoke --set run.quality_every=20
  RUN=$(ls -d "$OUT"/runs/*-cuda-smoke 2>/dev/null | head -n 1)
  check cuda-resume 60 python -m pathsynth train-gan --resume "$RUN" --steps 60
  check cuda-generate 60 bash -c "python -m pathsynth generate '$RUN' --per-class 64 --seed 3 --out '$OUT/gen-a' \
    && python -m pathsynth generate '$RUN' --per-class 64 --seed 3 --out '$OUT/gen-b' && diff -r '$OUT/gen-a' '$OUT/gen-b'"
  check nccl-torchrun 90 python -m torch.distributed.run --standalone --nproc_per_node 1 -m pathsynth \
    train-gan --data "$OUT/data" --preset smoke --steps 20 --device $DEVICE --runs "$OUT/runs" --name nccl
fi

# 4. Embedding throughput (issue 9; met on an H100 before): ViT-L/16 at 224 px, random weights.
if [ -n "${WITH_EMBED:-}" ]; then
  check embed-vitl 120 python bench/embed.py --device $DEVICE --synthetic --backbone vit_large_patch16_224 \
    --images 4096 --bf16-images 4096 --batch 256 --precisions float32,bf16 --json "$OUT/embed.jsonl"
fi

python - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print("\n==", (out / "gpu.txt").read_text().splitlines()[0])
print((out / "status.txt").read_text().rstrip())
rows = []
def flatten(prefix, value):
    if isinstance(value, dict):
        for key, inner in value.items():
            flatten(f"{prefix} {key}", inner)
    elif isinstance(value, float):
        rows.append((prefix, value))
for name in ("diffusion.json", "bench.json", "bench-compile.json"):
    path = out / name
    if path.exists():
        flatten(name[:-5] + ":", json.loads(path.read_text()))
print(f"{'measure':<78}{'value':>12}")
for label, value in rows:
    print(f"{label:<78.78}{value:>12.4g}")
embed = out / "embed.jsonl"
if embed.exists():
    for line in embed.read_text().splitlines():
        row = json.loads(line)
        print(f"{'embed ' + row['backbone'] + ' ' + row['precision'] + ' img/s':<78}"
              f"{row['embed_images_per_s']:>12.4g}")
print("targets: diffusion train >= 2500 img/s, sampling >= 500 img/s (25 steps); GAN paper schedule")
PY
