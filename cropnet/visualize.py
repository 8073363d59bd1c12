"""A picture of an answer: the original with the crop's rectangle, the crop beside it, the verdict below."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from .predict import Prediction

HEIGHT = 480  # px of the taller image in the picture
GAP, CAPTION = 16, 40  # px between the images; px of text below them
RECTANGLE = (255, 40, 40)


def draw_answer(a: np.ndarray, b: np.ndarray, prediction: Prediction) -> Image.Image:
    """Both images at one common scale, side by side: the original first (with the crop's
    rectangle) when paired, else in the order given; the verdict and scores written below."""
    first, second = (b, a) if prediction.paired and prediction.swapped else (a, b)
    scale = HEIGHT / max(first.shape[0], second.shape[0])  # one scale: the crop shows at its size in the original
    sizes = [(max(1, round(i.shape[1] * scale)), max(1, round(i.shape[0] * scale))) for i in (first, second)]
    canvas = Image.new("RGB", (sizes[0][0] + GAP + sizes[1][0], HEIGHT + CAPTION), (255, 255, 255))
    canvas.paste(Image.fromarray(first).resize(sizes[0], Image.Resampling.LANCZOS), (0, 0))
    canvas.paste(Image.fromarray(second).resize(sizes[1], Image.Resampling.LANCZOS), (sizes[0][0] + GAP, 0))
    draw = ImageDraw.Draw(canvas)
    if prediction.paired:
        x, y = prediction.top_left
        box = [x * scale, y * scale, (x + second.shape[1]) * scale, (y + second.shape[0]) * scale]
        draw.rectangle(box, outline=RECTANGLE, width=3)
    draw.text((4, HEIGHT + 4), verdict(prediction), fill=(0, 0, 0))
    scores = ", ".join(f"{name} {value:.3f}" for name, value in prediction.scores.items())
    draw.text((4, HEIGHT + 22), f"method {prediction.method}; {scores}", fill=(80, 80, 80))
    return canvas


def verdict(prediction: Prediction) -> str:
    if not prediction.paired:
        return "Not a crop: neither image is a cropped version of the other"
    crop, original = ("first", "second") if prediction.swapped else ("second", "first")
    text = f"The {crop} image is a crop of the {original}, top-left corner at {tuple(prediction.top_left)}"
    return text + (" (ambiguous)" if prediction.ambiguous else "")
