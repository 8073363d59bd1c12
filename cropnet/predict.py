"""Answers for pairs of images, by one of three methods.

- "classic": exact localization (verify.py) alone; never imports torch.
- "net": the trained network alone (a rough corner, no verification).
- "hybrid": the network proposes the order and a corner, localization searches
  there first and verifies at full resolution; the answer is the verified one.
"""

from __future__ import annotations

import csv
import sys
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from .colour import FACTOR as COLOUR_FACTOR
from .colour import ColourView, colour_gap, colour_places, colour_view
from .errors import PairsFileError
from .geometry import apply_size_rule, corner_in_pixels
from .images import (
    DEFAULT_MAX_PIXELS,
    ImageHeader,
    ReducedColour,
    image_header,
    load_grey_and_views,
    load_image,
    load_reduced_colour,
)
from .quantization import EncodingTest, encodings_comparable, step_energy
from .resampling import ResampledFit, resampled_fit
from .verify import (
    Match,
    PairMatch,
    PreparedCrop,
    VerifyConfig,
    locate_near,
    match_pair,
    prepare,
    same_depth,
    search,
    to_grey,
    verify_at,
    verify_candidates,
)

if TYPE_CHECKING:  # torch is imported only where the network runs: classic never pays for it
    import torch

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
    # More corners worth a closer look (the refining stage): the correlation map's highest peaks, in px.
    candidates: tuple = ()


class SeenLook(NamedTuple):
    """Every corner one closer look judged, as `train --stage crop-mined` learns from them (`Predictor.seen`)."""

    logits: torch.Tensor  # (n, 2) the refining stage's paired logits, without the whole-crop head's say
    fit: torch.Tensor  # (n, CROP_STATS) the whole crop's fit at each corner (model.crop_fit)
    corners: np.ndarray  # (n, 2) each corner, (x, y) in the original's px
    swapped: bool  # the order the look took: the first image is the crop
    fit_scale: float  # view px of the whole crop's fit per original px


class Look(NamedTuple):
    """A closer look's answer, with what the look compared at the answer's corner (None without a
    whole-crop fit): the whole crop's view, the original's region there and their `crop_fit`. The
    mirror check compares the crop's mirror image on the same region (and over the whole original)."""

    answer: Proposal
    crop_view: torch.Tensor | None = None
    region: torch.Tensor | None = None
    fit: torch.Tensor | None = None


# Peaks of the first stage's correlation map refined besides its soft-argmax corner. On flat art the first
# stage's best peaks often miss a true crop by more than the closer look reaches; 7 instead of 3 raised recall
# there from 0.937 to 0.963 and changed nothing on the validation photos (docs/network.md).
REFINE_PEAKS = 7
# Candidates in one forward pass of the refining stage's trunk (each is independent of the others: batch norm
# in eval mode). The activations held at the peak grow with it: `--method net`'s work memory on the benchmark's
# 12-megapixel pairs was 280 MB with all 8 at once, 193 MB with 4 and 138 MB with 2, against the bar
# of 169 MB (3 times the decoded images); median 549, 624 and 572 ms a pair in those runs, within the noise
# (at 61368cf, before the scan of the whole original).
REFINE_BATCH = 2
# Corners the whole crop's fit compares at once. All 8 at once, its blurred, copied and transformed regions
# (8 x 3 x 208 x 208 floats, 4 MB a buffer, several live) were the buffers that most often grew the heap during
# `net`'s answers; two at a time, `net`'s work memory on training-photo 12-megapixel sets was 109-119 MB against
# 134-138 (three runs) and 117-145 against 127-151 (six runs; 9 of its 24 pairs with a PNG), the time
# within the noise (the one crop is blurred and transformed again for each two).
FIT_BATCH = 2
# When every corner the first stage proposed fails the closer look, the refining stage's own features are
# correlated over the whole original (`Refiner.scan`) and this many of its best places are looked at.
SCAN_PEAKS = 4
# What the scan's best place must reach to answer "a crop": it offers places over the whole original, each one
# more chance for a negative to look like a crop somewhere. On the flat art (400 pairs, seed 5) with 8 places,
# 0.5 found 5 more true crops and let 4 more negatives through; 0.9 found 3 and let 1 more through; nothing
# changed on the validation photos either way (docs/network.md). Its best places were the first of the 8
# for every true crop it found, so 4 are looked at: fewer chances for a negative, the same true crops.
SCAN_THRESHOLD = 0.9
# How far (view px of the whole crop's fit, `whole_crop_place`) the whole crop is searched around a corner
# both looks turned down, when the checkpoint's crop head adds (ModelConfig.refine_crop_adds). On the flat art
# and the validation photos it found no true crop the looks had missed (docs/network.md).
WHOLE_CROP_RADIUS = 32
# A flipped crop fits its mirror image to the noise where it was flipped from (`mirror_check`). Past this
# margin (the log of how many times better the mirror image fits), the "crop" logit loses MIRROR_WEIGHT per
# unit. At the 893 true crops answered "crop" in 900 labelled pairs of the validation photos, the flat art and the
# training photos, the mirror image never fitted better (largest excess -0.14); flips of nearly symmetric
# pictures that pixels can tell apart came at 0.94-1.51, which the earlier margin of 1.0 mostly let through
# (docs/network.md).
MIRROR_MARGIN = 0.5
MIRROR_WEIGHT = 10.0
# When the scan fails too, the refining stage looks once more from where the whole crop fits best over the
# whole original (`whole_crop_place`), and answers "a crop" from there when this sure (0: not looked). On flat
# content the corner patches settle anywhere, while the whole crop's place is within a few px of a true crop
# (14 of the 16 the flat art's 500 true crops missed). In labelled pairs the look from there reached
# 0.56-0.84 for 4 of those 16 and 0.94 for 1 of the 11 missed in 500 of the training photos, and at most 0.58
# for 1068 negatives of the validation photos, the flat art and the training photos (docs/network.md): a
# threshold between the two with hardly any margin, which held-out photos tested once (recall +5, border -2).
WHOLE_PLACE_THRESHOLD = 0.6
# The crop's longer side (px) at which the whole crop, or its mirror image, is first sought over the whole
# original (`whole_crop_place`).
WHOLE_PLACE_SIDE = 64
# Pairs a batch (`predict_many`) reads ahead of the one it answers, on a thread of its own. classic and hybrid:
# two, so that while one slow pair is answered (a resized crop's candidates are all polished) the reader goes on
# to the next; with one it was left idle for such pairs, and the answering thread waited after them. net: none.
# Its views of a 12-megapixel JPEG pair take about 23 ms to read against over 300 ms to answer, and its forward
# passes run on both cores: read ahead, it answered no faster, and its work memory grew, each thread's buffers
# landing between the other's in the one heap (docs/speed.md, "net read one pair at a time").
READ_AHEAD = {"classic": 2, "hybrid": 2, "net": 0}
PROPOSAL_RADIUS = 0.25  # share of the original's longer side searched around the network's corner first


