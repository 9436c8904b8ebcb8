#!/usr/bin/env bash
# GPU checks and benchmarks for the GAN stage, prepared for a session that is lent one GPU
# (H100 or H200). Runs in about 5-7 minutes, installs nothing (needs torch, numpy, pillow, typer,
# rich; runs from the source tree via PYTHONPATH), writes under ${OUT:-bench/out/gpu} and prints a
# short table last. Every step has its own timeout so one hang cannot eat the session.
#
#   bash bench/gpu.sh            # everything
#   SKIP_COMPILE=1 bash bench/gpu.sh
#   SKIP_GAN=1 SKIP_EMBED=1 bash bench/gpu.sh   # only what is left: compile, diffusion
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/out/gpu}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
STATUS="$OUT/status.txt"
: > "$STATUS"
check() {  # check NAME TIMEOUT CMD...: run, record pass/FAIL and seconds
  local name=$1 limit=$2; shift 2
  local start=$SECONDS
  if timeout "$limit" "$@" > "$OUT/$name.log" 2>&1; then
    echo "$name pass $((SECONDS - start))s" >> "$STATUS"
  else
    echo "$name FAIL(rc=$?) $((SECONDS - start))s (see $OUT/$name.log)" >> "$STATUS"
    tail -n 5 "$OUT/$name.log"
  fi
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
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

# 1. CUDA correctness: train, resume, generate twice with one seed (byte-identical), NCCL torchrun.
if [ -z "${SKIP_GAN:-}" ]; then
rm -rf "$OUT/runs" "$OUT/gen-a" "$OUT/gen-b"
check cuda-train 120 python -m pathsynth train-gan --data "$OUT/data" --preset smoke --steps 40 \
  --device cuda --runs "$OUT/runs" --name cuda-smoke --set run.quality_every=20
RUN=$(ls -d "$OUT"/runs/*-cuda-smoke 2>/dev/null | head -n 1)
check cuda-resume 120 python -m pathsynth train-gan --resume "$RUN" --steps 60
check cuda-generate 120 bash -c "python -m pathsynth generate '$RUN' --per-class 64 --seed 3 --out '$OUT/gen-a' \
  && python -m pathsynth generate '$RUN' --per-class 64 --seed 3 --out '$OUT/gen-b' && diff -r '$OUT/gen-a' '$OUT/gen-b'"
check nccl-torchrun 150 python -m torch.distributed.run --standalone --nproc_per_node 1 -m pathsynth \
  train-gan --data "$OUT/data" --preset smoke --steps 20 --device cuda --runs "$OUT/runs" --name nccl
if [ -n "${WITH_TESTS:-}" ]; then
  check pytest-gan 240 python -m pytest tests/gan -q -x -p no:cacheprovider
fi

# 2. Speed: paper preset, batch 64, 128x128: eager fp32 reference vs tuned step, FLOP/s, generation.
check bench-eager 300 python bench/gan.py --steps 30 --warmup 5 --gen 5000 --images 1024 --flops \
  --json "$OUT/bench.json"
fi
# 3. torch.compile on top (compile time is reported separately).
if [ -z "${SKIP_COMPILE:-}" ]; then
  check bench-compile 240 python bench/gan.py --steps 30 --warmup 5 --gen 0 --images 1024 --compile \
    --skip-reference --json "$OUT/bench-compile.json"
fi

# 4. Diffusion (issue 10), where diffusers imports (the lent machine has none: carry its wheel,
#    see BENCHMARKS.md): CUDA smoke train, resume, byte-identical generation, then speed at 128 px.
if python -c "import diffusers" 2>/dev/null; then
  check diff-train 150 python -m pathsynth train-diffusion --data "$OUT/data" --preset smoke --steps 30 \
    --device cuda --runs "$OUT/runs" --name diff-smoke
  DRUN=$(ls -d "$OUT"/runs/*-diff-smoke 2>/dev/null | head -n 1)
  check diff-resume 120 python -m pathsynth train-diffusion --resume "$DRUN" --steps 40
  check diff-generate 150 bash -c "python -m pathsynth generate '$DRUN' --per-class 32 --seed 3 --out '$OUT/dgen-a' \
    && python -m pathsynth generate '$DRUN' --per-class 32 --seed 3 --out '$OUT/dgen-b' && diff -r '$OUT/dgen-a' '$OUT/dgen-b'"
  check diff-bench 240 python bench/generators.py --synthetic --device cuda --preset gpu \
    --json "$OUT/diffusion.json"
else
  echo "diffusion skipped (no diffusers)" >> "$STATUS"
fi

# 5. Embedding throughput (issue 9): ViT-L/16 at 224 px, random-init weights, random images.
[ -z "${SKIP_EMBED:-}" ] && check embed-vitl 240 python bench/embed.py --device cuda --synthetic --backbone vit_large_patch16_224 \
  --images 4096 --bf16-images 4096 --batch 256 --precisions float32,bf16 --json "$OUT/embed.jsonl"

python - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print("\n== GAN on GPU ==", (out / "gpu.txt").read_text().splitlines()[0])
print((out / "status.txt").read_text().rstrip())
rows = []
for name in ("bench.json", "bench-compile.json", "diffusion.json"):
    path = out / name
    if path.exists():
        data = json.loads(path.read_text())
        for key, value in data.items():
            if isinstance(value, float):
                rows.append((f"{name[:-5]}: {key}", value))
print(f"{'measure':<52}{'value':>14}")
for label, value in rows:
    print(f"{label:<52}{value:>14.4g}")
embed = out / "embed.jsonl"
if embed.exists():
    for line in embed.read_text().splitlines():
        row = json.loads(line)
        print(f"{'embed ' + row['backbone'] + ' ' + row['precision'] + ' img/s':<52}"
              f"{row['embed_images_per_s']:>14.4g}")
print("targets: paper schedule <= 3 min; generation >= 5000 images/s; ViT-L embed >= 2000 img/s")
PY
