"""Numbers from the workers' raw results, and the Markdown and plots made of them.

`results[spec][method]` is a worker record (see worker.py); `truth[spec]` the manifest's
pairs. Accuracy counts an ambiguous answer as "paired", as `evaluate`'s first number does,
and reports how many there were.
"""

from __future__ import annotations

import math

import numpy as np
from methods import CROPNET_METHODS, DECODERS, LABELS
from pairs import WITHIN_ROUNDING, within_rounding

QUALITY_BANDS = ("q25-44", "q45-69", "q70-95", "lossless")
NEGATIVE_KINDS = ("other", "flip", "border", "resized")
SLOPE_RANGE = (1.0, 24.0)  # megapixels: the issue asks for linear growth from 1 to 24 MP


def timing(record: dict, floor_median: float | None) -> dict:
    """Median and 95th percentile per pair, the ratio to the floor, pairs/s and memory of one worker run."""
    seconds = np.array([p["seconds"] for p in record["pairs"]])
    median = float(np.median(seconds))
    return {
        "pairs": len(seconds), "median_ms": 1000 * median, "p95_ms": 1000 * float(np.percentile(seconds, 95)),
        "ratio_to_floor": median / floor_median if floor_median else None,
        "pairs_per_second": len(seconds) / float(seconds.sum()),
        "peak_rss_mb": record["peak_rss_kb"] / 1024,
        # What answering adds on top of the interpreter, the libraries and the loaded model.
        "work_mb": (record["peak_rss_kb"] - record["baseline_rss_kb"]) / 1024,
        # ... of which the untimed first pair left resident (older records lack it)
        "first_pair_mb": (record["warmed_rss_kb"] - record["baseline_rss_kb"]) / 1024 if "warmed_rss_kb" in record
        else None,
    }


def decoded_mb(truth: list[dict]) -> float:
    """Both images of the set's largest pair as decoded RGB arrays, MB."""
    return max(3 * (p["size_a"][0] * p["size_a"][1] + p["size_b"][0] * p["size_b"][1]) for p in truth) / 2**20


def answered(results: dict, method: str) -> set[tuple[str, int]]:
    """(set, index) of every pair `method` answered."""
    return {(spec, a["index"]) for spec, records in results.items() if method in records
            for a in records[method]["pairs"]}


def joined(results: dict, truth: dict, method: str, specs: list[str],
           only: set[tuple[str, int]] | None = None) -> list[tuple[dict, dict]]:
    """(truth, answer) for every pair `method` answered in the given specs (and in `only`, when given)."""
    rows = []
    for spec in specs:
        if method in results.get(spec, {}):
            by_index = {p["index"]: p for p in truth[spec]}
            rows += [(by_index[a["index"]], a) for a in results[spec][method]["pairs"]
                     if only is None or (spec, a["index"]) in only]
    return rows


def tally(rows: list[tuple[dict, dict]]) -> dict:
    """Right answers (paired or not), pairs and ambiguous answers among `rows`."""
    return {"right": sum(a["paired"] == t["paired"] for t, a in rows), "n": len(rows),
            "ambiguous": sum(bool(a.get("ambiguous")) for _, a in rows)}


def accuracy(results: dict, truth: dict, method: str, main: list[str], tiny: list[str],
             only: set[tuple[str, int]] | None = None, leave_out: str | None = None) -> dict:
    """Per category: the main sets (full crop-size range) by kind and JPEG band; crops under 100 px from every
    set; the tiny-crop sets' negatives; negatives by whether their crop is one flat colour; and corner exactness
    over the true crops found. `only`: just these (set, index) pairs, to compare two methods on the pairs both
    answered; `leave_out`: "flat", the pairs whose crop is one flat colour; "crops", those and the negatives
    that are, before encoding, a crop within rounding (`pairs.crop_rms`)."""
    rows = joined(results, truth, method, main, only)
    tiny_rows = joined(results, truth, method, tiny, only)
    if leave_out:
        rows, tiny_rows = ([r for r in group if not is_left_out(r[0], leave_out)] for group in (rows, tiny_rows))
    categories = {
        "all pairs": tally(rows),
        "true crops found": tally([r for r in rows if r[0]["kind"] == "positive"]),
        **{f"rejects {kind}": tally([r for r in rows if r[0]["kind"] == kind]) for kind in NEGATIVE_KINDS},
        **{f"JPEG {band}": tally([r for r in rows if r[0]["quality_band"] == band]) for band in QUALITY_BANDS},
        "crops under 100 px found": tally([r for r in rows + tiny_rows if r[0]["kind"] == "positive"
                                           and r[0]["small"]]),
        "tiny-crop set: negatives rejected": tally([r for r in tiny_rows if not r[0]["paired"]]),
        "negatives with a textured crop rejected": tally([r for r in rows + tiny_rows if not r[0]["paired"]
                                                          and not r[0].get("flat_crop")]),
        "negatives with a flat crop rejected": tally([r for r in rows + tiny_rows if not r[0]["paired"]
                                                      and r[0].get("flat_crop")]),
    }
    found = [(t, a) for t, a in rows + tiny_rows if t["paired"] and a["paired"]]
    errors = [math.inf if a["swapped"] != t["swapped"] else max(abs(a["top_left"][0] - t["top_left"][0]),
                                                                abs(a["top_left"][1] - t["top_left"][1]))
              for t, a in found]
    corners = {"found": len(found), "exact": sum(e == 0 for e in errors), "within_1px": sum(e <= 1 for e in errors)}
    return {"categories": categories, "corners": corners}


