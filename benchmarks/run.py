"""Benchmark: cropnet's methods against template matching, SIFT and the decode floor, on the same pairs.

    python benchmarks/run.py --images data/heldout            # the full run (about 20 minutes on 2 cores)
    python benchmarks/run.py --images data/heldout --quick    # a small run, under two minutes

Writes OUT/benchmark.md (tables), OUT/benchmark.json (every number, per pair) and
OUT/benchmark-time.png, OUT/benchmark-accuracy.png. Pair files are cached under --cache.

Steps: reference A's threshold is tuned on pairs from --tune-images (training photos,
--tune-seed); the pair sets are built from --images; every method answers every set
in a process of its own (floor first and last); whole `detect.py predict` commands are
timed for start-up; then the tables, the issue's bars and the plots are written.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

import cv2
import numpy as np
import report
from methods import CROPNET_METHODS, DECODERS, METHODS
from pairs import WITHIN_ROUNDING, PairSpec, build_pairs, read_manifest, usable_photos, within_rounding

from cropnet.images import find_images

REPO = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).resolve().parent / "worker.py"
TINY = (0.012, 0.03)  # crop sides of 1.2-3% of the original's: under 100 px at 12 MP

# Pair counts sized for about 10 minutes on 2 shared cores. The bar sizes of the issue
# (12 MP) get fewer pairs than the small ones because every method is slower there, but for the
# tiny-crop set: its negatives are a category of the accuracy bar of their own, and with 20 pairs
# (until fd5eedf) 7 of them were neither flat nor within rounding, too few to tell one method from
# another by a pair (on 200 such pairs of the training photos: classic 57/69, matchTemplate 35/69).
# Pair i is the same draw whatever the count: its first 20 pairs are the earlier runs'.
FULL = (PairSpec("0.3mp", 0.3, 40), PairSpec("1mp", 1, 40), PairSpec("3mp", 3, 30), PairSpec("12mp", 12, 24),
        PairSpec("12mp-tiny", 12, 100, TINY), PairSpec("24mp", 24, 12))
QUICK = (PairSpec("0.3mp", 0.3, 6), PairSpec("1mp", 1, 4))
# Reference A's threshold is tuned on other photos and another seed, over the same kinds of sets.
TUNE_FULL = (PairSpec("0.3mp", 0.3, 40), PairSpec("1mp", 1, 40), PairSpec("3mp", 3, 24), PairSpec("12mp", 12, 12),
             PairSpec("12mp-tiny", 12, 12, TINY))
TUNE_QUICK = (PairSpec("0.3mp", 0.3, 8), PairSpec("1mp", 1, 4))
# SIFT takes about 9 s per 12-megapixel pair here: it answers only the first N pairs of the large sets.
LIMITS_FULL = {"sift": {"3mp": 16, "12mp": 8, "12mp-tiny": 8, "24mp": 4}}
LIMITS_QUICK = {"sift": {"1mp": 2}}
# Order within a set: the floor first and again last, so that drift in the machine's load during
# the set shows in the floor's spread instead of biasing the ratios.
ORDER = ("floor", "decode-grey", "decode-pillow", "classic", "hybrid", "net", "template", "sift")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_worker(method: str, manifests: list[Path], scratch: Path, threshold: float | None = None,
               limits: dict | None = None) -> dict:
    """One method over some sets in a fresh process; its record (see worker.py), or {"error": ...} when it failed."""
    result = scratch / f"{method}-{time.monotonic_ns()}.json"
    command = [sys.executable, str(WORKER), method, str(result), *map(str, manifests),
               "--limits", json.dumps(limits or {})]
    if threshold is not None:
        command += ["--threshold", repr(threshold)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        # Recorded and reported, not hidden: a broken method must not cost the other methods' numbers.
        return {"error": (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]}
    return json.loads(result.read_text())


def tune_threshold(manifests: list[Path], scratch: Path) -> dict:
    """Reference A's best correlation score on every tuning pair; the threshold that maximises paired accuracy."""
    record = run_worker("template", manifests, scratch, threshold=-1.0)  # -1: every score is reported
    if "error" in record:
        raise RuntimeError(f"tuning reference A: {record['error']}")
    scores, labels = [], []
    for manifest, answers in zip(manifests, record["sets"], strict=True):
        truth = {p["index"]: p["paired"] for p in read_manifest(manifest)["pairs"]}
        for answer in answers["pairs"]:
            # No score: the sizes do not fit or the crop is constant; that pair is "not paired" at any threshold.
            scores.append(-np.inf if answer["score"] is None else answer["score"])
            labels.append(truth[answer["index"]])
    scores, labels = np.array(scores), np.array(labels)
    finite = np.unique(scores[np.isfinite(scores)])
    # Candidates between consecutive distinct scores, and beyond both ends.
    candidates = np.concatenate([[finite[0] - 1e-6], (finite[:-1] + finite[1:]) / 2, [finite[-1] + 1e-6]])
    accuracies = np.array([np.mean((scores >= t) == labels) for t in candidates])
    best = np.flatnonzero(accuracies == accuracies.max())
    chosen = best[len(best) // 2]  # the middle of a plateau of equally good thresholds
    return {"threshold": float(candidates[chosen]), "accuracy": float(accuracies[chosen]), "pairs": len(labels),
            "scores": [None if not np.isfinite(s) else float(s) for s in scores], "labels": labels.tolist()}


def time_command(command: list[str], repeats: int) -> dict:
    """Wall time of a whole command, interpreter start included; exit codes 0 and 1 are answers."""
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
        seconds.append(time.perf_counter() - started)
        if done.returncode not in (0, 1):
            raise RuntimeError(f"{shlex.join(command)} failed: {done.stderr.strip()[-300:]}")
    # Pair files by name only: the cache folder's path says nothing.
    shown = shlex.join(["python"] + [Path(c).name if c.endswith((".jpg", ".png")) else
                                     str(Path(c).relative_to(REPO)) if c.startswith(str(REPO)) else c
                                     for c in command[1:]])
    return {"command": shown, "seconds": seconds, "median_s": statistics.median(seconds)}


def time_startup(manifests: dict[str, Path], repeats: int, with_torch: bool = True) -> dict:
    """Start-up of `detect.py predict` on one large true crop (12 MP when the run has it), and of its imports;
    `with_torch`: also of importing torch and of a hybrid call (several seconds each)."""
    name = "12mp" if "12mp" in manifests else max((n for n in manifests if "tiny" not in n),
                                                   key=lambda n: read_manifest(manifests[n])["spec"]["megapixels"])
    pair = next(p for p in read_manifest(manifests[name])["pairs"] if p["paired"])
    python, detect = sys.executable, str(REPO / "detect.py")
    commands = [[python, "-c", "pass"], [python, "-c", "import cropnet.predict"],
                [python, detect, "predict", "--method", "classic", pair["path_a"], pair["path_b"]]]
    if with_torch:
        commands += [[python, "-c", "import torch"],
                     [python, detect, "predict", "--method", "hybrid", pair["path_a"], pair["path_b"]]]
    return {"set": name, "repeats": repeats, "commands": [time_command(c, repeats) for c in commands]}


def cropnet_version() -> str:
    """The last commit, and which of cropnet's files differ from it: the code being measured."""
    git = subprocess.run(["git", "log", "-1", "--format=%h %cd", "--date=iso"], capture_output=True, text=True,
                         cwd=REPO).stdout.strip()
    changed = subprocess.run(["git", "status", "--porcelain", "cropnet", "detect.py"], capture_output=True,
                             text=True, cwd=REPO).stdout.split()
    return git + (f" (uncommitted changes in {', '.join(changed[1::2])})" if changed else "")


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {
        "cores available": len(os.sched_getaffinity(0)), "CPU": cpu,
        "load average at start": round(os.getloadavg()[0], 2),
        "python": platform.python_version(), "opencv": cv2.__version__, "OpenCV threads": cv2.getNumThreads(),
        "numpy": np.__version__, "Pillow": metadata.version("pillow"), "torch": metadata.version("torch"),
        "torchvision": metadata.version("torchvision"),
        "cropnet commit": cropnet_version(),
    }


def evaluate_bars(summary: dict, model_mb: float) -> list[str]:
    """The issue's bars, each as one line saying what was measured and whether it holds."""
    timing = summary["timing"].get("12mp")
    if not timing or "floor" not in timing:
        return []

    def verdict(ok: bool) -> str:
        return "**met**" if ok else "**missed**"

    lines = []
    floor = timing["floor"]["median_ms"]
    if "classic" in timing:
        ratio = timing["classic"]["ratio_to_floor"]
        lines.append(f"classic at 12 MP: {timing['classic']['median_ms']:.0f} ms per pair, {ratio:.2f}× the RGB "
                     f"decode floor ({floor:.0f} ms); bar ≤ 1.0: {verdict(ratio <= 1.0)}")
        if "template" in timing:
            speedup = timing["template"]["median_ms"] / timing["classic"]["median_ms"]
            lines.append(f"classic against full-resolution matchTemplate at 12 MP: {speedup:.1f}× faster; "
                         f"bar > 10×: {verdict(speedup > 10)}")
        for key, which in (("accuracy_against_references", "all pairs"),
                           ("accuracy_against_references_textured", "pairs whose crop is not one flat colour"),
                           ("accuracy_against_references_no_crop_negatives",
                            f"pairs whose crop is not one flat colour nor, for a negative, a crop within rounding "
                            f"(RMS <= {WITHIN_ROUNDING:g} grey level at some offset before encoding)")):
            worse = [] if key in summary else ["no reference ran"]
            for reference, categories in summary.get(key, {}).items():
                for category, (ours, theirs) in categories.items():
                    if ours["right"] < theirs["right"]:
                        worse.append(f"{category}: {ours['right']}/{ours['n']} right ({ours['ambiguous']} ambiguous)"
                                     f" against {reference}'s {theirs['right']}/{theirs['n']}")
            lines.append(f"classic accuracy no lower than either reference on any category, {which}, each compared "
                         "on the pairs both answered (all sets pooled): "
                         + (verdict(True) if not worse else verdict(False) + ": " + "; ".join(worse)))
    if "hybrid" in timing and "hybrid" in summary["forward_ms"]:
        allowed = 1.2 * (floor + summary["forward_ms"]["hybrid"])
        lines.append(f"hybrid at 12 MP: {timing['hybrid']['median_ms']:.0f} ms per pair against 1.2 × (floor "
                     f"{floor:.0f} + forward {summary['forward_ms']['hybrid']:.1f}) = {allowed:.0f} ms: "
                     f"{verdict(timing['hybrid']['median_ms'] <= allowed)}")
    for method in CROPNET_METHODS:
        fit = summary["slopes"].get(method)
        if fit:
            lines.append(f"{method}: time ∝ MP^{fit['slope']:.2f} from 1 to 24 MP; bar ≤ 1: "
                         f"{verdict(fit['slope'] <= 1.0)}")
    for name in ("12mp", "24mp"):
        for method in CROPNET_METHODS:
            t = summary["timing"].get(name, {}).get(method)
            if t:
                # The model is in the resident memory before the first pair, so it is outside `work`.
                allowed = 3 * summary["decoded_mb"][name]
                kept = "" if t.get("first_pair_mb") is None else \
                    f", {t['first_pair_mb']:.0f} MB of it still resident after the untimed first pair"
                lines.append(f"{method} at {name}: work memory {t['work_mb']:.0f} MB (peak RSS {t['peak_rss_mb']:.0f}"
                             f" MB with interpreter, libraries{' and model' if method != 'classic' else ''}{kept}) "
                             f"against 3 × {summary['decoded_mb'][name]:.0f} MB decoded = {allowed:.0f} MB"
                             + (f" (model file {model_mb:.0f} MB, in the resident memory before the first pair)"
                                if method != "classic" else "") + f": {verdict(t['work_mb'] <= allowed)}")
    for entry in summary["startup"]["commands"]:
        if "--method classic" in entry["command"]:
            lines.append(f"one `predict --method classic` call on a {summary['startup']['set']} pair, interpreter "
                         f"start included: {entry['median_s']:.2f} s; bar < 1 s: {verdict(entry['median_s'] < 1)}")
    return lines


def summarize(results: dict, truth: dict, specs: tuple[PairSpec, ...], methods: list[str], forward: dict) -> dict:
    """Timing per set and method, accuracy per method, growth exponents, forward times."""
    spec_dicts = [{**asdict(s), "tiny": s.tiny} for s in specs]
    main = [s.name for s in specs if not s.tiny]
    tiny = [s.name for s in specs if s.tiny]
    summary = {"specs": spec_dicts, "methods": methods, "timing": {}, "failures": {}, "forward_ms": {},
               "decoded_mb": {name: report.decoded_mb(pairs) for name, pairs in truth.items()}}
    for name, records in results.items():
        floor = records.get("floor")
        floor_median = float(np.median([p["seconds"] for p in floor["pairs"]])) if floor else None
        summary["timing"][name] = {m: report.timing(r, floor_median) for m, r in records.items()}
    summary["overall_pairs_per_second"] = {
        m: sum(len(results[n][m]["pairs"]) for n in results if m in results[n])
        / sum(p["seconds"] for n in results if m in results[n] for p in results[n][m]["pairs"])
        for m in methods if any(m in records for records in results.values())}
    # Pooled over every process of the method: the forward pass does not depend on the set.
    summary["forward_ms"] = {m: 1000 * float(np.median(f["forward_seconds"])) for m, f in forward.items()}
    summary["forward_ms_1_thread"] = {m: 1000 * float(np.median(f["forward_seconds_1_thread"]))
                                      for m, f in forward.items()}
    summary["torch_threads"] = {m: f["torch_threads"] for m, f in forward.items()}
    summary["batch_mode"] = sorted({m for records in results.values() for m, r in records.items() if r.get("batch")})
    summary["accuracy"] = {m: report.accuracy(results, truth, m, main, tiny) for m in methods
                           if m not in DECODERS}
    if "classic" in methods:
        # Per reference, classic and the reference on the same pairs (SIFT answered only part of the large sets).
        # Also without the pairs whose crop is one flat colour, which no method can tell from a crop, and
        # without the negatives that are, before encoding, a crop within rounding too.
        for key, leave_out in (("accuracy_against_references", None),
                               ("accuracy_against_references_textured", "flat"),
                               ("accuracy_against_references_no_crop_negatives", "crops")):
            summary[key] = {}
            for reference in ("template", "sift"):
                if reference in methods:
                    both = report.answered(results, reference) & report.answered(results, "classic")
                    ours = report.accuracy(results, truth, "classic", main, tiny, both, leave_out)["categories"]
                    theirs = report.accuracy(results, truth, reference, main, tiny, both,
                                             leave_out)["categories"]
                    summary[key][reference] = {c: (ours[c], theirs[c]) for c in ours if ours[c]["n"]}
    summary["negatives_within_rounding"] = [
        {"set": name, "index": p["index"], "kind": p["kind"], "crop_rms": p["crop_rms"]}
        for name, pairs in truth.items() for p in pairs if within_rounding(p)]
    summary["slopes"] = {m: report.slope(results, [s for s in spec_dicts if not s["tiny"]], m) for m in methods}
    return summary


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, required=True, help="photos to build the measured pairs from")
    parser.add_argument("--tune-images", type=Path, default=REPO / "data" / "photos",
                        help="other photos, for reference A's threshold (default: the training photos)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the measured pairs")
    parser.add_argument("--tune-seed", type=int, default=100, help="seed of the tuning pairs (must differ)")
    parser.add_argument("--quick", action="store_true", help="few small pairs: under two minutes")
    parser.add_argument("--out", type=Path, default=REPO / "docs", help="where the Markdown, JSON and plots go")
    parser.add_argument("--cache", type=Path, default=REPO / "runs" / "bench-pairs", help="where pair files go")
    parser.add_argument("--methods", default=",".join(ORDER),
                        help=f"comma-separated subset of {','.join(METHODS)} (the floor is always run)")
    parser.add_argument("--sets", default=None,
                        help="comma-separated subset of the plan's sets to measure, e.g. 12mp (default: all)")
    args = parser.parse_args()
    if args.seed == args.tune_seed:
        parser.error("--tune-seed must differ from --seed: reference A is tuned on other pairs")
    args.methods = [m for m in ORDER if m in set(args.methods.split(",")) | {"floor"}]
    return args