# Places the colour search (`colour.colour_places`) hands to verification when an ambiguous answer's colour
# disagrees: a flat crop fits many places alike, and the first that fits in colour too is as good as any.
COLOUR_PLACES = 8
# px around each such place searched in luma (`verify.locate_near`). The place is about exact, but the window
# search drops minima on its own edge (there the residual still falls outward), and a smooth crop's luma
# minimum can lie a few px off: 4 px lost a flat-art crop that 16 (4 coarse px at most) found.
COLOUR_WINDOW = 16
# Reads both images in colour, (a, b): each reduced by `colour.FACTOR` (`images.ReducedColour`) or an RGB
# array at full size (`colour.colour_view` reduces it), None for an image without colour.
ColourReader = Callable[[], tuple[ReducedColour | np.ndarray | None, ReducedColour | np.ndarray | None]]
# Both images as the colour check compares them, (a, b) (`colour.ColourView`; None: no colour to compare).
ColourViews = Callable[[], tuple[ColourView | None, ColourView | None]]


def predict_classic(a: np.ndarray, b: np.ndarray, names=("a", "b"), proposal: Proposal | None = None,
                    verify_config: VerifyConfig = VerifyConfig(), prepared: PreparedCrop | None = None,
                    headers: tuple[ImageHeader, ImageHeader] | None = None,
                    colour: ColourReader | None = None) -> Prediction:
    """Answer from the pixels alone: full search in every order the sizes allow, verified at full resolution.

    With a network `proposal` (hybrid), its order is tried first and the search
    starts around its corner; the decision still comes from verification.
    `prepared` is a `PreparedCrop` of `a` or `b` built beforehand (see `load_and_prepare`).
    `headers`: what the files' headers say of how they keep their pixels (`images.ImageHeader`). Two
    lossless files are held to rounding (`VerifyConfig.lossless`); where one is a JPEG, an ambiguous
    answer must also leave the two files room for one picture (`answer_encoding_gap`).
    `colour`: reads the pair in colour for an ambiguous answer (`answer_in_colour`); by default `a` and
    `b` themselves, which have colour when they are RGB.
    """
    given = a, b  # RGB arrays have colour for the colour check
    read = colour or (lambda: given)
    # Read and converted once at most: an answer can be checked more than once (hybrid's window answer, then
    # the full search's; an answer moved to another repeat of a pattern).
    views = cache(lambda: tuple(colour_view(image, array.shape[1::-1])
                                for image, array in zip(read(), given, strict=True)))
    # Luma once for every search and check below (RGB arrays, as evaluate's, were converted by each; the
    # luma `Predictor.load` gives is kept as it is, the very array its `prepared` crop was made of).
    a, b = to_grey(a), to_grey(b)
    if headers and all(header.lossless for header in headers):
        verify_config = replace(verify_config, lossless=True)
    prefer_swapped, hint, scores = None, None, {}
    if proposal is not None:
        prefer_swapped = proposal.swapped
        scores = {"paired": proposal.paired_prob, "swapped": proposal.swapped_prob}
        if proposal.paired:  # a corner of a pair the network does not believe in is not worth a first search
            original = b if proposal.swapped else a
            # The network's corner is rough (median error about a sixth of the side): search a wide window.
            radius = max(64, round(PROPOSAL_RADIUS * max(original.shape[:2])))
            hint = (*proposal.top_left, radius)

    def search_and_check(hint: tuple[int, int, int] | None) -> CheckedMatch:
        """The search's answer, checked in colour, against the files' encodings and for resampling."""
        match = match_pair(a, b, verify_config, prefer_swapped=prefer_swapped, hint=hint, prepared=prepared)
        match, colour_difference = answer_in_colour(match, a, b, views, verify_config, prepared)
        placed = match.top_left
        match, encoding_gap = answer_encoding_gap(match, a, b, headers, verify_config, prepared, views)
        if match.paired and match.top_left != placed:  # moved to where the files agree and the colour fits
            colour_difference = colour_gap_at(match.swapped, match.top_left, views)
        resampled = None
        if match.paired and (encoding_gap is None or encoding_gap <= verify_config.max_encoding_gap):
            resampled = resampled_fit(*original_first(match.swapped, a, b), match.top_left)
        return CheckedMatch(match, colour_difference, encoding_gap, resampled)

    checked = search_and_check(hint)
    if checked.turned_down(verify_config) and checked.match.searched == "proposal":
        # The window's answer can be another place the crop fits about as well: a smooth one where its
        # files disagree, or a resized copy of the crop's region. As when nothing in the window verifies,
        # the whole original is searched. (An answer with texture the files disagree with was sought over
        # the whole original by `answer_encoding_gap` already.)
        checked = search_and_check(None)
    match = checked.match
    scores["verification"] = match.score
    if checked.colour_gap is not None:
        scores["colour_gap"] = checked.colour_gap
    if checked.encoding_gap is not None:
        scores["encoding_gap"] = checked.encoding_gap
    if checked.resampled is not None:
        scores["resampled_share"] = checked.resampled.share
    method, searched = ("classic", None) if proposal is None else ("hybrid", match.searched)
    if checked.turned_down(verify_config):
        return Prediction(names[0], names[1], False, None, None, method, scores, searched=searched)
    return Prediction(names[0], names[1], match.paired, match.swapped, match.top_left, method, scores,
                      match.ambiguous, match.candidates, searched=searched)


