"""Metrics for sets of synthesized pairs.

- `predict_loader` and `summarize`: the network alone, batched; the validation
  numbers written after every training epoch.
- `compare_methods` and `summarize_answers`: the `evaluate` command. Every method
  answers the same pairs one at a time, as `predict` would, and the answers are
  scored per pair kind, per JPEG-quality band and for small and border-touching crops.
"""

from __future__ import annotations

import time

import numpy as np
from PIL import Image
from tqdm import tqdm

from .config import PAIR_KINDS, SynthConfig
from .data import PairDataset
from .geometry import apply_size_rule
from .images import ImageHeader

# What PairTransform gives besides the image, carried through to the metrics.
TARGET_KEYS = ("paired", "swapped", "top_left", "kind", "original_size", "size_a", "size_b")

def predict_loader(model, loader, device, progress=None) -> dict:
    """Run the network over a loader of transformed pairs; return predictions and targets as arrays."""
    import torch

    model.eval()
    columns = {k: [] for k in ("paired_prob", "swapped_prob", "top_left_pred", *TARGET_KEYS)}
    net_seconds = 0.0
    for batch in (progress(loader) if progress else loader):
        images = batch["image"].to(device)
        start = time.perf_counter()
        with torch.no_grad():
            output = model(images)
        net_seconds += time.perf_counter() - start
        columns["paired_prob"].append(output.paired_logits.softmax(1)[:, 1].cpu())
        columns["swapped_prob"].append(output.swapped_logits.softmax(1)[:, 1].cpu())
        columns["top_left_pred"].append(output.top_left.float().cpu())
        for key in TARGET_KEYS:
            columns[key].append(batch[key])
    records = {k: torch.cat(v).numpy() for k, v in columns.items()}
    records["net_seconds"] = net_seconds
    return records


def summarize(records: dict, threshold: float = 0.5) -> dict:
    """Accuracy, precision, recall, per-kind accuracy, swapped accuracy and corner error.

    Decisions are made as `predict` makes them: the network's probabilities,
    then the size rule (a crop is never larger than its original). Corner error
    is measured on true pairs only, in pixels of the original (Euclidean), and as
    a fraction of its size (the larger of |dx|/width, |dy|/height).
    """
    predicted, swapped_predicted = apply_size_rule(records["paired_prob"] >= threshold,
                                                   records["swapped_prob"] >= 0.5,
                                                   records["size_a"], records["size_b"])
    truth = records["paired"].astype(bool)
    true_positives = int((predicted & truth).sum())
    metrics = {
        "pairs": int(len(truth)),
        "paired_accuracy": float((predicted == truth).mean()) if len(truth) else float("nan"),
        "precision": true_positives / max(1, int(predicted.sum())),
        "recall": true_positives / max(1, int(truth.sum())),
        "accuracy_by_kind": {},
    }
    for index, kind in enumerate(PAIR_KINDS):
        chosen = records["kind"] == index
        if chosen.any():
            # For "positive" this is recall; for a negative kind, its rejection rate.
            metrics["accuracy_by_kind"][kind] = float((predicted[chosen] == truth[chosen]).mean())
    if truth.any():
        swapped_right = swapped_predicted[truth] == records["swapped"][truth].astype(bool)
        size = records["original_size"][truth].astype(np.float64)  # (M, 2) width, height
        delta = (records["top_left_pred"][truth] - records["top_left"][truth]) * size
        pixels = np.hypot(delta[:, 0], delta[:, 1])
        fraction = np.abs(delta / size).max(axis=1)
        metrics.update({
            "swapped_accuracy": float(swapped_right.mean()),
            "top_left_error_px": {"median": float(np.median(pixels)), "p90": float(np.percentile(pixels, 90))},
            "top_left_error_fraction": {"median": float(np.median(fraction)),
                                        "p90": float(np.percentile(fraction, 90))},
        })
    return metrics


