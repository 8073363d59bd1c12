"""Where classic's time per pair goes, on one benchmark set: the RGB decode floor, the batch
(`Predictor.predict_many`), and its two phases apart: reading the pairs (decoding and the
crop's preparation) and answering pairs already read. Best of `--repeats` runs, ms per pair:
the wall time, and the process's CPU time in that run (all its threads), which moves less
with the machine's timing noise.

    python benchmarks/phases.py runs/bench-pairs/12mp-seed1-n24-*/manifest.json --jpeg-only

Nothing else should run meanwhile; the figures are for development, not for the tables.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pairs import read_manifest  # noqa: E402

from cropnet.predict import Predictor  # noqa: E402


def best_ms_per_pair(run, count: int, repeats: int) -> tuple[float, float]:
    """(wall, CPU) ms per pair of the run with the least wall time."""
    times = []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        times.append((time.perf_counter() - wall, time.process_time() - cpu))
    return tuple(1000 * seconds / count for seconds in min(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("manifest", type=Path, help="a set's manifest.json (benchmarks/run.py writes them)")
    parser.add_argument("--jpeg-only", action="store_true", help="only the pairs whose two files are JPEG")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    entries = read_manifest(args.manifest)["pairs"]
    if args.jpeg_only:
        entries = [e for e in entries if e["path_a"].endswith(".jpg") and e["path_b"].endswith(".jpg")]
    pairs = [(e["path_a"], e["path_b"]) for e in entries]
    predictor = Predictor(method="classic")
    list(predictor.predict_many(pairs[:2]))  # warm up: first calls into OpenCV and numpy
    loaded = [predictor.load(*pair) for pair in pairs]
    def each(step, items):
        """Run `step` on one item at a time and drop its result, as a batch holds one pair at a time
        (keeping every decoded image would time fresh memory's page faults instead)."""
        return lambda: all(step(item) or True for item in items)

    phases = {
        "floor (cv2.imread RGB, both files)": each(lambda pair: (cv2.imread(pair[0]), cv2.imread(pair[1])), pairs),
        "classic, batch (predict_many)": lambda: all(True for _ in predictor.predict_many(pairs)),
        "reading alone (Predictor.load)": each(lambda pair: predictor.load(*pair), pairs),
        "answering alone (Predictor.answer)": each(predictor.answer, loaded),
    }
    print(f"{len(pairs)} pairs from {args.manifest.parent.name}, ms per pair (best of {args.repeats}): wall, CPU")
    for name, run in phases.items():
        wall, cpu = best_ms_per_pair(run, len(pairs), args.repeats)
        print(f"  {name:40s} {wall:7.1f} {cpu:7.1f}")


if __name__ == "__main__":
    main()
