"""Does a change to verify.py keep classic's answers? Answer fixed synthesized pairs, save, compare.

Speed work on the search must not change what it decides. This answers the same seeded pairs
(from training photos, never held-out ones) with `predict_classic` from arrays, and writes one
JSON line per pair: the answer and the CPU seconds it took. Given an earlier file, it prints
every pair whose answer differs and the two CPU totals.

    python scripts/same_answers.py --out runs/answers-before.jsonl             # on the old commit
    python scripts/same_answers.py --out runs/answers-after.jsonl --compare runs/answers-before.jsonl

The default groups are those docs/speed.md reports: 300 pairs of the full mix from photos of
at most 2000 px, 80 pairs at 4000 px, and 120 tiny crops (1.2-3% of the side) at 4000 px.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cropnet.config import SynthConfig  # noqa: E402
from cropnet.data import PairDataset, load_folder  # noqa: E402
from cropnet.predict import predict_classic  # noqa: E402

# (name, photos' longest side, pairs, seed, crop side range)
GROUPS = (("mix-2000", 2000, 300, 31, (0.10, 0.90)),
          ("mix-4000", 4000, 80, 32, (0.10, 0.90)),
          ("tiny-4000", 4000, 120, 33, (0.012, 0.03)))


def answer_groups(images: Path, scale: float) -> list[dict]:
    records, photos_at = [], {}
    for name, max_side, count, seed, (crop_min, crop_max) in GROUPS:
        if max_side not in photos_at:
            photos_at[max_side] = load_folder(images, max_side).photos
        photos = photos_at[max_side]
        config = replace(SynthConfig(), crop_min=crop_min, crop_max=crop_max, photo_max_side=None)
        dataset = PairDataset(photos, max(1, round(count * scale)), seed, config, transform=None)
        for index in range(len(dataset)):
            pair = dataset.pair(index)
            started = time.process_time()
            answer = predict_classic(pair.a, pair.b)
            records.append({"group": name, "index": index, "kind": pair.kind, "paired": answer.paired,
                            "swapped": answer.swapped, "top_left": answer.top_left and list(answer.top_left),
                            "ambiguous": answer.ambiguous, "truth": pair.top_left and list(pair.top_left),
                            "cpu": time.process_time() - started})
        print(f"{name}: {len(dataset)} pairs", file=sys.stderr)
    return records


def differences(before: list[dict], after: list[dict]) -> list[str]:
    """One line per pair answered differently; a corner counts only when either answer is not ambiguous."""
    lines = []
    for old, new in zip(before, after, strict=True):
        same = (old["paired"], old["swapped"]) == (new["paired"], new["swapped"])
        if same and old["top_left"] != new["top_left"] and not (old["ambiguous"] and new["ambiguous"]):
            same = False
        if not same or old["ambiguous"] != new["ambiguous"]:
            lines.append(f"{new['group']} #{new['index']} {new['kind']} (truth {new['truth']}): "
                         f"{old['paired']}/{old['top_left']}/ambiguous={old['ambiguous']} -> "
                         f"{new['paired']}/{new['top_left']}/ambiguous={new['ambiguous']}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, default=Path("data/photos"))
    parser.add_argument("--out", type=Path, required=True, help="JSON lines, one answer per pair")
    parser.add_argument("--compare", type=Path, help="an earlier --out file of the same groups")
    parser.add_argument("--scale", type=float, default=1.0, help="share of each group's pairs (quick checks)")
    args = parser.parse_args()
    records = answer_groups(args.images, args.scale)
    args.out.write_text("".join(json.dumps(record) + "\n" for record in records))
    if args.compare:
        before = [json.loads(line) for line in args.compare.read_text().splitlines()]
        changed = differences(before, records)
        print("\n".join(changed) or "every answer the same")
        for label, run in (("before", before), ("after", records)):
            print(f"CPU {label}: {sum(r['cpu'] for r in run):.1f} s for {len(run)} pairs")


if __name__ == "__main__":
    main()
