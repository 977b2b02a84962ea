#!/usr/bin/env bash
# Reproduces the shipped default model (orient_model/default_model/).
# Photos: gathered by scripts/gather_photos/ from openly licensed Debian packages into
# $PHOTOS (each with its licence and sha256 in $PHOTOS/sources.json). Never add photos from the
# packages reserved for evaluation (see README).
set -euo pipefail
PHOTOS=${PHOTOS:-/work/photos}
WORK=${WORK:-/work/default-model}
orient make-training-set "$PHOTOS"/*/ --out "$WORK/data" --crops-per-photo 3 --copy-size 256 \
  --provenance "$PHOTOS/sources.json"
orient train "$WORK/data" --out "$WORK/models" --arch efficientnet_lite0 --weights package \
  --input-size 160 --epochs 14 --patience 5 --batch-size 32 --lr 0.001 --workers 2
python scripts/package_default_model.py "$WORK/models"
