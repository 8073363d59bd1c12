"""Learning curves of one training run: `log.jsonl` in, a PNG out.

    python scripts/plot_curves.py runs/siamese/log.jsonl docs/curves-siamese.png --title "siamese-resnet18"

Four panels per epoch: the training losses; the validation paired accuracy,
recall and rejection of each negative kind; swapped accuracy; the corner error
(median and 90th percentile, as a fraction of the original's side). Dashed
lines are the network issue's bars. Needs matplotlib (`pip install -e .[plots]`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

BARS = {"positive": 0.97, "other": 0.99, "flip": 0.97, "border": 0.90, "resized": 0.80}
COLOURS = {"positive": "black", "other": "tab:blue", "flip": "tab:orange", "border": "tab:green",
           "resized": "tab:red"}


def read_log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_run(records: list[dict], title: str):
    epochs = [r["epoch"] + 1 for r in records]
    figure, axes = plt.subplots(2, 2, figsize=(11, 7.5), constrained_layout=True)
    figure.suptitle(title)

    losses = axes[0, 0]
    for key in ("loss", "paired", "swapped", "top_left", "offsets"):  # "offsets": a refining stage's run
        if key in records[0]["train"]:
            losses.plot(epochs, [r["train"][key] for r in records], marker=".", label=key)
    if "loss" in records[0]["val"]:  # a crop-mined run: the loss on its validation looks too
        losses.plot(epochs, [r["val"]["loss"] for r in records], marker=".", label="validation loss")
    losses.set(title="training loss (per epoch, mean)", xlabel="epoch", yscale="log")
    losses.legend()

    kinds = axes[0, 1]
    kinds.plot(epochs, [r["val"]["paired_accuracy"] for r in records], color="grey", lw=3, alpha=0.5,
               label="paired accuracy")
    for kind, colour in COLOURS.items():
        label = "recall" if kind == "positive" else f"rejects {kind}"
        kinds.plot(epochs, [r["val"]["accuracy_by_kind"].get(kind, float("nan")) for r in records], marker=".",
                   color=colour, label=label)
        kinds.axhline(BARS[kind], color=colour, ls="--", lw=0.8)
    kinds.set(title="validation: recall and rejection per kind (dashed: bars)", xlabel="epoch", ylim=(0, 1.02))
    kinds.legend(fontsize=8)

    swapped = axes[1, 0]
    swapped.plot(epochs, [r["val"].get("swapped_accuracy", float("nan")) for r in records], marker=".")
    swapped.axhline(0.995, color="black", ls="--", lw=0.8)
    title = "validation: swapped accuracy, true pairs (dashed: bar)"
    if "swapped_accuracy" not in records[0]["val"]:  # a refining stage's run: the first stage orders the pair
        title = "swapped: not this stage's (the first stage orders the pair)"
    swapped.set(title=title, xlabel="epoch", ylim=(0, 1.02))

    corner = axes[1, 1]
    if "top_left_error_fraction" not in records[0]["val"]:  # a crop-mined run: the looks place the corner
        corner.set(title="corner: not this stage's (the refining stage's looks place it)")
        return figure
    for key, bar in (("median", 0.01), ("p90", 0.03)):
        line, = corner.plot(epochs, [r["val"]["top_left_error_fraction"][key] for r in records], marker=".",
                            label=key)
        corner.axhline(bar, color=line.get_color(), ls="--", lw=0.8)
    corner.set(title="validation: corner error, fraction of side (dashed: bars)", xlabel="epoch", yscale="log")
    corner.legend()
    return figure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", type=Path, help="a run's log.jsonl")
    parser.add_argument("out", type=Path, help="PNG to write")
    parser.add_argument("--title", default=None, help="figure title [default: the log's path]")
    args = parser.parse_args()
    figure = plot_run(read_log(args.log), args.title or str(args.log))
    figure.savefig(args.out, dpi=90)


if __name__ == "__main__":
    main()
