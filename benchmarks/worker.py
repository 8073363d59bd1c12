"""One method over pair sets, in a process of its own, so that its memory is its own.

    python benchmarks/worker.py METHOD RESULT MANIFEST... [--threshold T] [--limits JSON]

Times every pair from file paths to answer (decoding included) with time.perf_counter,
after one untimed warm-up pair per set (first calls allocate buffers and thread pools
that a batch pays once). Writes RESULT (JSON): per set, per-pair seconds and answers,
the resident memory before the set (after imports and model load), after its untimed first pair,
and the peak during it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from methods import make_method
from pairs import read_manifest


def memory_kb(field: str) -> int:
    """VmRSS (resident now) or VmHWM (peak resident) of this process, in KB.

    VmHWM, not getrusage's ru_maxrss: ru_maxrss survives exec, so a worker started from the
    parent would report the parent's peak when that is larger.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise OSError(f"no {field} in /proc/self/status")


def forward_seconds(predictor, repeats: int = 5) -> list[float]:
    """The network's own forward pass on one input of the size it was trained on (no decoding, no resizing),
    with torch's threads as they are."""
    import numpy as np
    import torch

    from cropnet.data import fit_pair

    config = predictor.model.config
    # A real input's layout (6 channels, or 8 with the siamese arch's masks): a photo and a crop a quarter its size.
    photo = np.zeros((config.input_size, config.input_size, 3), dtype=np.uint8)
    pair = fit_pair(photo, photo[: config.input_size // 2, : config.input_size // 2], config.input_size, config.fit,
                    masks=config.siamese)
    image = torch.from_numpy(pair)[None].to(predictor.device)
    times = []
    with torch.no_grad():
        predictor.model(image)  # warm-up
        for _ in range(repeats):
            started = time.perf_counter()
            predictor.model(image)
            times.append(time.perf_counter() - started)
    return times


def reset_peak() -> None:
    """Start VmHWM again from the current resident memory (Linux 4.0+), so that each set gets its own peak."""
    Path("/proc/self/clear_refs").write_text("5")


def answer_set(answer, manifest_path: Path, limit: int | None) -> dict:
    """Every pair of one set (the first `limit`), timed one by one; the set's peak memory."""
    pairs = read_manifest(manifest_path)["pairs"][:limit]
    reset_peak()
    baseline = memory_kb("VmRSS")
    answer(pairs[0]["path_a"], pairs[0]["path_b"])  # warm-up, untimed
    # What the first pair left resident (for net, most of its work memory: docs/speed.md, "net's memory");
    # reported beside the work memory, which still counts it.
    warmed = memory_kb("VmRSS")
    results = []
    if hasattr(answer, "many"):
        # Batch mode: the method overlaps reading the next pair with answering this one, so a pair's time is
        # the interval between consecutive answers (the first from the start), not one pair's latency.
        started = time.perf_counter()
        for pair, result in zip(pairs, answer.many([(p["path_a"], p["path_b"]) for p in pairs]), strict=True):
            now = time.perf_counter()
            results.append({"index": pair["index"], "seconds": now - started, **result})
            started = now
    else:
        for pair in pairs:
            started = time.perf_counter()
            result = answer(pair["path_a"], pair["path_b"])
            results.append({"index": pair["index"], "seconds": time.perf_counter() - started, **result})
    return {"manifest": str(manifest_path), "baseline_rss_kb": baseline, "warmed_rss_kb": warmed,
            "peak_rss_kb": memory_kb("VmHWM"),
            "batch": hasattr(answer, "many"), "pairs": results}


def run(method: str, manifests: list[Path], threshold: float | None, limits: dict) -> dict:
    """One record per set, in order, plus the network's forward time for the methods that have one."""
    answer = make_method(method, threshold)
    sets = [answer_set(answer, path, limits.get(read_manifest(path)["spec"]["name"])) for path in manifests]
    record = {"method": method, "threshold": threshold, "sets": sets}
    predictor = getattr(answer, "predictor", None)
    if predictor is not None and predictor.model is not None:
        import torch

        record["torch_threads"] = torch.get_num_threads()
        record["forward_seconds"] = forward_seconds(predictor)
        # Again on one thread: on a shared machine, torch's default of one thread per core can wait
        # for a core another job holds; this shows how much that costs.
        torch.set_num_threads(1)
        record["forward_seconds_1_thread"] = forward_seconds(predictor)
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("method")
    parser.add_argument("result", type=Path)
    parser.add_argument("manifests", type=Path, nargs="+")
    parser.add_argument("--threshold", type=float, default=None, help="reference A's paired threshold")
    parser.add_argument("--limits", type=json.loads, default={},
                        help='JSON: answer only the first N pairs of these sets, e.g. {"12mp": 10}')
    args = parser.parse_args()
    args.result.write_text(json.dumps(run(args.method, args.manifests, args.threshold, args.limits)))


if __name__ == "__main__":
    main()
