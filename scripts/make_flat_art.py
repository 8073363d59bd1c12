"""Generate flat, vector-art-like wallpapers: smooth gradients, large areas of one colour, soft waves.

Why: the training and validation photos are mostly photographs, while many wallpapers users
have (and the held-out set) are vector art. On such content a flipped, shifted or resized
region is nearly the same pixels as a true crop, and the network was measured to lose most
there. These images are made here, so they may be trained and tuned on freely.

    python scripts/make_flat_art.py runs/flat-art --count 48 --seed 0
"""
from pathlib import Path

import click
import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SIZES = [(1920, 1080), (2560, 1440), (1600, 1200), (2048, 1536), (1280, 1024), (2400, 1350)]


def random_colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0, 255, 3)


def linear_gradient(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Two colours blended along a random direction: the typical smooth background."""
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    t = xs * np.cos(angle) + ys * np.sin(angle)
    t = (t - t.min()) / max(float(np.ptp(t)), 1.0)
    start, end = random_colour(rng), random_colour(rng)
    return start * (1 - t[..., None]) + end * t[..., None]


def shapes(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A gradient with translucent polygons and ellipses over it."""
    canvas = Image.fromarray(linear_gradient(width, height, rng).astype(np.uint8)).convert("RGBA")
    for _ in range(rng.integers(3, 11)):
        layer = Image.new("RGBA", (width, height), (0, 0, 0, 0))
        draw = ImageDraw.Draw(layer)
        colour = tuple(int(c) for c in random_colour(rng)) + (int(rng.integers(90, 256)),)
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        radius = rng.uniform(0.1, 0.6) * min(width, height)
        if rng.random() < 0.5:
            draw.ellipse([cx - radius, cy - radius * rng.uniform(0.5, 1.5), cx + radius,
                          cy + radius * rng.uniform(0.5, 1.5)], fill=colour)
        else:
            angles = np.sort(rng.uniform(0, 2 * np.pi, rng.integers(3, 7)))
            points = [(cx + radius * np.cos(a), cy + radius * np.sin(a)) for a in angles]
            draw.polygon(points, fill=colour)
        canvas = Image.alpha_composite(canvas, layer)
    return np.asarray(canvas.convert("RGB"), dtype=np.float32)


def waves(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Horizontal bands bounded by sine curves, each band its own gradient."""
    image = linear_gradient(width, height, rng)
    xs = np.arange(width, dtype=np.float32)
    ys = np.arange(height, dtype=np.float32)[:, None]
    for level in np.sort(rng.uniform(0.1, 0.95, rng.integers(2, 7))):
        amplitude = rng.uniform(0.02, 0.15) * height
        frequency = rng.uniform(0.5, 3) * 2 * np.pi / width
        boundary = level * height + amplitude * np.sin(frequency * xs + rng.uniform(0, 2 * np.pi))
        below = (ys > boundary[None, :]).astype(np.float32)[..., None]
        image = image * (1 - below) + linear_gradient(width, height, rng) * below
    return image


def low_poly(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Triangles on a jittered grid, each filled with the background gradient's colour at its centre."""
    base = linear_gradient(width, height, rng)
    canvas = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(canvas)
    step = rng.uniform(0.08, 0.25) * min(width, height)
    # The grid starts a step before the canvas so that jittered edges never leave it uncovered.
    cols, rows = int(width / step) + 4, int(height / step) + 4
    grid = np.stack(np.meshgrid((np.arange(cols) - 1) * step, (np.arange(rows) - 1) * step), -1)
    grid += rng.uniform(-0.35, 0.35, grid.shape) * step
    for r in range(rows - 1):
        for c in range(cols - 1):
            a, b, d, e = grid[r, c], grid[r, c + 1], grid[r + 1, c], grid[r + 1, c + 1]
            for triangle in ((a, b, d), (b, e, d)):
                cx, cy = np.mean(triangle, axis=0)
                colour = base[int(np.clip(cy, 0, height - 1)), int(np.clip(cx, 0, width - 1))]
                colour = np.clip(colour + rng.normal(0, 8, 3), 0, 255)
                draw.polygon([tuple(p) for p in triangle], fill=tuple(int(v) for v in colour))
    return np.asarray(canvas, dtype=np.float32)


def blobs(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A few wide Gaussian glows of colour over a dark ground: almost no edges at all."""
    image = np.tile(random_colour(rng) * 0.3, (height, width, 1)).astype(np.float32)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    for _ in range(rng.integers(2, 6)):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        sigma = rng.uniform(0.1, 0.4) * max(width, height)
        weight = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma ** 2))
        image += weight[..., None] * (random_colour(rng) - image) * 0.8
    return image


STYLES = [shapes, waves, low_poly, blobs]


def make_image(rng: np.random.Generator, styles=tuple(STYLES)) -> Image.Image:
    width, height = SIZES[rng.integers(len(SIZES))]
    image = styles[rng.integers(len(styles))](width, height, rng)
    if rng.random() < 0.35:  # some wallpapers carry a film grain
        image = image + rng.normal(0, rng.uniform(1, 4), image.shape)
    picture = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))
    # Vector renderers anti-alias their edges; a slight blur stands in for that.
    return picture.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.5)))


@click.command()
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--count", default=48, show_default=True, help="How many images.")
@click.option("--seed", default=0, show_default=True, help="Seed; another seed gives other images.")
def main(out_dir: Path, count: int, seed: int) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for index in range(count):
        make_image(rng).save(out_dir / f"flat-{seed}-{index:03d}.png")
    click.echo(f"{count} images in {out_dir}")


if __name__ == "__main__":
    main()