def main() -> None:
    args = parse_args()
    started = time.perf_counter()
    specs, tune_specs = (QUICK, TUNE_QUICK) if args.quick else (FULL, TUNE_FULL)
    if args.sets:
        specs = tuple(s for s in specs if s.name in args.sets.split(","))
    limits = LIMITS_QUICK if args.quick else LIMITS_FULL
    info = machine()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-", dir=args.cache.parent if args.cache.parent.exists()
                                     else None) as scratch:
        scratch = Path(scratch)
        tuning = None
        if "template" in args.methods:
            log(f"building {len(tune_specs)} tuning sets from {args.tune_images}")
            tune_photos = usable_photos(args.tune_images)
            tune_manifests = [build_pairs(args.tune_images, args.tune_seed, s, args.cache, tune_photos)
                              for s in tune_specs]
            tuning = tune_threshold(tune_manifests, scratch)
            tuning.update(images=str(args.tune_images), seed=args.tune_seed, sets=[s.name for s in tune_specs])
            log(f"reference A threshold {tuning['threshold']:.4f} (accuracy {tuning['accuracy']:.3f} "
                f"on {tuning['pairs']} tuning pairs)")
        manifests, results, truth, failures, forward = {}, {}, {}, {}, {}
        photos = usable_photos(args.images)
        log(f"{len(photos)} photos in {args.images} ({len(find_images(args.images)) - len(photos)} one flat colour, "
            "skipped: a negative drawn from one is a crop)")
        # One process per method and set, so that each has its own memory; --quick: one per method for all
        # sets (the peak is reset for each), since importing torch alone takes seconds.
        for batch in ([list(specs)] if args.quick else [[spec] for spec in specs]):
            for spec in batch:
                log(f"building {spec.name}: {spec.count} pairs")
                manifests[spec.name] = build_pairs(args.images, args.seed, spec, args.cache, photos)
                truth[spec.name] = read_manifest(manifests[spec.name])["pairs"]
                results[spec.name] = {}
            for method in [*args.methods, "floor"]:
                record = run_worker(method, [manifests[spec.name] for spec in batch], scratch,
                                    tuning["threshold"] if method == "template" else None, limits.get(method))
                if "error" in record:
                    failures[f"{'+'.join(spec.name for spec in batch)} {method}"] = record["error"]
                    log(f"{method}: FAILED: {record['error']}")
                    continue
                if "forward_seconds" in record:
                    pooled = forward.setdefault(method, {"forward_seconds": [], "forward_seconds_1_thread": []})
                    pooled["forward_seconds"] += record["forward_seconds"]
                    pooled["forward_seconds_1_thread"] += record["forward_seconds_1_thread"]
                    pooled["torch_threads"] = record["torch_threads"]
                for spec, answers in zip(batch, record["sets"], strict=True):
                    if method == "floor" and "floor" in results[spec.name]:
                        first = results[spec.name]["floor"]  # the second pass: pool it with the first
                        first["pairs"] += answers["pairs"]
                        first["peak_rss_kb"] = max(first["peak_rss_kb"], answers["peak_rss_kb"])
                        answers = first
                    results[spec.name][method] = answers
                    times = [p["seconds"] for p in answers["pairs"]]
                    log(f"{spec.name} {method}: median {1000 * np.median(times):.1f} ms over {len(times)} pairs")
        log("timing start-up")
        # Quick: classic's start-up only; torch's import alone takes seconds on this machine.
        startup = time_startup(manifests, repeats=1 if args.quick else 3, with_torch=not args.quick)
    summary = summarize(results, truth, specs, args.methods, forward)
    info["load average at end"] = round(os.getloadavg()[0], 2)
    if cropnet_version() != info["cropnet commit"]:
        # Every worker imports cropnet afresh: later sets may have measured other code than earlier ones.
        info["cropnet commit at end (CHANGED during the run)"] = cropnet_version()
    info["run time, minutes"] = round((time.perf_counter() - started) / 60, 1)
    from cropnet.predict import default_checkpoint

    model_mb = default_checkpoint().stat().st_size / 2**20
    summary.update(command=shlex.join(["python", "benchmarks/run.py", *sys.argv[1:]]), machine=info,
                   template_threshold=tuning, startup=startup, failures=failures)
    summary["bars"] = evaluate_bars(summary, model_mb)
    if failures:
        summary["bars"].append("FAILED workers: " + "; ".join(f"{k}: {v}" for k, v in failures.items()))
    (args.out / "benchmark.md").write_text(report.markdown(summary))
    (args.out / "benchmark.json").write_text(json.dumps({**summary, "truth": truth, "raw": results, "forward": forward},
                                                        indent=1))
    report.plot_time(summary, args.out / "benchmark-time.png")
    report.plot_accuracy(summary, args.out / "benchmark-accuracy.png")
    log(f"wrote {args.out / 'benchmark.md'} in {info['run time, minutes']} minutes")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