class CheckedMatch(NamedTuple):
    """An answer of `predict_classic`'s search and what its checks measured (None: a check that did not apply)."""

    match: PairMatch
    colour_gap: float | None  # `colour.colour_gap` at the answer (`answer_in_colour`)
    encoding_gap: float | None  # the files' gap (`answer_encoding_gap`)
    resampled: ResampledFit | None  # the crop against the original resampled (`resampling.resampled_fit`)

    def turned_down(self, config: VerifyConfig) -> bool:
        """A paired answer the files' encodings or resampling say is no crop."""
        return ((self.encoding_gap is not None and self.encoding_gap > config.max_encoding_gap)
                or (self.resampled is not None and self.resampled.looks_resampled(config)))


def answer_in_colour(match: PairMatch, a: np.ndarray, b: np.ndarray, views: ColourViews,
                     config: VerifyConfig, prepared: PreparedCrop | None = None) -> tuple[PairMatch, float | None]:
    """An ambiguous answer checked in colour (see `colour`; `views` gives the pair as it compares them),
    and the colour gap at it (None where the check does not apply: a sure answer, no answer, an image
    without colour).

    Within `VerifyConfig.max_colour_gap` the answer stands. Else the crop's luma fits there but its
    colour does not: it is sought where both fit (`colour_places`), each place verified in luma at full
    resolution as it is (`verify_at`), then polished, then within `COLOUR_WINDOW` px, and the first that
    also passes the colour check is the answer, still ambiguous; where none does, the pair is not paired.
    """
    if not (match.paired and match.ambiguous):
        return match, None
    original_view, crop_view = original_first(match.swapped, *views())
    if original_view is None or crop_view is None:
        return match, None
    gap = colour_gap(original_view, crop_view, match.top_left)
    if gap <= config.max_colour_gap:
        return match, gap
    original, crop = same_depth(*(to_grey(image) for image in original_first(match.swapped, a, b)))
    prepared = prepare(crop, config, prepared)
    for x, y in colour_places(original_view, crop_view, COLOUR_PLACES):
        # The place itself first, as it is and then polished as verification does: where the luma is flat,
        # polishing and the window's search settle anywhere, and the crop can hang over a colour edge there.
        for found in (verify_at(original, prepared.tests, x, y, config),
                      verify_candidates(original, prepared.tests, [(x, y, 0.0)], config),
                      locate_near(original, prepared, (x, y, COLOUR_WINDOW), config)):
            there = colour_gap(original_view, crop_view, found.top_left) if found.found else np.inf
            if there <= config.max_colour_gap:
                # Moved by a search of the whole original (in colour): `searched` is "full".
                return PairMatch(True, match.swapped, found.top_left, found.score, True, found.candidates), there
    return PairMatch(False, None, None, match.score), gap


def colour_gap_at(swapped: bool | None, top_left: tuple[int, int], views: ColourViews) -> float | None:
    """The colour gap (`colour.colour_gap`) with the crop at `top_left`, None where an image has no colour."""
    original_view, crop_view = original_first(swapped, *views())
    return None if original_view is None or crop_view is None else colour_gap(original_view, crop_view, top_left)


def answer_encoding_gap(match: PairMatch, a: np.ndarray, b: np.ndarray,
                        headers: tuple[ImageHeader, ImageHeader] | None, config: VerifyConfig,
                        prepared: PreparedCrop | None = None,
                        views: ColourViews | None = None) -> tuple[PairMatch, float | None]:
    """An ambiguous answer checked against the files' encodings (`quantization.EncodingTest`): the answer,
    perhaps moved, and the files' gap at it, None where the test does not apply (a sure answer, no answer,
    files it cannot read). The caller turns a gap over `VerifyConfig.max_encoding_gap` down.

    A smooth crop fits within JPEG noise at many places, and so can a smooth negative (a resized crop
    of a sky); whether one picture can have made both files is evidence the pixels' fit is not. A true
    smooth crop answered a pixel or two off along its ramp leaves little gap there, and none where
    its pixels fit best nearby (`EncodingTest.best_fit_near`).

    A crop with texture (`quantization.step_energy` over `VerifyConfig.smooth_crop_energy`) is ambiguous
    because its pattern repeats or runs along one direction, and the answer can be a repeat other than
    the crop's own, where a true crop's files disagree too. So where the gap there is over the bar, the
    other places where the crop verifies over the whole original are tried (`verified_places`), and the
    first where the files agree, and where the colour fits (`answer_in_colour`'s bar; `views` as there),
    is the answer (`searched` "full"); where none does, the gap at the answer
    stands.
    """
    if not (match.paired and match.ambiguous and headers and encodings_comparable(headers)):
        return match, None
    original, crop = same_depth(*(to_grey(image) for image in original_first(match.swapped, a, b)))
    original_header, crop_header = original_first(match.swapped, *headers)

    def gap_at(top_left: tuple[int, int]) -> float:
        test = EncodingTest(original, crop, top_left, original_header, crop_header)
        gap = test.gap(*top_left)
        if gap > config.max_encoding_gap:
            best_fit = test.best_fit_near(*top_left)
            if best_fit != top_left:  # tested in the windows where the two differ most there
                gap = min(gap, EncodingTest(original, crop, best_fit, original_header, crop_header).gap(*best_fit))
        return gap

    gap = gap_at(match.top_left)
    if gap <= config.max_encoding_gap or step_energy(crop) <= config.smooth_crop_energy:
        return match, gap

    def colour_fits(top_left: tuple[int, int]) -> bool:
        colour_difference = colour_gap_at(match.swapped, top_left, views) if views else None
        return colour_difference is None or colour_difference <= config.max_colour_gap

    x, y = match.top_left
    for found in verified_places(original, crop, config, prepared):
        if max(abs(found.top_left[0] - x), abs(found.top_left[1] - y)) > 1:
            there = gap_at(found.top_left)
            if there <= config.max_encoding_gap and colour_fits(found.top_left):
                return PairMatch(True, match.swapped, found.top_left, found.score, True, found.candidates), there
    return replace(match, searched="full"), gap  # the whole original was searched for a place the files allow


