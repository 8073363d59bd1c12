"""Answer for two image files with a trained network: paired, swapped, top-left corner."""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import PairsFileError
from .geometry import apply_size_rule, corner_in_pixels
from .images import DEFAULT_MAX_PIXELS, load_image

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
# Found from where the code lives, not the current directory: the repository's
# checkpoints/ (a clone or an editable install), else the copy setup.py installs under sys.prefix.
CHECKPOINT_CANDIDATES = (PACKAGE_ROOT / "checkpoints" / "cropnet.pt", Path(sys.prefix) / "checkpoints" / "cropnet.pt")


def default_checkpoint() -> Path:
    return next((p for p in CHECKPOINT_CANDIDATES if p.is_file()), CHECKPOINT_CANDIDATES[0])


@dataclass
class Prediction:
    a: str
    b: str
    paired: bool
    swapped: bool | None  # the first image is the crop; None when not paired
    top_left: tuple[int, int] | None  # in the original's pixels; None when not paired
    scores: dict = field(default_factory=dict)  # network probabilities, "paired" and "swapped"
    method: str = "net"

    def to_json(self) -> dict:
        return {"a": self.a, "b": self.b, "paired": self.paired, "swapped": self.swapped,
                "top_left": list(self.top_left) if self.top_left else None,
                "scores": {k: round(v, 4) for k, v in self.scores.items()}, "method": self.method}

    def to_text(self) -> str:
        if not self.paired:
            return f"Neither {self.a} nor {self.b} is a cropped version of the other"
        crop, original = (self.a, self.b) if self.swapped else (self.b, self.a)
        x, y = self.top_left
        return (f"{crop} is a cropped version of {original}\n"
                f"The top left corner of {crop} can be found in {original} at about ({x}, {y})")


class Predictor:
    """A loaded network, reused for every pair (load once, answer many)."""

    def __init__(self, checkpoint_path: str | Path, device=None, threshold: float = 0.5):
        import torch

        from .checkpoint import load_checkpoint, model_from_checkpoint

        self.device = device or torch.device("cpu")
        checkpoint = load_checkpoint(checkpoint_path, map_location=self.device)
        self.model = model_from_checkpoint(checkpoint, checkpoint_path).to(self.device).eval()
        self.threshold = threshold

    def predict_arrays(self, a: np.ndarray, b: np.ndarray, names=("a", "b")) -> Prediction:
        import torch

        from .data import fit_pair

        config = self.model.config  # the input the network was trained on
        image = fit_pair(a, b, config.input_size, config.fit)
        with torch.no_grad():
            output = self.model(torch.from_numpy(image)[None].to(self.device))
        paired_prob = float(output.paired_logits.softmax(1)[0, 1])
        swapped_prob = float(output.swapped_logits.softmax(1)[0, 1])
        size_a, size_b = np.array([a.shape[1], a.shape[0]]), np.array([b.shape[1], b.shape[0]])
        paired, swapped = apply_size_rule(np.array(paired_prob >= self.threshold), np.array(swapped_prob >= 0.5),
                                          size_a, size_b)
        scores = {"paired": paired_prob, "swapped": swapped_prob}
        if not paired:
            return Prediction(names[0], names[1], False, None, None, scores)
        original, crop = (size_b, size_a) if swapped else (size_a, size_b)
        top_left = corner_in_pixels(output.top_left[0].cpu().numpy(), original, crop)
        return Prediction(names[0], names[1], True, bool(swapped), top_left, scores)

    def predict_files(self, path_a: str, path_b: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Prediction:
        a = load_image(path_a, max_pixels)
        b = load_image(path_b, max_pixels)
        return self.predict_arrays(a, b, names=(str(path_a), str(path_b)))


def read_pairs(stream) -> list[dict]:
    """Rows of a CSV with header `a,b`; a row missing a value is kept, marked with an "error"."""
    reader = csv.DictReader(stream)
    if reader.fieldnames is None or not {"a", "b"} <= {name.strip() for name in reader.fieldnames}:
        raise PairsFileError(f"the pairs CSV needs a header line 'a,b', found {reader.fieldnames}")
    reader.fieldnames = [name.strip() for name in reader.fieldnames]
    rows = []
    for row in reader:
        entry = {"a": (row.get("a") or "").strip(), "b": (row.get("b") or "").strip()}
        if not entry["a"] or not entry["b"]:
            entry["error"] = f"line {reader.line_num}: needs both an 'a' and a 'b' path"
        rows.append(entry)
    return rows
