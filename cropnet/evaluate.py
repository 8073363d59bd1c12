"""Metrics for a set of pairs: the same numbers after every training epoch and from `evaluate`."""

from __future__ import annotations

import time

import numpy as np
import torch
from tqdm import tqdm

from .config import PAIR_KINDS, SynthConfig
from .data import PairDataset, PairTransform, load_folder
from .geometry import apply_size_rule

# What PairTransform gives besides the image, carried through to the metrics.
TARGET_KEYS = ("paired", "swapped", "top_left", "kind", "original_size", "size_a", "size_b")

@torch.no_grad()
def predict_loader(model, loader, device, progress=None) -> dict:
    """Run the network over a loader of transformed pairs; return predictions and targets as arrays."""
    model.eval()
    columns = {k: [] for k in ("paired_prob", "swapped_prob", "top_left_pred", *TARGET_KEYS)}
    net_seconds = 0.0
    for batch in (progress(loader) if progress else loader):
        images = batch["image"].to(device)
        start = time.perf_counter()
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


def evaluate_folder(model, images_dir, *, pairs: int, seed: int, synth_config: SynthConfig, device,
                    batch_size: int = 16, workers: int = 1, echo=print) -> dict:
    """Synthesize `pairs` pairs from every photo in `images_dir` and measure the network on them."""
    photos = load_folder(images_dir, synth_config.photo_max_side)
    echo(f"photos: {len(photos.photos)}" + (f", {len(photos.skipped)} skipped" if photos.skipped else ""))
    for reason in photos.skipped[:5]:
        echo(f"  skipped {reason}")
    transform = PairTransform(input_size=model.config.input_size, fit=model.config.fit)
    dataset = PairDataset(photos.photos, pairs, seed, synth_config, transform)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=workers)
    started = time.perf_counter()
    records = predict_loader(model, loader, device,
                             progress=lambda it: tqdm(it, desc="evaluate", unit="batch", leave=False))
    seconds = time.perf_counter() - started
    metrics = summarize(records)
    metrics["pairs_per_second"] = pairs / seconds
    metrics["net_pairs_per_second"] = pairs / max(records["net_seconds"], 1e-9)
    metrics["photos"] = len(photos.photos)
    metrics["skipped"] = len(photos.skipped)
    return metrics


def format_metrics(metrics: dict) -> str:
    """A short human-readable report of `summarize`'s output."""
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
