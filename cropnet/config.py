"""Hyper-parameters as dataclasses; `asdict` of each is stored in every checkpoint.

`predict` rebuilds the model and its input preprocessing from the checkpoint
alone, so nothing the network depends on may live outside these objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

# Negative kinds the synthesizer makes; "positive" is a true crop.
PAIR_KINDS = ("positive", "other", "flip", "border", "resized")
STAGES = ("match", "refine", "crop-fit", "crop-mined")  # what `train` trains: see TrainConfig.stage


@dataclass
class SynthConfig:
    """How labelled pairs are drawn from a folder of photos."""

    crop_min: float = 0.10  # crop side as a fraction of the original's side, drawn
    crop_max: float = 0.90  # independently for width and height
    # Share of each pair kind. Every negative uses the positives' crop-size
    # draw, so size and aspect ratio say nothing about the label.
    kind_weights: dict = field(default_factory=lambda: {
        "positive": 0.5,
        "other": 0.125,    # same-size crop of a different photo
        "flip": 0.125,     # crop of the horizontally flipped original
        "border": 0.125,   # region overlapping the original but running past its border
        "resized": 0.125,  # crop of the original, resized
    })
    edge_probability: float = 0.1  # chance a true crop is pushed against the original's border(s)
    border_overrun: tuple = (0.1, 0.5)  # part of the crop's side that lies outside the original
    resize_down: tuple = (0.85, 0.95)  # scale ranges of "resized" negatives
    resize_up: tuple = (1.05, 1.20)
    jpeg_quality: tuple = (25, 95)  # each image re-encoded independently, quality drawn uniformly
    png_probability: float = 0.1  # otherwise kept lossless (as if saved as PNG)
    swap_probability: float = 0.5  # chance the crop comes first
    photo_max_side: int | None = 512  # photos are shrunk to this before synthesis (None: full size)
    val_percent: int = 10  # share of photos held out for validation, chosen by file name hash

    def __post_init__(self):
        unknown = set(self.kind_weights) - set(PAIR_KINDS)
        if unknown:
            raise ValueError(f"unknown pair kinds {sorted(unknown)}; known: {PAIR_KINDS}")
        if not 0 < self.crop_min <= self.crop_max < 1:
            raise ValueError("need 0 < crop_min <= crop_max < 1")


@dataclass
class ModelConfig:
    """The network and the input it expects."""

    # "resnet18" or "resnet34": both images stacked as 6 channels, one trunk (the write-up's).
    # "siamese-resnet18": one trunk applied to each image, the crop's features correlated over the original's.
    arch: str = "resnet18"
    input_size: int = 128  # N: both images share one N x N canvas pair, px
    # "common": one scale for both images, padded; "stretch": each squeezed to N x N (the write-up's mode)
    fit: str = "common"
    head_channels: int = 32  # 1x1 conv width before each head's spatial pooling
    head_grid: int = 4  # each head keeps a grid x grid map, so "where" survives pooling
    head_hidden: int = 128
    feature_dim: int = 64  # siamese: width of the L2-normalized features that are correlated
    # The refining stage (siamese only; 0 leaves it out): a second, closer view around the corners the
    # first stage found, at refine_zoom times the first view's scale (at most the images' own).
    refine_zoom: float = 0.0
    refine_patch: int = 64  # side of the crop's corner patch in the second view, px
    refine_window: int = 192  # side of the original's window searched for it, px
    # The refining stage also fits both corner patches to their windows pixel by pixel (model.pixel_fit)
    # and reads the residual: a resized crop or a region past the border fits its features, not its pixels.
    # Part of the refining stage: without refine_zoom there is nothing for it to do.
    refine_pixels: bool = False
    # The refining stage's last look: the whole crop compared with the original under the corner it found,
    # pixel by pixel, seen with its longer side at this many px (or at the closer view's scale, if that is
    # smaller; model.crop_fit). 0 leaves it out. The corner patches above see only a small part of a large crop.
    # Like the pixel fit, part of the refining stage: without refine_zoom there is nothing for it to do.
    refine_crop_side: int = 0
    # How answering takes the whole-crop head's say. False: as a veto, lowering "crop" only (the shipped head).
    # True (train --stage crop-mined --refine-crop-adds): whole, raising it too, and the whole crop is searched
    # around a corner both looks turned down (predict.Predictor.refine). Measured on the validation photos, an
    # added head let regions just past the border through, however it was trained (docs/network.md).
    refine_crop_adds: bool = False

    def __post_init__(self):
        if self.fit not in ("common", "stretch"):
            raise ValueError(f"fit must be 'common' or 'stretch', not {self.fit!r}")
        if self.arch.removeprefix("siamese-") not in ("resnet18", "resnet34"):
            raise ValueError(f"arch must be resnet18, resnet34, siamese-resnet18 or siamese-resnet34, "
                             f"not {self.arch!r}")
        if self.refine_zoom and not self.siamese:
            raise ValueError("the refining stage needs a siamese arch")
        if self.refine_window <= self.refine_patch or (self.refine_window - self.refine_patch) % 16:
            raise ValueError("refine_window must exceed refine_patch by a multiple of 16 px (two feature cells)")
        if self.siamese and self.fit != "common":
            raise ValueError("a siamese arch correlates the images at one scale: it needs fit 'common'")

    @property
    def siamese(self) -> bool:
        """The siamese net also reads where each image lies on its canvas (two mask channels)."""
        return self.arch.startswith("siamese-")


@dataclass
class TrainConfig:
    epochs: int = 20
    pairs_per_epoch: int = 4096
    val_pairs: int = 512
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    freeze_epochs: int = 0  # the write-up's schedule: train only the heads for this many epochs first
    # Curriculum: for this many first epochs the negatives are crops of other photos only;
    # the hard kinds (flip, border, resized) come after. Validation always uses the full mix.
    easy_epochs: int = 0
    # ... then the hard kinds' share grows linearly over this many epochs, instead of arriving all at once.
    ramp_epochs: int = 0
    top_left_weight: float = 5.0  # the corner's L1 loss is small in [0, 1] units; weigh it up
    seed: int = 0
    workers: int = 1  # DataLoader processes synthesizing pairs
    amp: bool = False  # mixed precision: float16 on a GPU, bfloat16 on a CPU
    # "match": train the network; "refine": train only its refining stage, the rest frozen;
    # "crop-fit": train only the refining stage's whole-crop head (model.crop_fit), the rest frozen;
    # "crop-mined": the same head, from the corners `predict --method net` really looks at (train.train_on_answers).
    stage: str = "match"
    # refine: the first stage's corner error is simulated, as this share of the original's side (std per axis)
    refine_jitter: float = 0.04

    def __post_init__(self):
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {', '.join(STAGES)}, not {self.stage!r}")


def config_from_dict(cls, values: dict):
    """Rebuild a config, ignoring keys a newer or older version does not know."""
    known = {f.name for f in fields(cls)}
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items() if k in known}
    return cls(**kwargs)

