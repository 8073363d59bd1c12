"""Choose verify.py's decision thresholds from synthesized pairs (never from held-out photos).

For every pair the search runs once; the per-tile evidence at the best few
candidates is kept (verify.CropTests.measure), so that each threshold setting on
the grid is scored without searching again (Evidence.scores, as predict scores
it). Prints, per setting, the errors per pair kind.

    python scripts/calibrate_verify.py --images data/photos --pairs 600 --seed 7
    python scripts/calibrate_verify.py --images data/photos --pairs 400 --seed 22 --crop-range 0.02 0.06
"""

from __future__ import annotations

import itertools
import sys
import time
from dataclasses import replace
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cropnet.config import PAIR_KINDS, SynthConfig  # noqa: E402
from cropnet.data import PairDataset, load_folder  # noqa: E402
from cropnet.verify import Evidence, PreparedCrop, VerifyConfig, search, to_grey  # noqa: E402

TEXTURE_FLOORS = (60, 100, 150)  # texture_floor values on the grid
REGION_BIASES = (2.0, 2.5, 3.0, float("inf"))  # max_region_bias values on the grid (inf: no region test)
SETTING = ("noise_floor", "texture_gain", "texture_floor", "min_best_here", "max_region_bias")  # a grid point


def candidate_evidence(pair, config: VerifyConfig) -> list[Evidence]:
    """Evidence at the crop's best candidates, in the order the sizes allow (as `locate` searches)."""
    original, crop = to_grey(pair.original), to_grey(pair.crop)
    if crop.shape[0] > original.shape[0] or crop.shape[1] > original.shape[1]:
        original, crop = crop, original  # resized-up negatives can be larger than their "original"
        if crop.shape[0] > original.shape[0] or crop.shape[1] > original.shape[1]:
            return []
    prepared = PreparedCrop(crop, config)
    candidates = [(0, 0, 0.0)] if crop.shape == original.shape else search(original, prepared, config)[0]
    return [prepared.tests.measure(original, x, y) for x, y, _ in candidates[:config.max_verified]]


def decide(evidence: list[Evidence], config: VerifyConfig):
    """(found, top_left) as verify_candidates decides it (`Evidence.passes`), at `config`'s thresholds."""
    for candidate in evidence:
        if candidate.passes(config)[0]:
            return True, (candidate.x, candidate.y)
    return False, None


@click.command()
@click.option("--images", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True)
@click.option("--pairs", type=int, default=600, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--photo-max-side", type=int, default=2048, show_default=True)
@click.option("--crop-range", type=(float, float), default=(SynthConfig.crop_min, SynthConfig.crop_max),
              show_default=True, help="Crop sides as fractions of the photo's (0.02 0.06: tiny crops).")
def main(images, pairs, seed, photo_max_side, crop_range):
    synth = SynthConfig(photo_max_side=photo_max_side, png_probability=0.1, crop_min=crop_range[0],
                        crop_max=crop_range[1])
    photos = load_folder(images, synth.photo_max_side)
    dataset = PairDataset(photos.photos, pairs, seed, synth, transform=None, augment=True)
    base = VerifyConfig()
    records = []
    started = time.perf_counter()
    for index in range(pairs):
        pair = dataset.pair(index)
        quality = min(q or 100 for q in pair.quality)
        records.append((pair.kind, pair.top_left, quality, candidate_evidence(pair, base)))
    print(f"{pairs} pairs searched in {time.perf_counter() - started:.0f} s", file=sys.stderr)

    grid = list(itertools.product((10, 25, 50), (0.5, 1.0), TEXTURE_FLOORS, (0.8, 0.9, 0.95), REGION_BIASES))
    chosen = tuple(getattr(base, name) for name in SETTING)
    results = []
    for setting in grid + [chosen]:
        errors = dict.fromkeys(PAIR_KINDS, 0)
        totals = dict.fromkeys(PAIR_KINDS, 0)
        wrong_corner = 0
        config = replace(base, **dict(zip(SETTING, setting, strict=True)))
        for kind, top_left, _, evidence in records:
            found, corner = decide(evidence, config)
            totals[kind] += 1
            errors[kind] += found != (kind == "positive")
            wrong_corner += kind == "positive" and found and tuple(corner) != tuple(top_left)
        results.append((sum(errors.values()), setting, errors, totals, wrong_corner))
    print("errors | noise_floor texture_gain texture_floor min_best_here max_region_bias | errors per kind ("
          + ", ".join(PAIR_KINDS) + ") | positives found at a wrong corner")
    # The 15 best settings, then the chosen one's other region-test thresholds, then the chosen one.
    neighbours = [r for r in results[:-1] if r[1][:4] == chosen[:4] and r[1] != chosen]
    for total, setting, errors, totals, wrong_corner in (sorted(results[:-1], key=lambda r: r[0])[:15] + neighbours
                                                         + [results[-1]]):
        label = "chosen: " if setting == chosen else ""
        counts = ", ".join(f"{errors[k]}/{totals[k]}" for k in PAIR_KINDS)
        print(f"{label}{total} | " + " ".join(f"{v:g}" for v in setting) + f" | {counts} | {wrong_corner}")


if __name__ == "__main__":
    main()