def predict_refine_loader(refiner, loader, device) -> dict:
    """Run the refining stage over a loader of `RefineTransform` items; predictions and targets as arrays."""
    import torch

    from .data import refined_corner

    refiner.eval()
    targets = ("paired", "kind", "origins", "scale", "top_left", "original_size", "crop_size")
    columns = {k: [] for k in ("paired_prob", "offsets", *targets)}
    for batch in loader:
        with torch.no_grad():
            crop_fit = [batch[k].to(device) for k in ("regions", "crops") if k in batch]  # when the stage has one
            output = refiner(batch["windows"].to(device), batch["patches"].to(device), *crop_fit)
        columns["paired_prob"].append(output.paired_logits.float().softmax(1)[:, 1].cpu())
        columns["offsets"].append(output.offsets.float().cpu())
        for key in targets:
            columns[key].append(batch[key])
    records = {k: torch.cat(v).numpy() for k, v in columns.items()}
    records["top_left_pred"] = np.array([
        refined_corner(offsets, origins, scale, original_size, crop_size)
        for offsets, origins, scale, original_size, crop_size in zip(
            records["offsets"], records["origins"], records["scale"], records["original_size"], records["crop_size"],
            strict=True)]).reshape(-1, 2)
    return records


def summarize_refine(records: dict, threshold: float = 0.5) -> dict:
    """The refining stage's validation numbers, in `summarize`'s terms: paired accuracy per kind, and the
    corner's error on true crops (its first-stage corner simulated, see `RefineTransform`)."""
    predicted = records["paired_prob"] >= threshold
    truth = records["paired"].astype(bool)
    metrics = {"pairs": int(len(truth)), "paired_accuracy": float((predicted == truth).mean()),
               "precision": int((predicted & truth).sum()) / max(1, int(predicted.sum())),
               "recall": int((predicted & truth).sum()) / max(1, int(truth.sum())),
               "accuracy_by_kind": {kind: float((predicted == truth)[records["kind"] == index].mean())
                                    for index, kind in enumerate(PAIR_KINDS) if (records["kind"] == index).any()}}
    if truth.any():
        delta = records["top_left_pred"][truth] - records["top_left"][truth]
        size = records["original_size"][truth].astype(np.float64)
        pixels, fraction = np.hypot(delta[:, 0], delta[:, 1]), np.abs(delta / size).max(axis=1)
        metrics.update({
            "top_left_error_px": {"median": float(np.median(pixels)), "p90": float(np.percentile(pixels, 90))},
            "top_left_error_fraction": {"median": float(np.median(fraction)),
                                        "p90": float(np.percentile(fraction, 90))},
        })
    return metrics


# ---------------------------------------------------------------- the evaluate command: methods side by side

QUALITY_BANDS = (("q25-44", 25, 44), ("q45-69", 45, 69), ("q70-95", 70, 95), ("lossless", 101, 101))
SMALL_CROP_SIDE = 100  # px; crops with a shorter side than this are reported as their own band


def quality_band(qualities: tuple[int | None, int | None]) -> str:
    """The band of the pair's lower JPEG quality (a lossless image counts as 101)."""
    lowest = min(101 if q is None else q for q in qualities)
    return next((name for name, low, high in QUALITY_BANDS if low <= lowest <= high), "other")


def scale_to_megapixels(photo: np.ndarray, megapixels: float) -> np.ndarray:
    """Resize a photo (up or down) to about `megapixels`, keeping its aspect ratio."""
    factor = (megapixels * 1e6 / (photo.shape[0] * photo.shape[1])) ** 0.5
    size = (round(photo.shape[1] * factor), round(photo.shape[0] * factor))
    return np.asarray(Image.fromarray(photo).resize(size, Image.Resampling.BICUBIC))


def compare_methods(predictors: dict, photos: list[np.ndarray], *, pairs: int, seed: int,
                    synth_config: SynthConfig, progress: bool = True) -> list[dict]:
    """Synthesize `pairs` pairs and let every predictor (name -> Predictor) answer each; one record per pair."""
    dataset = PairDataset(photos, pairs, seed, synth_config, transform=None)
    records = []
    for index in tqdm(range(pairs), desc="evaluate", unit="pair", disable=not progress, leave=False):
        pair = dataset.pair(index)
        original, crop = pair.original, pair.crop
        record = {
            "kind": pair.kind, "swapped": pair.swapped, "top_left": pair.top_left,
            "quality_band": quality_band(pair.quality),
            "small": min(crop.shape[:2]) < SMALL_CROP_SIDE,
            "touches_border": pair.top_left is not None and (
                min(pair.top_left) == 0 or pair.top_left[0] + crop.shape[1] == original.shape[1]
                or pair.top_left[1] + crop.shape[0] == original.shape[0]),
            "original_size": (original.shape[1], original.shape[0]),
            "answers": {},
        }
        for name, predictor in predictors.items():
            started = time.perf_counter()
            answer = predictor.predict_arrays(pair.a, pair.b, headers=pair_headers(pair))
            record["answers"][name] = {"paired": answer.paired, "swapped": answer.swapped,
                                       "top_left": answer.top_left, "ambiguous": answer.ambiguous,
                                       "searched": answer.searched, "seconds": time.perf_counter() - started}
        records.append(record)
    return records