def is_left_out(entry: dict, leave_out: str) -> bool:
    """Whether `accuracy(..., leave_out)` leaves this pair (a manifest entry) out: "flat" or "crops"."""
    if leave_out not in ("flat", "crops"):
        raise ValueError(f"leave_out is 'flat' or 'crops', not {leave_out!r}")
    return bool(entry.get("flat_crop")) or (leave_out == "crops" and within_rounding(entry))


def slope(results: dict, specs: list[dict], method: str) -> dict | None:
    """Exponent of time against megapixels (log-log least squares, 1 to 24 MP), on the pairs every size has
    (the first n of each set: the same draws at every size)."""
    chosen = [s for s in specs if SLOPE_RANGE[0] <= s["megapixels"] <= SLOPE_RANGE[1]
              and method in results.get(s["name"], {})]
    if len(chosen) < 2:
        return None
    common = min(len(results[s["name"]][method]["pairs"]) for s in chosen)
    medians = [float(np.median([p["seconds"] for p in results[s["name"]][method]["pairs"][:common]]))
               for s in chosen]
    fitted = np.polyfit(np.log([s["megapixels"] for s in chosen]), np.log(medians), 1)[0]
    return {"slope": float(fitted), "pairs_per_size": common, "megapixels": [s["megapixels"] for s in chosen]}


def fmt_rate(cell: dict, show_ambiguous: bool) -> str:
    if not cell["n"]:
        return "-"
    text = f"{cell['right'] / cell['n']:.3f} ({cell['right']}/{cell['n']})"
    if show_ambiguous and cell["ambiguous"]:
        text += f", {cell['ambiguous']} amb."
    return text


