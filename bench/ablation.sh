#!/usr/bin/env bash
# Preset choices on validation groups only: group-level 5-fold CV of `quick`'s `original` condition,
# 3 seeds, one row per choice (bench/classify.py runs the real product). Nothing here reads an
# external set; BACH folds go by its `group` column. Rows go to bench/out/ablation.jsonl.
#   bash bench/ablation.sh [ROW ...]   # rows: baseline colour macenko herlev7 colour-histology
#                                      #   monitor-loss colour-loss colour-long herlev7-loss
#                                      #   handcrafted herlev7-handcrafted
set -euo pipefail
cd "$(dirname "$0")/.."
json=bench/out/ablation.jsonl
rows=("$@")
[ ${#rows[@]} -gt 0 ] || rows=(baseline colour macenko herlev7 colour-histology)
for row in "${rows[@]}"; do
  case "$row" in
    baseline) args=(bach --label bach-baseline) ;;
    colour) args=(bach --label bach-colour --set classifier.colour.hed_p=0.8
                  --set classifier.colour.saturation_p=0.5 --set classifier.colour.contrast_p=0.5) ;;
    colour-histology) args=(bach --label bach-colour-histology
                  --set classifier.colour.randstain_p=0.5 --set classifier.colour.hed_p=0.5
                  --set classifier.colour.hue_p=0.3 --set classifier.colour.saturation_p=0.5
                  --set classifier.colour.brightness_p=0.5 --set classifier.colour.contrast_p=0.5
                  --set classifier.colour.gamma_p=0.3 --set classifier.colour.blur_p=0.1
                  --set classifier.colour.noise_p=0.1) ;;
    macenko) args=(bach --label bach-macenko --set stain_normalisation=macenko) ;;
    monitor-loss) args=(bach --label bach-monitor-loss --set classifier.monitor=loss) ;;
    colour-loss) args=(bach --label bach-colour-loss --set classifier.monitor=loss
                  --set classifier.colour.hed_p=0.8 --set classifier.colour.saturation_p=0.5
                  --set classifier.colour.contrast_p=0.5) ;;
    colour-long) args=(bach --label bach-colour-long --set classifier.epochs=30
                  --set classifier.patience=10 --set classifier.min_epochs=15
                  --set classifier.colour.hed_p=0.8 --set classifier.colour.saturation_p=0.5
                  --set classifier.colour.contrast_p=0.5) ;;
    herlev7-loss) args=(herlev7 --label herlev7-monitor-loss --set classifier.monitor=loss) ;;
    handcrafted) args=(bach --label bach-handcrafted --set classifier.kind=logistic
                  --set classifier.backbone=handcrafted) ;;
    herlev7-handcrafted) args=(herlev7 --label herlev7-handcrafted --set classifier.kind=logistic
                  --set classifier.backbone=handcrafted) ;;
    herlev7) args=(herlev7 --label herlev7-baseline) ;;
    *) echo "unknown row $row" >&2; exit 2 ;;
  esac
  echo "== $row $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg)"
  python bench/classify.py "${args[@]}" --folds 5 --seeds 3 --json "$json"
done
