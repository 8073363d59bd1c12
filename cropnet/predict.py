"""Answers for pairs of images, by one of three methods.

- "classic": exact localization (verify.py) alone; never imports torch.
- "net": the trained network alone (a rough corner, no verification).
- "hybrid": the network proposes the order and a corner, localization searches
  there first and verifies at full resolution; the answer is the verified one.
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .errors import PairsFileError
from .geometry import apply_size_rule, corner_in_pixels
from .images import DEFAULT_MAX_PIXELS, load_image
from .verify import VerifyConfig, match_pair

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
# Found from where the code lives, not the current directory: the repository's
# checkpoints/ (a clone or an editable install), else the copy setup.py installs under sys.prefix.
CHECKPOINT_CANDIDATES = (PACKAGE_ROOT / "checkpoints" / "cropnet.pt", Path(sys.prefix) / "checkpoints" / "cropnet.pt")


def default_checkpoint() -> Path:
    return next((p for p in CHECKPOINT_CANDIDATES if p.is_file()), CHECKPOINT_CANDIDATES[0])


METHODS = ("hybrid", "classic", "net")


@dataclass
class Prediction:
    a: str
    b: str
    paired: bool
    swapped: bool | None  # the first image is the crop; None when not paired
    top_left: tuple[int, int] | None  # in the original's pixels; None when not paired
    method: str = "net"  # which method answered
    scores: dict = field(default_factory=dict)  # network probabilities "paired", "swapped"; "verification"
    ambiguous: bool = False  # the crop fits at several offsets, or is too flat to pin one down
    candidates: int = 0  # distinct offsets that verified (verifying methods only)
    searched: str | None = None  # hybrid: "proposal" when the network's window sufficed, else "full"

    def to_json(self) -> dict:
        answer = {"a": self.a, "b": self.b, "paired": self.paired, "swapped": self.swapped,
                  "top_left": list(self.top_left) if self.top_left else None, "method": self.method,
                  "scores": {k: round(v, 4) for k, v in self.scores.items()}}
        if self.method != "net":
            answer.update(ambiguous=self.ambiguous, candidates=self.candidates)
        if self.searched:
            answer["searched"] = self.searched
        return answer

    def to_text(self) -> str:
        if not self.paired:
            return f"Neither {self.a} nor {self.b} is a cropped version of the other"
        crop, original = (self.a, self.b) if self.swapped else (self.b, self.a)
        x, y = self.top_left
        where = "at about" if self.method == "net" else "at"
        text = (f"{crop} is a cropped version of {original}\n"
                f"The top left corner of {crop} can be found in {original} {where} ({x}, {y})")
        if self.ambiguous:
            text += (f"\nAmbiguous: {self.candidates} distinct positions fit equally well" if self.candidates > 1
                     else "\nAmbiguous: the crop is too flat to pin its position down exactly")
        return text


class Proposal(NamedTuple):
    """What the network believes about a pair; hybrid verifies it whatever `paired` says."""

    paired: bool
    swapped: bool  # after the size rule
    top_left: tuple[int, int]  # in the original's pixels, for the order `swapped` gives
    paired_prob: float
    swapped_prob: float


PROPOSAL_RADIUS = 0.25  # share of the original's longer side searched around the network's corner first


def predict_classic(a: np.ndarray, b: np.ndarray, names=("a", "b"), proposal: Proposal | None = None,
                    verify_config: VerifyConfig = VerifyConfig()) -> Prediction:
    """Answer from the pixels alone: full search in every order the sizes allow, verified at full resolution.

    With a network `proposal` (hybrid), its order is tried first and the search
    starts around its corner; the decision still comes from verification.
    """
    prefer_swapped, hint, scores = None, None, {}
    if proposal is not None:
        prefer_swapped = proposal.swapped
        scores = {"paired": proposal.paired_prob, "swapped": proposal.swapped_prob}
        original = b if proposal.swapped else a
        # The network's corner is rough (median error about a sixth of the side): search a wide window.
        radius = max(64, round(PROPOSAL_RADIUS * max(original.shape[:2])))
        hint = (*proposal.top_left, radius)
    match = match_pair(a, b, verify_config, prefer_swapped=prefer_swapped, hint=hint)
    scores["verification"] = match.score
    return Prediction(names[0], names[1], match.paired, match.swapped, match.top_left,
                      "classic" if proposal is None else "hybrid", scores, match.ambiguous, match.candidates,
                      searched=None if proposal is None else match.searched)


class Predictor:
    """Answers pairs by one method; the network (for "net" and "hybrid") is loaded once, reused for every pair."""

    def __init__(self, method: str = "hybrid", checkpoint_path: str | Path | None = None, device=None,
                 threshold: float = 0.5):
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, not {method!r}")
        self.method, self.threshold, self.model = method, threshold, None
        if method != "classic":  # classic never imports torch: it starts and answers fast
            import torch

            from .checkpoint import load_checkpoint, model_from_checkpoint

            checkpoint_path = checkpoint_path or default_checkpoint()
            self.device = device or torch.device("cpu")
            checkpoint = load_checkpoint(checkpoint_path, map_location=self.device)
            self.model = model_from_checkpoint(checkpoint, checkpoint_path).to(self.device).eval()

    def predict_arrays(self, a: np.ndarray, b: np.ndarray, names=("a", "b")) -> Prediction:
        if self.method == "classic":
            return predict_classic(a, b, names)
        proposal = self.propose(a, b)
        if self.method == "hybrid":
            return predict_classic(a, b, names, proposal=proposal)
        scores = {"paired": proposal.paired_prob, "swapped": proposal.swapped_prob}
        if not proposal.paired:
            return Prediction(names[0], names[1], False, None, None, "net", scores)
        return Prediction(names[0], names[1], True, proposal.swapped, proposal.top_left, "net", scores)

    def propose(self, a: np.ndarray, b: np.ndarray) -> Proposal:
        """The network's view of a pair: probabilities, the size rule, a corner at its input's resolution."""
        import torch

        from .data import fit_pair

        config = self.model.config  # the input the network was trained on
        image = fit_pair(a, b, config.input_size, config.fit, masks=config.siamese)
        with torch.no_grad():
            output = self.model(torch.from_numpy(image)[None].to(self.device))
        paired_prob = float(output.paired_logits.softmax(1)[0, 1])
        swapped_prob = float(output.swapped_logits.softmax(1)[0, 1])
        size_a, size_b = np.array([a.shape[1], a.shape[0]]), np.array([b.shape[1], b.shape[0]])
        paired, swapped = apply_size_rule(np.array(paired_prob >= self.threshold), np.array(swapped_prob >= 0.5),
                                          size_a, size_b)
        original, crop = (size_b, size_a) if swapped else (size_a, size_b)
        top_left = corner_in_pixels(output.top_left[0].cpu().numpy(), original, crop)
        return Proposal(bool(paired), bool(swapped), top_left, paired_prob, swapped_prob)

    def predict_files(self, path_a: str, path_b: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Prediction:
        a = load_image(path_a, max_pixels)
        b = load_image(path_b, max_pixels)
        return self.predict_arrays(a, b, names=(str(path_a), str(path_b)))


def read_pairs(stream) -> list[dict]:
    """Rows of a CSV with header `a,b`; a blank line or a row missing a value is kept, marked with an "error",
    so that every line after the header gets exactly one answer line."""
    reader = csv.reader(stream)
    header = [name.strip() for name in next(reader, [])]
    if not {"a", "b"} <= set(header):
        raise PairsFileError(f"the pairs CSV needs a header line 'a,b', found {header or None}")
    rows = []
    for values in reader:
        row = dict(zip(header, values, strict=False))
        entry = {"a": (row.get("a") or "").strip(), "b": (row.get("b") or "").strip()}
        if not entry["a"] or not entry["b"]:
            entry["error"] = f"line {reader.line_num}: needs both an 'a' and a 'b' path"
        rows.append(entry)
    return rows
