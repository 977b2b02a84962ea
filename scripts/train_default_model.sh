#!/usr/bin/env bash
# Reproduces the shipped default model (orient_model/default_model/) on a CPU in one sitting.
# Photos: gathered by scripts/gather_photos/ (rounds 1 and 3-6; see its README) into $PHOTOS,
# each with its source, licence, kinds and sha256 in $PHOTOS/sources.json. Never add photos from
# the sources reserved for evaluation (see benchmarks/independent_eval/README.md).
#   PHOTOS=/work/photos bash scripts/train_default_model.sh        # training copies, model, package
#   PHOTOS=/work/photos bash scripts/train_default_model.sh data   # only the training copies ($WORK/data)
# The whole corpus (15,787 training photos) trains in about 95 minutes on 2 cores, judging and
# the 8-bit network included. RESUME=1 goes on from the last finished epoch after a stop;
# MAX_TRAIN_PHOTOS=10000 trains on a seeded choice of the training photos (a learning-curve
# point), judged on the same photos; LEFT_OUT="name ..." skips those folders of $PHOTOS (the
# model shipped before round 6 left out rounds 5 and 6: LEFT_OUT="luanfujun-deep-photo-styletransfer
# Li-Chongyi-Zero-DCE chaimi2013-MRP elementary-wallpapers ukui-wallpapers catsdogs imagenette
# intel miniplaces scene15" EPOCHS=3).
#
# Five sources are held out whole as test photos (other sources than those learnt from):
# cszn-FFDNet (Kodak24, CBSD68, McMaster), scratch, kphotoalbum, piddnad-DDColor and Linzaer
# (group photos). The photos were checked upright by eye, so --trust-upright skips the model check.
set -euo pipefail
PHOTOS=${PHOTOS:-/work/photos}
WORK=${WORK:-/work/corpus}
HELD_OUT=(cszn-FFDNet scratch kphotoalbum piddnad-DDColor Linzaer-Ultra-Light-Fast-Generic-Face-Detector-1MB)
read -r -a LEFT_OUT <<< "${LEFT_OUT-}"
held_args=() && upright=()
for dir in "$PHOTOS"/*/; do
  name=$(basename "$dir")
  if [ ${#LEFT_OUT[@]} -gt 0 ] && printf '%s\n' "${LEFT_OUT[@]}" | grep -qx "$name"; then continue; fi
  if printf '%s\n' "${HELD_OUT[@]}" | grep -qx "$name"; then held_args+=(--held-out-dirs "$dir"); else upright+=("$dir"); fi
done
orient make-training-set "${upright[@]}" "${held_args[@]}" --out "$WORK/data" --provenance "$PHOTOS/sources.json" \
  --trust-upright --crops-per-photo 3 --copy-size 256
[ "${1:-}" = data ] && exit 0
orient train "$WORK/data" --out "$WORK/models" --arch efficientnet_lite0 --weights package --input-size 224 \
  --freeze early --cache-passes 1 --epochs "${EPOCHS:-2}" --patience 2 --batch-size 32 --lr 0.001 --workers 2 \
  --views 3 ${MAX_TRAIN_PHOTOS:+--max-train-photos "$MAX_TRAIN_PHOTOS"} ${RESUME:+--resume}
python scripts/package_default_model.py "$WORK/models"