def verified_places(original: np.ndarray, crop: np.ndarray, config: VerifyConfig,
                    prepared: PreparedCrop | None = None) -> Iterator[Match]:
    """Where the crop verifies over the whole original, one place at a time, as it is found: each of the
    full search's candidates polished and verified on its own (`verify_candidates` stops counting at an
    answer too flat to pin down), then, as `verify.locate` does when nothing verifies, those of the search
    at every phase (see `verify.search`): on a fine pattern along one axis (wood grain) the crop's own
    place can lose the coarse search to repeats that fall on its grid."""
    prepared = prepare(crop, config, prepared)
    candidates, coarse_best = search(original, prepared, config)
    places = set()

    def verified(candidates: list[tuple[int, int, float]]) -> Iterator[Match]:
        for candidate in candidates:
            found = verify_candidates(original, prepared.tests, [candidate], config)
            if found.found and found.top_left not in places:
                places.add(found.top_left)
                yield found

    yield from verified(candidates)
    if prepared.phase_spread() > coarse_best:
        yield from verified(search(original, prepared, config, phased=True)[0])


def original_first(swapped: bool | None, a, b) -> tuple:
    """(original, crop), of images or of anything else that comes in the pair's order, for an answer that
    says `swapped` (the first image is the crop)."""
    return (b, a) if swapped else (a, b)