def pair_headers(pair) -> tuple[ImageHeader, ImageHeader] | None:
    """What the files' headers would say of a synthesized pair: two PNGs where the synthesizer kept both
    images lossless (`images.ImageHeader`), else nothing."""
    if pair.quality != (None, None):
        return None
    return tuple(ImageHeader(image.shape[1::-1], lossless=True) for image in (pair.a, pair.b))


def summarize_answers(records: list[dict], method: str) -> dict:
    """One method's scores: accuracy overall, per kind, per quality band and band of crops; corners; time."""
    answers = [r["answers"][method] for r in records]
    right = np.array([a["paired"] == (r["kind"] == "positive") for r, a in zip(records, answers, strict=True)])
    seconds = np.array([a["seconds"] for a in answers])

    ambiguous = np.array([a["ambiguous"] for a in answers], dtype=bool)

    def accuracy(chosen) -> dict:
        """Accuracy over all chosen pairs (an ambiguous answer counts as "paired"), and over the
        decided ones: those the method did not flag as ambiguous."""
        chosen = np.asarray(chosen, dtype=bool)
        decided = chosen & ~ambiguous
        return {"pairs": int(chosen.sum()), "accuracy": float(right[chosen].mean()) if chosen.any() else None,
                "ambiguous": int((chosen & ambiguous).sum()),
                "decided_accuracy": float(right[decided].mean()) if decided.any() else None}

    summary = {
        "pairs": len(records),
        "paired_accuracy": float(right.mean()),
        "ambiguous_answers": int(ambiguous.sum()),
        "decided_accuracy": float(right[~ambiguous].mean()) if (~ambiguous).any() else None,
        "by_kind": {kind: accuracy([r["kind"] == kind for r in records]) for kind in PAIR_KINDS},
        "by_quality": {name: accuracy([r["quality_band"] == name for r in records]) for name, _, _ in QUALITY_BANDS},
        "small_crops": accuracy([r["kind"] == "positive" and r["small"] for r in records]),
        "border_touching_crops": accuracy([r["kind"] == "positive" and r["touches_border"] for r in records]),
        "seconds_per_pair": {"median": float(np.median(seconds)), "p95": float(np.percentile(seconds, 95))},
    }
    searched = [a["searched"] for a in answers if a["paired"] and a["searched"]]
    if searched:  # hybrid: how often the network's proposal window alone held the verified answer
        summary["found_within_proposal"] = searched.count("proposal") / len(searched)
    found = [(r, a) for r, a in zip(records, answers, strict=True) if r["kind"] == "positive" and a["paired"]]
    if found:
        errors = np.array([np.subtract(a["top_left"], r["top_left"]) for r, a in found])  # (n, 2) px
        distance = np.abs(errors).max(axis=1)  # Chebyshev: "within 1 px" means both coordinates
        sides = np.array([r["original_size"] for r, _ in found], dtype=np.float64)
        decided = np.array([not a["ambiguous"] for _, a in found])
        summary.update({
            "swapped_accuracy": float(np.mean([a["swapped"] == r["swapped"] for r, a in found])),
            "corner_exact": float(np.mean(distance == 0)),
            # Where the answer was not flagged ambiguous: a flat crop's corner cannot be pinned down.
            "corner_exact_decided": float(np.mean(distance[decided] == 0)) if decided.any() else None,
            "corner_within_1px_decided": float(np.mean(distance[decided] <= 1)) if decided.any() else None,
            "corner_within_1px": float(np.mean(distance <= 1)),
            "corner_error_px": {"median": float(np.median(distance)), "max": float(distance.max())},
            "corner_error_fraction": {"median": float(np.median(np.abs(errors / sides).max(axis=1))),
                                      "p90": float(np.percentile(np.abs(errors / sides).max(axis=1), 90))},
        })
    return summary


