"""What the benchmark times: cropnet's three methods, the two references a user would otherwise
write, and the decode floor. Each is built once (`make_method`) and then answers file pairs.

Every answer is a plain dict: paired, swapped (the first image is the crop), top_left
([x, y] in the original) and ambiguous (cropnet's verifying methods flag answers whose
position the pixels cannot pin down). The decoders answer nothing: paired is None.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np
from PIL import Image

# The decoders only time reading the files; they are the floor no correct tool can beat.
DECODERS = ("floor", "decode-grey", "decode-pillow")
CROPNET_METHODS = ("classic", "hybrid", "net")
REFERENCES = ("template", "sift")
METHODS = (*DECODERS, *CROPNET_METHODS, *REFERENCES)
LABELS = {
    "floor": "floor: decode both, RGB (cv2.imread)",
    "decode-grey": "decode both, grey (cv2.imread)",
    "decode-pillow": "decode both, RGB (Pillow)",
    "classic": "cropnet classic",
    "hybrid": "cropnet hybrid",
    "net": "cropnet net",
    "template": "reference A: matchTemplate",
    "sift": "reference B: SIFT + RANSAC",
}

SIFT_RATIO = 0.75  # Lowe's ratio test
SIFT_MIN_INLIERS = 10
SIFT_SCALE_TOLERANCE = 0.01  # |scale - 1|: a crop is not resampled
SIFT_ROTATION_TOLERANCE = 0.01  # radians
RANSAC_REPROJECTION = 3.0  # px


def not_paired(score: float | None = None) -> dict:
    return {"paired": False, "swapped": None, "top_left": None, "ambiguous": False, "score": score}


def read(path: str, flags: int) -> np.ndarray:
    image = cv2.imread(path, flags)
    if image is None:  # cv2 does not raise on a file it cannot read
        raise OSError(f"{path}: cv2.imread could not read it")
    return image


def template_order(a: np.ndarray, b: np.ndarray) -> bool | None:
    """Which image can be the crop: True when `a` (the first) fits inside `b`, False when `b` fits inside `a`,
    None when neither fits in both dimensions. Same-size images count as `b` inside `a`."""
    if b.shape[0] <= a.shape[0] and b.shape[1] <= a.shape[1]:
        return False
    if a.shape[0] <= b.shape[0] and a.shape[1] <= b.shape[1]:
        return True
    return None


def read_in_order(path_a: str, path_b: str):
    """Both files as full-resolution grey arrays, the original first, and `swapped`; (None, None, None) when
    neither fits inside the other."""
    a, b = read(path_a, cv2.IMREAD_GRAYSCALE), read(path_b, cv2.IMREAD_GRAYSCALE)
    swapped = template_order(a, b)
    if swapped is None:
        return None, None, None
    return (b, a, swapped) if swapped else (a, b, swapped)


def decode_floor(path_a: str, path_b: str) -> dict:
    """Full-resolution RGB, the fastest decoder measured here (cv2 gives BGR order: the same work)."""
    read(path_a, cv2.IMREAD_COLOR), read(path_b, cv2.IMREAD_COLOR)
    return {"paired": None}


def decode_grey(path_a: str, path_b: str) -> dict:
    read(path_a, cv2.IMREAD_GRAYSCALE), read(path_b, cv2.IMREAD_GRAYSCALE)
    return {"paired": None}


def decode_pillow(path_a: str, path_b: str) -> dict:
    for path in (path_a, path_b):
        with Image.open(path) as image:
            np.asarray(image.convert("RGB"))
    return {"paired": None}


def make_template(threshold: float) -> Callable[[str, str], dict]:
    """Reference A: normalised correlation (TM_CCOEFF_NORMED) of the smaller image over the larger,
    full resolution, on grey (luma) images; paired when the best score reaches `threshold`."""

    def answer(path_a: str, path_b: str) -> dict:
        original, crop, swapped = read_in_order(path_a, path_b)
        if original is None:
            return not_paired()
        scores = cv2.matchTemplate(original, crop, cv2.TM_CCOEFF_NORMED)
        _, best, _, (x, y) = cv2.minMaxLoc(scores)
        if not math.isfinite(best):  # a constant crop has no defined correlation
            return not_paired()
        if best < threshold:
            return not_paired(best)
        return {"paired": True, "swapped": swapped, "top_left": [int(x), int(y)], "ambiguous": False,
                "score": best}

    return answer


def make_sift() -> Callable[[str, str], dict]:
    """Reference B: SIFT on both full-resolution grey images, Lowe's ratio test, a similarity fitted by RANSAC;
    paired when it is a pure translation (unit scale, no rotation) with enough inliers and puts the crop
    wholly inside the original."""
    sift = cv2.SIFT_create()
    matcher = cv2.FlannBasedMatcher({"algorithm": 1, "trees": 5}, {"checks": 50})  # 1: FLANN's kd-tree

    def answer(path_a: str, path_b: str) -> dict:
        original, crop, swapped = read_in_order(path_a, path_b)
        if original is None:
            return not_paired()
        points_crop, descriptors_crop = sift.detectAndCompute(crop, None)
        points_original, descriptors_original = sift.detectAndCompute(original, None)
        if descriptors_crop is None or descriptors_original is None or len(descriptors_original) < 2:
            return not_paired(0)
        good = [m[0] for m in matcher.knnMatch(descriptors_crop, descriptors_original, k=2)
                if len(m) == 2 and m[0].distance < SIFT_RATIO * m[1].distance]
        if len(good) < SIFT_MIN_INLIERS:
            return not_paired(len(good))
        source = np.float32([points_crop[m.queryIdx].pt for m in good])
        target = np.float32([points_original[m.trainIdx].pt for m in good])
        matrix, inliers = cv2.estimateAffinePartial2D(source, target, method=cv2.RANSAC,
                                                      ransacReprojThreshold=RANSAC_REPROJECTION)
        if matrix is None:
            return not_paired(0)
        count = int(inliers.sum())
        scale = math.hypot(matrix[0, 0], matrix[1, 0])
        rotation = math.atan2(matrix[1, 0], matrix[0, 0])
        x, y = round(matrix[0, 2]), round(matrix[1, 2])  # where the crop's (0, 0) lands: its top-left corner
        inside = 0 <= x <= original.shape[1] - crop.shape[1] and 0 <= y <= original.shape[0] - crop.shape[0]
        if (count < SIFT_MIN_INLIERS or abs(scale - 1) >= SIFT_SCALE_TOLERANCE
                or abs(rotation) >= SIFT_ROTATION_TOLERANCE or not inside):
            return not_paired(count)
        return {"paired": True, "swapped": swapped, "top_left": [x, y], "ambiguous": False, "score": count}

    return answer


def make_cropnet(method: str):
    """A cropnet Predictor, model loaded once. `answer(a, b)` answers one pair; `answer.many(pairs)` answers a
    batch as `detect.py predict --pairs` does (Predictor.predict_many: classic and hybrid read the next pairs
    while one is answered, net each in turn)."""
    from cropnet.predict import Predictor

    predictor = Predictor(method)

    def as_dict(prediction) -> dict:
        if isinstance(prediction, Exception):  # predict_many hands a pair's error over instead of raising
            raise prediction
        return {"paired": prediction.paired, "swapped": prediction.swapped,
                "top_left": list(prediction.top_left) if prediction.top_left else None,
                "ambiguous": prediction.ambiguous, "score": prediction.scores.get("verification")}

    def answer(path_a: str, path_b: str) -> dict:
        return as_dict(predictor.predict_files(path_a, path_b))

    answer.many = lambda pairs: map(as_dict, predictor.predict_many(pairs))
    answer.predictor = predictor  # the worker times the network's forward pass on its own
    return answer


def make_method(name: str, threshold: float | None = None) -> Callable[[str, str], dict]:
    """The answering function for `name` (see METHODS); reference A needs its tuned `threshold`."""
    if name in CROPNET_METHODS:
        return make_cropnet(name)
    if name == "template":
        if threshold is None:
            raise ValueError("the template reference needs a threshold (tuned on another seed)")
        return make_template(threshold)
    if name == "sift":
        return make_sift()
    return {"floor": decode_floor, "decode-grey": decode_grey, "decode-pillow": decode_pillow}[name]