def markdown(summary: dict) -> str:
    """The whole docs/benchmark.md from the summary `run.py` builds."""
    methods, specs = summary["methods"], summary["specs"]
    answering = [m for m in methods if m not in DECODERS]
    lines = ["# Benchmark: cropnet against template matching, SIFT and the decode floor", "",
             "Generated by `benchmarks/run.py`; raw numbers in `benchmark.json` beside this file.", "",
             "```bash", summary["command"], "```", "", "## Machine", ""]
    lines += [f"- {key}: {value}" for key, value in summary["machine"].items()]
    lines += ["", "## Pairs", "",
              "Synthesized by `cropnet.data` (the default mix: half true crops, an eighth each of crops of another "
              "photo, flipped crops, regions running past the border and resized crops; each image JPEG quality "
              "25-95 or lossless) from the photos scaled to each size with `scale_to_megapixels`, then written to "
              "files (JPEG at the synthesizer's quality, so encoded twice at it; PNG where lossless). Every method "
              "answers from the files: decoding is timed. Pair i is the same draw at every size.", "",
              "| set | megapixels | crop side (fraction of the original's) | pairs |", "|---|---|---|---|"]
    lines += [f"| {s['name']} | {s['megapixels']} | {s['crop_range'][0]}-{s['crop_range'][1]} | {s['count']} |"
              for s in specs]
    tuning = summary["template_threshold"]
    lines += [""]
    if tuning:
        lines += [f"Reference A's threshold: **{tuning['threshold']:.4f}** (best normalised-correlation score at or "
                  f"above it means paired), chosen to maximise paired accuracy ({tuning['accuracy']:.3f}) on "
                  f"{tuning['pairs']} pairs from `{tuning['images']}` with seed {tuning['seed']} "
                  f"(sets {', '.join(tuning['sets'])}), never on the pairs below.", ""]
    lines += ["## Time per pair", "",
              "Milliseconds from the two file paths to the answer, one process per method and set (`--quick`: per "
              "method, its peak memory reset for each set), after one untimed warm-up pair. Ratio: the method's "
              "median over the floor's median in the same run (the floor "
              "ran first and last for each set; both passes pooled). Peak RSS includes the interpreter, the "
              "libraries and the model; work = peak minus the resident memory after imports and model load.", ""]
    if summary.get("batch_mode"):
        lines += [f"Batch mode for {', '.join(summary['batch_mode'])}: one `Predictor.predict_many` call per set, "
                  "as `detect.py predict --pairs` answers (classic and hybrid read the next pairs while one is "
                  "answered; net reads each in turn, on the answering thread); a pair's "
                  "time is the interval between consecutive answers. The decoders and references answer one pair "
                  "after the other on one thread of their own (OpenCV may use more inside a call).", ""]
    for spec in specs:
        name = spec["name"]
        if name not in summary["timing"]:
            continue
        lines += [f"### {name} ({spec['megapixels']} MP originals; largest pair decoded: "
                  f"{summary['decoded_mb'][name]:.0f} MB)", "",
                  "| method | pairs | median ms | p95 ms | ratio to floor | pairs/s | peak RSS MB | work MB |",
                  "|---|---|---|---|---|---|---|---|"]
        for method in methods:
            t = summary["timing"][name].get(method)
            if t is None:
                continue
            ratio = "-" if t["ratio_to_floor"] is None else f"{t['ratio_to_floor']:.2f}"
            lines.append(f"| {LABELS[method]} | {t['pairs']} | {t['median_ms']:.1f} | {t['p95_ms']:.1f} | {ratio} "
                         f"| {t['pairs_per_second']:.2f} | {t['peak_rss_mb']:.0f} | {t['work_mb']:.0f} |")
        lines.append("")
    lines += ["Pairs per second over every set (different sizes and pair counts, so only comparable between "
              "methods that answered the same pairs): " + ", ".join(
                  f"{m} {v:.2f}" for m, v in summary["overall_pairs_per_second"].items()) + ".", ""]
    if summary.get("forward_ms"):
        default = ", ".join(f"{k} {v:.1f} ms ({summary['torch_threads'][k]} threads)"
                            for k, v in summary["forward_ms"].items())
        single = ", ".join(f"{k} {v:.1f} ms" for k, v in summary["forward_ms_1_thread"].items())
        lines += [f"Network forward pass alone (one pair, batch of 1, median over 5 runs after a warm-up in every "
                  f"process of the method, after its pairs): with the threads the method left torch {default}; "
                  f"with 1 thread {single}.", ""]
    lines += ["## Growth with size", "",
              "Exponent k in time ∝ megapixels^k, least squares on the log of the median time per pair over the "
              "sets from 1 to 24 MP, on the pairs every one of those sets has. k ≤ 1: no worse than linear.", "",
              "| method | k | sizes (MP) | pairs per size |", "|---|---|---|---|"]
    for method in methods:
        fit = summary["slopes"].get(method)
        if fit:
            lines.append(f"| {LABELS[method]} | {fit['slope']:.2f} | {', '.join(map(str, fit['megapixels']))} "
                         f"| {fit['pairs_per_size']} |")
    lines += ["", "## Accuracy", "",
              "Share of right paired / not-paired answers: right/pairs. Main sets pooled (every set except the "
              "tiny-crop ones); crops under 100 px come from every set. Ambiguous answers of cropnet's verifying "
              "methods count as paired (amb.: how many). A flat crop is one flat colour (grey-level spread under "
              "2, `cropnet.data.is_flat`): made from a patch of clear sky, a resized, flipped or past-the-border "
              "\"negative\" is still, within JPEG noise, pixel for pixel a crop. "
              f"Likewise a negative within rounding of a crop: its pixels, before either image was encoded, "
              f"lie within an RMS of {WITHIN_ROUNDING:g} grey level of the original's at some offset "
              f"(`benchmarks/pairs.py`, `crop_rms`; a resized crop of a smooth gradient, a region past the border "
              f"where the picture goes on in one colour): {len(summary.get('negatives_within_rounding', []))} "
              "pairs of this run, counted in the tables below and left out of the last comparison with the "
              "references (\"The issue's bars\"). "
              "Corners over the true crops found in every set (a wrong "
              "order counts as a wrong corner). SIFT answered only the first pairs of the large sets (its "
              "pair counts show how many).", "",
              "| category | " + " | ".join(LABELS[m] for m in answering) + " |",
              "|---|" + "---|" * len(answering)]
    categories = list(summary["accuracy"][answering[0]]["categories"]) if answering else []
    for category in categories:
        lines.append(f"| {category} | " + " | ".join(
            fmt_rate(summary["accuracy"][m]["categories"][category], m in CROPNET_METHODS) for m in answering) + " |")
    for key, label in (("exact", "corner exact"), ("within_1px", "corner within 1 px")):
        cells = []
        for m in answering:
            c = summary["accuracy"][m]["corners"]
            cells.append(f"{c[key] / c['found']:.3f} ({c[key]}/{c['found']})" if c["found"] else "-")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "## Start-up", "",
              "Whole commands as subprocesses, interpreter start included (median of "
              f"{summary['startup']['repeats']} runs each):", "",
              "| command | median s | runs, s |", "|---|---|---|"]
    for entry in summary["startup"]["commands"]:
        lines.append(f"| `{entry['command']}` | {entry['median_s']:.2f} | "
                     + ", ".join(f"{s:.2f}" for s in entry["seconds"]) + " |")
    lines += ["", "## The issue's bars", ""]
    lines += [f"- {line}" for line in summary["bars"]] or ["- not evaluated: no 12 MP set in this run"]
    lines += ["", "Plots: [time per pair](benchmark-time.png), [accuracy per category](benchmark-accuracy.png).", ""]
    return "\n".join(lines)