def format_comparison(summaries: dict) -> str:
    """The methods' summaries side by side, one column per method."""
    methods = list(summaries)

    def row(label: str, values: list[str]) -> str:
        return f"{label:<28}" + "".join(f"{v:>20}" for v in values)

    def band(entry: dict) -> str:
        if entry["accuracy"] is None:
            return "-"
        if not entry["ambiguous"]:
            return f"{entry['accuracy']:.4f}"
        decided = "-" if entry["decided_accuracy"] is None else f"{entry['decided_accuracy']:.4f}"
        return f"{entry['accuracy']:.3f}|{decided}|{entry['ambiguous']}"

    first = summaries[methods[0]]
    lines = [row("method", methods),
             row("paired accuracy", [f"{summaries[m]['paired_accuracy']:.4f}" for m in methods]),
             row("... of decided answers", ["-" if summaries[m]["decided_accuracy"] is None
                                            else f"{summaries[m]['decided_accuracy']:.4f}" for m in methods]),
             row("ambiguous answers", [str(summaries[m]["ambiguous_answers"]) for m in methods])]
    for kind in PAIR_KINDS:
        label = f"recall on crops (n={first['by_kind'][kind]['pairs']})" if kind == "positive" else \
            f"rejects {kind} (n={first['by_kind'][kind]['pairs']})"
        lines.append(row(label, [band(summaries[m]["by_kind"][kind]) for m in methods]))
    for name, _, _ in QUALITY_BANDS:
        lines.append(row(f"accuracy {name} (n={first['by_quality'][name]['pairs']})",
                         [band(summaries[m]["by_quality"][name]) for m in methods]))
    bands = (("small_crops", f"small crops <{SMALL_CROP_SIDE}px"), ("border_touching_crops", "crops at a border"))
    for key, label in bands:
        lines.append(row(f"{label} (n={first[key]['pairs']})", [band(summaries[m][key]) for m in methods]))
    for key, label in (("swapped_accuracy", "swapped right (found crops)"), ("corner_exact", "corner exact"),
                       ("corner_within_1px", "corner within 1 px"), ("corner_exact_decided", "  ... exact, decided"),
                       ("corner_within_1px_decided", "  ... within 1 px, decided")):
        lines.append(row(label, [f"{summaries[m][key]:.4f}" if summaries[m].get(key) is not None else "-"
                                 for m in methods]))
    lines.append(row("corner error median / max px", [
        f"{summaries[m]['corner_error_px']['median']:.0f} / {summaries[m]['corner_error_px']['max']:.0f}"
        if "corner_error_px" in summaries[m] else "-" for m in methods]))
    lines.append(row("corner error median / p90 side", [
        f"{summaries[m]['corner_error_fraction']['median']:.4f} / {summaries[m]['corner_error_fraction']['p90']:.4f}"
        if "corner_error_fraction" in summaries[m] else "-" for m in methods]))
    lines.append(row("found in the net's window", [f"{summaries[m]['found_within_proposal']:.4f}"
                                                   if "found_within_proposal" in summaries[m] else "-"
                                                   for m in methods]))
    lines.append(row("seconds/pair median / p95", [
        f"{summaries[m]['seconds_per_pair']['median']:.3f} / {summaries[m]['seconds_per_pair']['p95']:.3f}"
        for m in methods]))
    lines.append("a|b|n: accuracy a counting n ambiguous answers as 'paired'; b over the decided (non-ambiguous) ones")
    return "\n".join(lines)


def format_metrics(metrics: dict) -> str:
    """A short human-readable report of `summarize`'s output (the network's validation metrics)."""
    lines = [
        f"pairs              {metrics['pairs']}",
        f"paired accuracy    {metrics['paired_accuracy']:.3f}  "
        f"(precision {metrics['precision']:.3f}, recall {metrics['recall']:.3f})",
    ]
    for kind, accuracy in metrics["accuracy_by_kind"].items():
        label = "recall on crops" if kind == "positive" else f"rejects {kind}"
        lines.append(f"  {label:<17}{accuracy:.3f}")
    if "swapped_accuracy" in metrics:
        px, fr = metrics["top_left_error_px"], metrics["top_left_error_fraction"]
        lines += [
            f"swapped accuracy   {metrics['swapped_accuracy']:.3f}  (true pairs)",
            f"top-left error     median {px['median']:.1f} px, p90 {px['p90']:.1f} px  "
            f"(fraction of side: median {fr['median']:.3f}, p90 {fr['p90']:.3f})",
        ]
    if "pairs_per_second" in metrics:
        lines.append(f"speed              {metrics['pairs_per_second']:.1f} pairs/s end to end, "
                     f"{metrics['net_pairs_per_second']:.1f} pairs/s network alone")
    return "\n".join(lines)
