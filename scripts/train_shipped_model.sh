#!/usr/bin/env bash
# The shipped checkpoints/cropnet.pt's whole recipe, in one command: five training runs, each starting
# from the weights the one before exported (README, "The shipped model"; docs/network.md has why each is
# there). Several hours on 2 CPU cores (the logged runs took 20-86 minutes each).
#   bash scripts/train_shipped_model.sh [OUT_DIR]      # OUT_DIR: default runs/shipped, from where it is run
# Writes OUT_DIR/cropnet.pt; copy it to checkpoints/cropnet.pt to ship it. The training photos must be
# in data/photos (bash data/fetch_training_photos.sh). One caveat, from the history: the first run that
# produced the shipped weights was stopped after its 7th epoch of 12 and its best.pt (epoch 6) taken, so
# run to its end the first step can pick another epoch.
set -euo pipefail
out="$(realpath -m "${1:-runs/shipped}")"  # before the cd: a relative OUT_DIR is the caller's
cd "$(dirname "$0")/.."
mkdir -p "$out"
export_to() {  # export_to RUN_DIR CHECKPOINT FILE: a run's checkpoint as a float16 model file
    python -c "import sys; from cropnet.checkpoint import export_checkpoint; export_checkpoint(sys.argv[1], sys.argv[2])" \
        "$1/$2" "$3"
}

python detect.py train --images data/photos --out "$out/siamese" --arch siamese-resnet18 --input-size 160 \
    --epochs 12 --pairs-per-epoch 2048 --easy-epochs 1 --ramp-epochs 3 --seed 0
export_to "$out/siamese" best.pt "$out/siamese-best.pt"
python detect.py train --images data/photos --out "$out/siamese-ft" --init "$out/siamese-best.pt" \
    --epochs 10 --pairs-per-epoch 2048 --lr 3e-4 --seed 1
export_to "$out/siamese-ft" last.pt "$out/siamese-ft.pt"
python detect.py train --images data/photos --out "$out/refine" --init "$out/siamese-ft.pt" --stage refine \
    --epochs 12 --pairs-per-epoch 2048 --lr 1e-3 --seed 3
export_to "$out/refine" last.pt "$out/refine.pt"
python detect.py train --images data/photos --out "$out/pixels" --init "$out/refine.pt" --stage refine \
    --refine-pixels --photo-max-side 1600 --epochs 8 --pairs-per-epoch 2048 --lr 1e-3 --seed 4
export_to "$out/pixels" last.pt "$out/pixels.pt"
# The whole-crop head also sees 48 generated vector-art images (made here, seed 0: the same ones each time).
python scripts/make_flat_art.py "$out/flat-art" --count 48 --seed 0
mkdir -p "$out/photos-flat"
ln -sf "$PWD"/data/photos/* "$out"/flat-art/* "$out/photos-flat/"
python detect.py train --images "$out/photos-flat" --out "$out/cropfit" --init "$out/pixels.pt" --stage crop-fit \
    --refine-crop-side 192 --photo-max-side 1600 --epochs 3 --pairs-per-epoch 2048 --lr 2e-3 --seed 8
export_to "$out/cropfit" last.pt "$out/cropnet.pt"