class Predictor:
    """Answers pairs by one method; the network (for "net" and "hybrid") is loaded once, reused for every pair."""

    def __init__(self, method: str = "hybrid", checkpoint_path: str | Path | None = None, device=None,
                 threshold: float = 0.5):
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, not {method!r}")
        self.method, self.threshold, self.model = method, threshold, None
        self.seen: list[SeenLook] | None = None  # a list: every closer look is kept there (train --stage crop-mined)
        # Full-size grey images only where verification runs: net's own buffers gained nothing from it.
        configure_malloc(keep_freed=method != "net")
        # Threads, so that decoding, the network and verification's preparation use both cores of a small
        # machine: the original's full-size decode, and the network's view of the pair (see `load`). net
        # decodes only small views, on the thread that answers (see `predict_many`).
        self.decoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode") if method != "net" else None
        self.viewer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="network") if method == "hybrid" else None
        if method != "classic":  # classic never imports torch: it starts and answers fast
            import torch

            from .checkpoint import load_checkpoint, model_from_checkpoint
            from .model import for_inference

            checkpoint_path = checkpoint_path or default_checkpoint()
            self.device = device or torch.device("cpu")
            checkpoint = load_checkpoint(checkpoint_path, map_location=self.device)
            self.model = for_inference(model_from_checkpoint(checkpoint, checkpoint_path).to(self.device))
            if method == "hybrid" and self.device.type == "cpu":
                # hybrid keeps up to two threads of its own decoding and verifying beside the network;
                # torch's worker threads on those cores would only wait (on 2 cores with the other one busy,
                # a forward pass with torch's default 2 threads took 3 to 5 times as long as with 1).
                torch.set_num_threads(max(1, torch.get_num_threads() - 2))

    def predict_arrays(self, a: np.ndarray, b: np.ndarray, names=("a", "b"),
                       headers: tuple[ImageHeader, ImageHeader] | None = None) -> Prediction:
        """The answer for two decoded images; `headers`: how their files keep them (see `predict_classic`)."""
        if self.method == "classic":
            return predict_classic(a, b, names, headers=headers)
        proposal = self.propose(a, b)
        if self.method == "hybrid":
            return predict_classic(a, b, names, proposal=proposal, headers=headers)
        return net_answer(self.refine(proposal, a, b), names)

    def propose(self, a: np.ndarray, b: np.ndarray, sizes: tuple | None = None) -> Proposal:
        """The network's view of a pair: probabilities, the size rule, a corner at its input's resolution.

        `a` and `b` may be reduced copies (see `propose_files`); `sizes` then gives their true (width, height).
        """
        import torch

        from .data import fit_pair
        from .model import peak_corners

        config = self.model.config  # the input the network was trained on
        image = torch.from_numpy(fit_pair(a, b, config.input_size, config.fit, masks=config.siamese))[None]
        peaks_wanted = config.refine_zoom and self.method == "net"  # only `refine` looks at them
        with torch.no_grad():
            if peaks_wanted:  # the forward pass in its two steps, to keep the correlation maps
                a_in_b, b_in_a, canvas_sizes = self.model.match_both(image.to(self.device))
                output = self.model.answer(a_in_b, b_in_a, canvas_sizes)
            else:
                output = self.model(image.to(self.device))
        paired_prob = float(output.paired_logits.softmax(1)[0, 1])
        swapped_prob = float(output.swapped_logits.softmax(1)[0, 1])
        size_a, size_b = (np.array(size) for size in (sizes or (a.shape[1::-1], b.shape[1::-1])))
        paired, swapped = apply_size_rule(np.array(paired_prob >= self.threshold), np.array(swapped_prob >= 0.5),
                                          size_a, size_b)
        original, crop = (size_b, size_a) if swapped else (size_a, size_b)
        top_left = corner_in_pixels(output.top_left[0].cpu().numpy(), original, crop)
        candidates = ()
        if peaks_wanted:
            matches, original_index = (a_in_b, 1) if swapped else (b_in_a, 0)
            peaks = peak_corners(matches, canvas_sizes[:, original_index], REFINE_PEAKS)[0].cpu().numpy()
            candidates = tuple(corner_in_pixels(peak, original, crop) for peak in peaks)
        return Proposal(bool(paired), bool(swapped), top_left, paired_prob, swapped_prob, candidates)

    def refine(self, proposal: Proposal, a: np.ndarray, b: np.ndarray, sizes: tuple | None = None) -> Proposal:
        """The refining stage's closer look around the first stage's corners, when the network has one:
        its decision and corner replace the first stage's (the order stays the first stage's).

        Then a second look from the corner the first one settled on, kept when it is surer: a candidate
        far from a true crop can leave the first look tens of px short of it, and looking again with the
        crop near the middle of the view finds it. On the validation photos this raised recall from 0.990
        to 1.000, on the flat art from 0.963 to 0.969, every negative kind unchanged (docs/network.md).
        When both looks say "not a crop", a scan of the whole original (`scan`) offers other corners, and
        a look at them may answer "a crop" when sure (SCAN_THRESHOLD). When that fails too, a last look
        from where the whole crop fits best over the whole original (`whole_crop_place`) may answer "a
        crop" when sure (WHOLE_PLACE_THRESHOLD). A "crop" answer is then checked against its mirror image
        (`mirror_check`).

        `a` and `b` may be reduced copies (see `Predictor.load`); `sizes` then gives their true (width, height).
        """
        first = self.closer_look(proposal, a, b, sizes)
        if first.answer is proposal:  # no refining stage, or the size rule has decided
            return proposal
        again = self.closer_look(proposal._replace(top_left=first.answer.top_left, candidates=()), a, b, sizes)
        look = again if again.answer.paired_prob > first.answer.paired_prob else first
        if not look.answer.paired and self.searches_whole_crop:
            corner, _ = self.whole_crop_place(look.answer, a, b, sizes, near=look.answer.top_left)
            if corner != look.answer.top_left:
                third = self.closer_look(proposal._replace(top_left=corner, candidates=()), a, b, sizes)
                if third.answer.paired_prob > look.answer.paired_prob:
                    look = third
        if not look.answer.paired and SCAN_PEAKS:
            corners = self.scan(proposal, a, b, sizes)
            wide = self.closer_look(proposal._replace(top_left=corners[0], candidates=tuple(corners[1:])),
                                    a, b, sizes)
            if wide.answer.paired_prob >= SCAN_THRESHOLD:
                look = wide
        if not look.answer.paired and WHOLE_PLACE_THRESHOLD and self.fits_whole_crop:
            corner, residual = self.whole_crop_place(proposal, a, b, sizes)
            if np.isfinite(residual):  # there is a place wholly on the original to look from
                placed = self.closer_look(proposal._replace(top_left=corner, candidates=()), a, b, sizes)
                if placed.answer.paired_prob >= WHOLE_PLACE_THRESHOLD:
                    look = placed
        return self.mirror_check(look, a, b, sizes)

    def mirror_check(self, look: Look, a: np.ndarray, b: np.ndarray, sizes: tuple | None) -> Proposal:
        """A crop whose mirror image fits clearly better than it does is a flipped crop, not a crop: its
        "crop" logit is lowered by MIRROR_WEIGHT for each unit of log-residual past MIRROR_MARGIN.

        The mirror image is compared where the look put the crop (`model.mirror_excess`, on the views the
        look took), and where it fits best over the whole original (`whole_crop_place`): a flip of a picture
        that is nearly symmetric is found at the mirrored place, which it fits nearly as well as a true
        crop, while its mirror image fits to the noise where it was flipped from."""
        answer = look.answer
        if not answer.paired or look.region is None:
            return answer
        import torch

        from .model import mirror_excess

        with torch.no_grad():
            excess = float(mirror_excess(look.region[None], look.crop_view[None], look.fit[None])[0])
        mirrored = self.whole_crop_place(answer, a, b, sizes, mirrored=True)[1]
        excess = max(excess, float(look.fit[0]) - mirrored)
        if excess <= MIRROR_MARGIN:
            return answer
        logit = np.log(answer.paired_prob / max(1 - answer.paired_prob, 1e-9))
        logit -= MIRROR_WEIGHT * (excess - MIRROR_MARGIN)
        paired_prob = float(1 / (1 + np.exp(-logit)))
        return answer._replace(paired=paired_prob >= self.threshold, paired_prob=paired_prob)

    def whole_crop_place(self, proposal: Proposal, a: np.ndarray, b: np.ndarray, sizes: tuple | None,
                         near: tuple[int, int] | None = None, mirrored: bool = False) -> tuple[tuple[int, int], float]:
        """Where the whole crop (or its mirror image) fits the original best: the corner in image px and the
        log of its residual there (`model.inside_fit`, the residual `crop_fit` takes; infinite where no place
        qualifies). Searched within WHOLE_CROP_RADIUS view px, at the whole crop's fit's scale, of `near`
        (image px), over every place that meets the image; or, without `near`, over the whole original,
        first with the crop's longer side at WHOLE_PLACE_SIDE px (`data.coarse_place`), then around the
        best place there, among places wholly on the image."""
        import torch

        from .data import coarse_place, crop_fit_corner, crop_fit_views
        from .model import inside_fit

        original, original_size, crop, crop_size, resolution = oriented(proposal, a, b, sizes)
        if mirrored:
            crop = crop[:, ::-1]
        fit_scale = self.crop_fit_scale(original_size, crop_size, resolution)
        if near is None:  # never finer than the search that follows: a small crop of a large array is costly
            corner = np.asarray(coarse_place(original, crop, WHOLE_PLACE_SIDE, finest=fit_scale))  # array px
        else:
            corner = np.asarray(near) * resolution
        crop_view, region = crop_fit_views(original, crop, [corner], fit_scale, self.model.config.refine_crop_side,
                                           radius=WHOLE_CROP_RADIUS)
        with torch.no_grad():
            places, residuals = inside_fit(torch.from_numpy(region).to(self.device),
                                           torch.from_numpy(crop_view)[None].to(self.device),
                                           min_cover=0.99 if near is None else 0.0)
        found = crop_fit_corner(corner, places[0].cpu().numpy(), fit_scale, WHOLE_CROP_RADIUS) / resolution
        found = np.clip(np.round(found), 0, original_size - crop_size).astype(int)
        return (int(found[0]), int(found[1])), float(residuals[0])

    @property
    def fits_whole_crop(self) -> bool:
        """Whether the checkpoint compares the whole crop (`--refine-crop-side`): models before it have no
        scale for that comparison, and answer without the last look."""
        return self.model is not None and bool(self.model.config.refine_crop_side)

    @property
    def searches_whole_crop(self) -> bool:
        """Whether `refine` searches the whole crop around a turned-down corner: only a whole-crop head that
        adds can answer "a crop" where the corner patches were unsure; mining for train --stage crop-mined
        (`seen`) looks wherever answering with the head it trains will."""
        return self.seen is not None or bool(self.model is not None and self.model.config.refine_crop_adds)

    def crop_fit_scale(self, original_size, crop_size, resolution: float) -> float:
        """The whole crop's fit's scale (`data.crop_fit_scale`) for arrays at `resolution` array px per image px."""
        from .data import crop_fit_scale

        config = self.model.config
        return crop_fit_scale(original_size, crop_size, config.input_size, config.refine_zoom,
                              config.refine_crop_side) / resolution

    def scan(self, proposal: Proposal, a: np.ndarray, b: np.ndarray, sizes: tuple | None) -> list[tuple[int, int]]:
        """Corners worth a closer look from the refining stage's features over the whole original
        (`Refiner.scan`), in image px, best first."""
        import torch

        from .data import refine_scale, scan_views
        from .model import STRIDE

        config = self.model.config
        original, original_size, crop, crop_size, resolution = oriented(proposal, a, b, sizes)
        scale = refine_scale((original_size, crop_size), config.input_size, config.refine_zoom) / resolution
        wholes, patches = scan_views(original, crop, scale, config.refine_patch, STRIDE)
        reach = ((original_size - crop_size) * resolution * scale).tolist()
        with torch.no_grad():
            places = self.model.refiner.scan(torch.from_numpy(wholes).to(self.device),
                                             torch.from_numpy(patches).to(self.device), reach, SCAN_PEAKS)
        corners = np.clip(np.round(places.cpu().numpy() / scale / resolution), 0, original_size - crop_size)
        return [(int(x), int(y)) for x, y in corners.astype(int)]

    def closer_look(self, proposal: Proposal, a: np.ndarray, b: np.ndarray, sizes: tuple | None) -> Look:
        """One look of the refining stage at the proposal's corner and candidates: the surest of them."""
        config = self.model.config
        if not config.refine_zoom:
            return Look(proposal)
        import torch

        from .data import crop_fit_views, refine_scale, refine_views, refined_corner
        from .model import crop_fit

        original, original_size, crop, crop_size, resolution = oriented(proposal, a, b, sizes)
        if np.any(crop_size > original_size):  # the size rule has already said "not a crop"
            return Look(proposal)
        scale = refine_scale((original_size, crop_size), config.input_size, config.refine_zoom) / resolution
        corners = list(dict.fromkeys([proposal.top_left, *proposal.candidates]))  # distinct, soft-argmax first
        views = [refine_views(original, crop, np.asarray(corner) * resolution, scale, config.refine_patch,
                              config.refine_window) for corner in corners]
        windows, patches, origins = (np.stack(part) for part in zip(*views, strict=True))
        windows, patches = torch.from_numpy(windows), torch.from_numpy(patches)
        with torch.no_grad():
            outputs = [self.model.refiner(windows[start:start + REFINE_BATCH].to(self.device),
                                          patches[start:start + REFINE_BATCH].to(self.device))
                       for start in range(0, len(corners), REFINE_BATCH)]
        found = [refined_corner(offsets, origin, scale, original.shape[1::-1], crop.shape[1::-1])
                 for offsets, origin in zip(torch.cat([o.offsets for o in outputs]).cpu().numpy(), origins,
                                            strict=True)]  # array px
        logits = torch.cat([output.paired_logits for output in outputs])
        fit = None  # without a whole-crop fit
        if self.fits_whole_crop:  # the whole crop compared where each look put the corner
            fit_scale = self.crop_fit_scale(original_size, crop_size, resolution)
            crop_view, regions = (torch.from_numpy(views).to(self.device) for views in
                                  crop_fit_views(original, crop, found, fit_scale, config.refine_crop_side))
            with torch.no_grad():
                fit = torch.cat([crop_fit(regions[start:start + FIT_BATCH], crop_view[None])
                                 for start in range(0, len(regions), FIT_BATCH)])
                if self.seen is not None:
                    self.seen.append(SeenLook(logits.cpu(), fit.cpu(), np.array(found) / resolution,
                                              proposal.swapped, min(fit_scale, 1.0) * resolution))
                logits = logits + self.model.refiner.crop_logits(fit)
        probabilities = logits.softmax(1)[:, 1].cpu().numpy()
        best = int(np.argmax(probabilities))  # the corner where the closer look sees a crop most surely
        paired_prob = float(probabilities[best])
        refined = found[best] / resolution
        top_left = np.clip(np.round(refined), 0, original_size - crop_size).astype(int)
        answer = Proposal(paired_prob >= self.threshold, proposal.swapped, (int(top_left[0]), int(top_left[1])),
                          paired_prob, proposal.swapped_prob)
        if fit is None:
            return Look(answer)
        return Look(answer, crop_view, regions[best], fit[best])

    def predict_files(self, path_a: str, path_b: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Prediction:
        return self.answer(self.load(path_a, path_b, max_pixels))

    def predict_many(self, pairs: list[tuple[str, str]], max_pixels: int = DEFAULT_MAX_PIXELS) -> Iterator:
        """Answers for many pairs of files, in order: a Prediction, or the exception that pair raised.

        Pairs' files are read (decoded, and the crop prepared) on a thread of their own, up to the
        method's `READ_AHEAD` pairs ahead of the one being answered, so a batch keeps both cores busy;
        with none (net), each pair is read in turn on this thread.
        """
        ahead = READ_AHEAD[self.method]
        reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-ahead") if ahead and pairs else None
        pending = deque(reader.submit(self.load, *pair, max_pixels) for pair in pairs[:ahead])
        try:
            for index, pair in enumerate(pairs):
                current = pending.popleft() if ahead else None
                if ahead and index + ahead < len(pairs):
                    pending.append(reader.submit(self.load, *pairs[index + ahead], max_pixels))
                try:
                    yield self.answer(self.load(*pair, max_pixels) if current is None else current.result())
                except Exception as error:  # the caller reports it as that pair's answer, and goes on
                    yield error
        finally:
            if reader is not None:
                reader.shutdown(wait=True, cancel_futures=True)

    def load(self, path_a, path_b, max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedPair:
        """Read two files as this method needs them: grey at full size for verification (classic, hybrid),
        reduced RGB for the network (net, hybrid), and for the colour check (classic, hybrid) a file's
        colour reduced by `colour.FACTOR` where it costs nothing more (not a JPEG: from its one decode; a
        JPEG's is read only when an answer needs it, `read_colour`). Bad files raise ImageError, a's
        before b's."""
        names = (str(path_a), str(path_b))
        headers = image_header(path_a, max_pixels), image_header(path_b, max_pixels)  # bad files fail here, a's first
        sizes = tuple(header.size for header in headers)
        # A file that is not a JPEG gives the colour check its reduced colour from the one decode it has
        # anyway: read again only when an answer needed it, a 12-megapixel PNG would be decoded whole
        # again (300 ms, 48 MB more at the peak). A JPEG is read again at the reduced size, cheaply.
        jpegs = tuple(header.jpeg for header in headers)
        colour_factors = tuple(None if jpeg or not header.colour else COLOUR_FACTOR
                               for jpeg, header in zip(jpegs, headers, strict=True))
        if self.method == "classic":
            a, b, prepared, _, colour = load_and_prepare(path_a, path_b, sizes, max_pixels, self.decoder,
                                                         colour_factors=colour_factors)
            return LoadedPair(names, a, b, prepared, headers=headers, max_pixels=max_pixels, colour=colour)
        config = self.model.config
        scale_a, scale_b = network_scales(sizes, config.input_size, config.fit)
        if self.method == "net":
            if config.refine_zoom:  # the refining stage looks closer: decode at its scale; the first view comes from it
                from .data import refine_scale

                scale_a = scale_b = refine_scale(sizes, config.input_size, config.refine_zoom)
            view = load_image(path_a, max_pixels, scale=scale_a), load_image(path_b, max_pixels, scale=scale_b)
            return LoadedPair(names, view=view, sizes=sizes)
        # hybrid: a JPEG's network view is decoded (DCT-scaled, cheaply) on a thread of its own while the
        # pair is decoded for verification; any other file's view is made from its one full decode.
        paths, scales = (path_a, path_b), (scale_a, scale_b)
        separate = [self.viewer.submit(load_image, path, max_pixels, scale=scale) if jpeg else None
                    for path, scale, jpeg in zip(paths, scales, jpegs, strict=True)]
        from_decode = tuple(None if jpeg else scale for scale, jpeg in zip(scales, jpegs, strict=True))
        a, b, prepared, made, colour = load_and_prepare(path_a, path_b, sizes, max_pixels, self.decoder,
                                                        view_scales=from_decode, colour_factors=colour_factors)
        view = tuple(made_view if future is None else future.result()
                     for future, made_view in zip(separate, made, strict=True))
        return LoadedPair(names, a, b, prepared, view, sizes, headers, max_pixels, colour)

    def answer(self, pair: LoadedPair) -> Prediction:
        """The answer for a pair `load` read."""
        if self.method == "net":
            return net_answer(self.refine(self.propose(*pair.view, pair.sizes), *pair.view, pair.sizes), pair.names)
        colour = read_colour(pair.names, pair.headers, pair.max_pixels, pair.colour)
        if self.method == "classic":
            return predict_classic(pair.a, pair.b, pair.names, prepared=pair.prepared, headers=pair.headers,
                                   colour=colour)
        proposal = self.propose(*pair.view, pair.sizes)
        return predict_classic(pair.a, pair.b, pair.names, proposal=proposal, prepared=pair.prepared,
                               headers=pair.headers, colour=colour)


@dataclass
class LoadedPair:
    """Two files as a method needs them (see `Predictor.load`)."""

    names: tuple[str, str]
    a: np.ndarray | None = None  # (H, W) uint8 luma at full size, for verification
    b: np.ndarray | None = None
    prepared: PreparedCrop | None = None  # the search's preparation of whichever can be the crop
    view: tuple[np.ndarray, np.ndarray] | None = None  # the network's view: RGB reduced by `network_scales`
    sizes: tuple | None = None  # true (width, height) of a and b, when `view` is reduced
    headers: tuple[ImageHeader, ImageHeader] | None = None  # how each file keeps its pixels (see `predict_classic`)
    max_pixels: int = DEFAULT_MAX_PIXELS  # the limit the files were read under (read again in colour: `read_colour`)
    # Colour reduced by `colour.FACTOR`, made while decoding a file that is not a JPEG (see `Predictor.load`)
    colour: tuple[ReducedColour | None, ReducedColour | None] = (None, None)


def read_colour(paths: tuple[str, str], headers: tuple[ImageHeader, ImageHeader], max_pixels: int,
                kept: tuple[ReducedColour | None, ReducedColour | None] = (None, None)) -> ColourReader:
    """A `ColourReader` of two files: each file's reduced colour as `kept`, else read again at that size
    (a JPEG by DCT scaling) when an answer needs it; None for a file without colour."""
    def read() -> tuple[ReducedColour | None, ReducedColour | None]:
        return tuple(None if not header.colour else reduced or load_reduced_colour(path, max_pixels, COLOUR_FACTOR)
                     for path, header, reduced in zip(paths, headers, kept, strict=True))
    return read


def oriented(proposal: Proposal, a: np.ndarray, b: np.ndarray, sizes: tuple | None) -> tuple:
    """(original, its (w, h), crop, its (w, h), array px per image px) in the order the proposal gives."""
    size_a, size_b = (np.array(size) for size in (sizes or (a.shape[1::-1], b.shape[1::-1])))
    (original, original_size), (crop, crop_size) = original_first(proposal.swapped, (a, size_a), (b, size_b))
    return original, original_size, crop, crop_size, original.shape[1] / original_size[0]


def configure_malloc(keep_freed: bool = True) -> None:
    """Tell glibc's malloc how this program uses memory (a no-op elsewhere). It holds for the whole
    process, from the first `Predictor` on, and is not undone.

    - One heap arena for every thread (M_ARENA_MAX): glibc gives each thread an arena of its
      own, and each keeps the large buffers it freed. On the benchmark's 12-megapixel pairs,
      classic's work memory was 224 MB with an arena per thread and 148-181 MB with one, at the
      same speed.
    - With `keep_freed` (the first classic or hybrid `Predictor`): buffers up to 32 MB (a
      12-megapixel grey image, a pyramid level) come from that heap and stay there when freed
      (M_MMAP_THRESHOLD, M_TRIM_THRESHOLD). By default glibc maps such buffers fresh and unmaps
      them when freed, so every pair paid the kernel's page faults again for the same few sizes
      of buffer. On the benchmark's 12-megapixel set (24 pairs, a fresh process): 120,000-180,000
      page faults before, 24,000-32,000 after; classic's work memory 131-139 MB before, 134-145 MB
      after, in three runs taking turns (docs/speed.md, 18). 32 MB and 512 MB measured the same.
      (Returning every buffer over 1 MB at once instead saved 20 MB and cost 20% of the time.)
      Not asked by `net`, which decodes no full-size image: alone in a process, its work memory on
      that set grew from 171-174 MB to 183-187 MB with it, for no gain in time.
    """
    import ctypes
    import ctypes.util

    # From glibc's malloc.h. Each call only sets values: calling again (another Predictor) changes nothing
    # already set, and `keep_freed=False` undoes nothing.
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
        mallopt(M_ARENA_MAX, 1)
        if keep_freed:
            mallopt(M_MMAP_THRESHOLD, 32 * 2**20)
            mallopt(M_TRIM_THRESHOLD, 2**30)
    except (OSError, AttributeError, TypeError):
        pass


def network_scales(sizes: tuple, input_size: int, fit: str) -> tuple[float, float]:
    """How much each image of a pair can be reduced before `fit_pair` without losing what it keeps.

    "common" shrinks both by the factor that fits the larger side of either into the
    input, so both are decoded at that factor (and `fit_pair` then leaves them be);
    "stretch" squeezes each to input x input, which keeps at most input px of its shorter side.
    """
    if fit == "common":
        scale = min(1.0, input_size / max(max(size) for size in sizes))
        return scale, scale
    return tuple(min(1.0, input_size / min(size)) for size in sizes)


def net_answer(proposal: Proposal, names) -> Prediction:
    """The network's proposal as the answer (`--method net`)."""
    scores = {"paired": proposal.paired_prob, "swapped": proposal.swapped_prob}
    if not proposal.paired:
        return Prediction(names[0], names[1], False, None, None, "net", scores)
    return Prediction(names[0], names[1], True, proposal.swapped, proposal.top_left, "net", scores)


def load_and_prepare(path_a, path_b, sizes: tuple, max_pixels: int, decoder: ThreadPoolExecutor,
                     verify_config: VerifyConfig = VerifyConfig(), view_scales: tuple = (None, None),
                     colour_factors: tuple = (None, None)) -> tuple[np.ndarray, np.ndarray, PreparedCrop | None,
                                                                    tuple, tuple]:
    """Both images as grey arrays, and the search's preparation of the one that can be the crop.

    Decoding the original is most of a pair's time. The sizes (from the headers,
    `image_size`) tell which image can be the crop (it must fit inside the other),
    so `decoder` decodes the original on a second core while this thread decodes
    the crop and prepares everything the search needs from it. Same-size pairs (an
    identity test) and pairs where neither fits are simply decoded side by side.

    An image given a scale in `view_scales` (a's, b's) also gives its RGB view reduced by it, and
    one given a factor in `colour_factors` its box-reduced RGB, from the same decode
    (`load_grey_and_views`). Returns a, b, the preparation, the two views and the two reduced RGBs
    (None where not asked).
    """
    (width_a, height_a), (width_b, height_b) = sizes
    a_fits = width_a <= width_b and height_a <= height_b
    b_fits = width_b <= width_a and height_b <= height_a
    crop_index = 0 if a_fits and not b_fits else 1 if b_fits and not a_fits else None
    here = 1 if crop_index is None else crop_index  # decoded on this thread: the crop, or b
    paths = (path_a, path_b)

    def read(index: int) -> tuple[np.ndarray, np.ndarray | None, ReducedColour | None]:
        return load_grey_and_views(paths[index], max_pixels, view_scales[index], colour_factors[index])

    pending = decoder.submit(read, 1 - here)
    try:
        crop, crop_view, crop_colour = read(here)
        prepared = None if crop_index is None else PreparedCrop(crop, verify_config)
    finally:
        original, original_view, original_colour = pending.result()  # a second error is the original's
    if here == 0:
        return crop, original, prepared, (crop_view, original_view), (crop_colour, original_colour)
    return original, crop, prepared, (original_view, crop_view), (original_colour, crop_colour)


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