def plot_time(summary: dict, path) -> None:
    """Median time per pair against megapixels, log-log, one line per method; p95 as a thin line above."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    main = [s for s in summary["specs"] if not s["tiny"] and s["name"] in summary["timing"]]
    figure, axes = plt.subplots(figsize=(10, 5.5))
    for method in summary["methods"]:
        chosen = [s for s in main if method in summary["timing"][s["name"]]]
        if not chosen:
            continue
        x = [s["megapixels"] for s in chosen]
        median = [summary["timing"][s["name"]][method]["median_ms"] for s in chosen]
        p95 = [summary["timing"][s["name"]][method]["p95_ms"] for s in chosen]
        style = "--" if method in DECODERS else "-"
        (line,) = axes.plot(x, median, style, marker="o", label=LABELS[method])
        axes.plot(x, p95, ":", color=line.get_color(), linewidth=0.8)
    axes.set_xscale("log")
    axes.set_yscale("log")
    sizes = [s["megapixels"] for s in main]
    axes.set_xticks(sizes, [f"{mp:g}" for mp in sizes])
    axes.tick_params(axis="x", which="minor", labelbottom=False)  # only the measured sizes are labelled
    axes.set_xlabel("megapixels of the original")
    axes.set_ylabel("ms per pair (median; dotted: p95)")
    axes.set_title("Time per pair, from files to answer")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1))
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_accuracy(summary: dict, path) -> None:
    """Grouped bars: one group per category, one bar per answering method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    answering = [m for m in summary["methods"] if m not in DECODERS]
    categories = [c for c in summary["accuracy"][answering[0]]["categories"]
                  if any(summary["accuracy"][m]["categories"][c]["n"] for m in answering)]  # drop empty ones
    width = 0.8 / len(answering)
    figure, axes = plt.subplots(figsize=(12, 5))
    for offset, method in enumerate(answering):
        cells = [summary["accuracy"][method]["categories"][c] for c in categories]
        values = [c["right"] / c["n"] if c["n"] else 0 for c in cells]
        axes.bar(np.arange(len(categories)) + offset * width - 0.4 + width / 2, values, width, label=LABELS[method])
    axes.set_xticks(np.arange(len(categories)), categories, rotation=30, ha="right", fontsize=8)
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("share right (ambiguous counted as paired)")
    axes.set_title("Accuracy per category", pad=28)
    axes.legend(fontsize=8, ncol=len(answering), loc="lower center", bbox_to_anchor=(0.5, 1.0))
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
