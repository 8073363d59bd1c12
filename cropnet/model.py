"""The networks: a ResNet trunk over a 6-channel pair (`CropNet`), or one trunk applied
to each image and the crop's features correlated over the original's (`SiameseCropNet`);
both answer through three heads with the same output.

Imports only torch and knows nothing of files or the CLI.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig

# The ResNet trunk is built here rather than taken from torchvision.models: importing
# torchvision costs 2.8 s on this machine (its ops package imports torch._dynamo), more
# than torch itself, and `predict` would pay it on every call. The modules and parameter
# names are torchvision's, so its ResNet state dicts load unchanged; a test checks that
# both give the same output with the same weights.
BLOCKS_PER_LAYER = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3)}  # the basic-block ResNets
LAYER_WIDTHS = (64, 128, 256, 512)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions and a shortcut (a 1x1 projection where the shape changes)."""

    def __init__(self, in_channels: int, channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, channels, kernel_size=1, stride=stride, bias=False),
                                            nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(x)) + shortcut)


STEM = 4  # a ResNet trunk's first modules that make its stem: convolution, batch norm, ReLU, max-pool
STEM_BAND = 256  # input rows `stem_in_bands` takes at a time


def stem_in_bands(stem: nn.Sequential, images: torch.Tensor, band: int = STEM_BAND) -> torch.Tensor:
    """`stem(images)` (`resnet_trunk`'s first STEM modules: a stride-2 7 x 7 convolution, a stride-2 3 x 3
    max-pool) computed `band` input rows at a time, for the same values within float rounding.

    Its output is the trunk's largest activation: over the scan's 640 x 640 view of a 12-megapixel
    original, 25 MB out of the convolution and 19 MB out of the max-pool (values and its int64
    indices) at once, the largest live tensors of a `net` answer that scans the whole original. A band
    of 256 rows (272 with its neighbours') makes 11 and 8 MB; over a 24-pair 12-megapixel set the
    scan's live tensors' peak went from 65 to 52 MB (docs/speed.md).
    Output row r reads input rows 4r - 5 to 4r + 5, so each band reads 8 rows of its neighbours
    (a multiple of 4: both strides keep their grid) and keeps only its own rows: a band's input is
    4 * (band // 4) rows and 8 more on each side that has a neighbour.

    Only for answering: a batch norm in training mode would take its statistics band by band, so such a
    stem runs whole (as does any input of at most `band` rows: training's windows). Asked of the batch
    norms themselves: a slice of a trunk (`trunk[:STEM]`) is a new Sequential, in training mode whatever
    its modules are in."""
    height = images.shape[2]
    if height <= band or any(isinstance(m, nn.BatchNorm2d) and m.training for m in stem.modules()):
        return stem(images)
    if band < 4:
        raise ValueError(f"a band needs at least one output row (4 input rows), not {band}")
    rows = -(-height // 4)  # the stem's output rows: each stride-2 step rounds up
    step = band // 4
    parts = []
    for first in range(0, rows, step):
        last = min(rows, first + step)
        top = max(0, 4 * first - 8)
        out = stem(images[:, :, top:min(height, 4 * last + 8)])
        parts.append(out[:, :, first - top // 4:last - top // 4])
    return torch.cat(parts, 2)


def resnet_trunk(arch: str, in_channels: int = 3, layers: int = 4) -> nn.Sequential:
    """ResNet's stem and its first `layers` stages, He-initialized as torchvision does:
    (B, in_channels, N, N) -> (B, LAYER_WIDTHS[layers - 1], N / 2**(layers + 1), ...)."""
    modules = [nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False), nn.BatchNorm2d(64),
               nn.ReLU(inplace=True), nn.MaxPool2d(kernel_size=3, stride=2, padding=1)]
    width = 64
    blocks_per_layer = BLOCKS_PER_LAYER[arch][:layers]
    for stage, (blocks, channels) in enumerate(zip(blocks_per_layer, LAYER_WIDTHS[:layers], strict=True)):
        stride = 1 if stage == 0 else 2
        modules.append(nn.Sequential(*[BasicBlock(width if i == 0 else channels, channels, stride if i == 0 else 1)
                                       for i in range(blocks)]))
        width = channels
    trunk = nn.Sequential(*modules)
    for module in trunk.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    return trunk


class CropNetOutput(NamedTuple):
    paired_logits: torch.Tensor  # (B, 2): [not a crop, crop]
    swapped_logits: torch.Tensor  # (B, 2): [first image is the original, first image is the crop]
    top_left: torch.Tensor  # (B, 2): crop's (x, y) over the original's (width, height), in [0, 1]


class Head(nn.Module):
    """Reads the trunk's feature map. A small grid is kept instead of global pooling,
    because whether and where the crop sits in the original is spatial information."""

    def __init__(self, in_channels: int, config: ModelConfig, outputs: int = 2):
        super().__init__()
        self.reduce = nn.Sequential(
            nn.Conv2d(in_channels, config.head_channels, kernel_size=1, bias=False),
            nn.BatchNorm2d(config.head_channels),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(config.head_grid),
        )
        self.mlp = nn.Sequential(
            nn.Linear(config.head_channels * config.head_grid ** 2, config.head_hidden),
            nn.ReLU(inplace=True),
            nn.Linear(config.head_hidden, outputs),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.reduce(features)  # (B, C_head, grid, grid)
        return self.mlp(x.flatten(1))  # (B, outputs)


class CropNet(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        # The one change to the trunk: conv1 reads both RGB images stacked (6 channels).
        # Everything up to layer4; ResNet's avgpool and fc are replaced by the heads.
        self.trunk = resnet_trunk(config.arch, in_channels=6)
        features = LAYER_WIDTHS[-1]
        self.heads = nn.ModuleDict({
            "paired": Head(features, config),
            "swapped": Head(features, config),
            "top_left": Head(features, config),
        })
        self._init_weights()

    def _init_weights(self) -> None:
        # resnet_trunk initializes the trunk; the heads' last layers start small.
        for module in self.heads.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.01)
                nn.init.zeros_(module.bias)

    def forward(self, images: torch.Tensor) -> CropNetOutput:
        features = self.trunk(images)  # (B, 6, N, N) -> (B, C, N/32, N/32)
        return CropNetOutput(
            paired_logits=self.heads["paired"](features),
            swapped_logits=self.heads["swapped"](features),
            top_left=torch.sigmoid(self.heads["top_left"](features)),
        )

    def load_pretrained_trunk(self, state_dict: dict) -> None:
        """Load a torchvision ResNet state dict (e.g. saved ImageNet weights) into the trunk.

        conv1's 3-channel weights are copied into both halves (halved, so a pair of
        identical images gives the same activations as one image did); fc is ignored.
        """
        names = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]
        trunk_state = {}
        for key, value in state_dict.items():
            prefix, _, rest = key.partition(".")
            if prefix not in names:
                continue
            if key == "conv1.weight":
                if value.shape[1] != 3:
                    raise ValueError(f"expected conv1 with 3 input channels, got {tuple(value.shape)}")
                value = torch.cat([value, value], dim=1) / 2  # (64, 3, 7, 7) -> (64, 6, 7, 7)
            trunk_state[f"{names.index(prefix)}.{rest}"] = value
        missing, unexpected = self.trunk.load_state_dict(trunk_state, strict=False)
        if missing:
            raise ValueError(f"pretrained weights do not fit {self.config.arch}: missing {missing[:3]}")


def build_model(config: ModelConfig) -> nn.Module:
    """The network `config.arch` names."""
    return SiameseCropNet(config) if config.siamese else CropNet(config)


def for_inference(model: nn.Module) -> nn.Module:
    """`model` in eval mode, each batch norm folded into the convolution before it, in channels-last layout.

    For answering only: training needs the batch norms, and the folded model's state dict no longer
    fits a checkpoint, so it is never saved. At inference a batch norm is a fixed affine map, so
    folding it (torch's `fuse_conv_bn_eval`) saves its full-size output; channels-last lets oneDNN's
    convolutions skip converting to and from their own layout (a convolution of the stem's shape over
    the scan's 640 x 480 view: a 19 MB output, 45 MB of peak growth in the default layout, 24 MB
    channels-last). Measured together, on the 12-megapixel benchmark pairs, `--method net`'s work
    memory went from 159-188 to 133-142 MB; features differ from the unfolded model's by float
    rounding (at most 2e-6 there). See docs/speed.md, change 17. A model already folded is left as it is.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    model.eval()
    for module in list(model.modules()):
        if isinstance(module, BasicBlock) and isinstance(module.bn1, nn.BatchNorm2d):
            module.conv1, module.bn1 = fuse_conv_bn_eval(module.conv1, module.bn1), nn.Identity()
            module.conv2, module.bn2 = fuse_conv_bn_eval(module.conv2, module.bn2), nn.Identity()
        elif isinstance(module, nn.Sequential):
            for index in range(len(module) - 1):
                if isinstance(module[index], nn.Conv2d) and isinstance(module[index + 1], nn.BatchNorm2d):
                    module[index] = fuse_conv_bn_eval(module[index], module[index + 1])
                    module[index + 1] = nn.Identity()
    return model.to(memory_format=torch.channels_last)


STRIDE = 8  # the siamese trunk's feature cell, in input pixels


class Matches(NamedTuple):
    """One direction of the siamese match: the first image's features as a crop of the second's."""

    scores: torch.Tensor  # (B, h*w): mean cosine of the crop's cells at each offset (dy, dx), row-major
    allowed: torch.Tensor  # (B, h*w) bool: offsets that keep the crop inside the original
    offsets: torch.Tensor  # (h*w, 2): each offset's (dx, dy), in cells
    stats: torch.Tensor  # (B, STATS): what the heads read


STATS = 7


def shift_index(height: int, width: int, device) -> torch.Tensor:
    """(h*w cells, h*w offsets): the original's cell that crop cell c meets at offset k, or h*w (off the canvas)."""
    row, col = torch.meshgrid(torch.arange(height, device=device), torch.arange(width, device=device), indexing="ij")
    row, col = row.flatten(), col.flatten()
    target_row = row[:, None] + row[None, :]  # cell's row + offset's dy
    target_col = col[:, None] + col[None, :]
    inside = (target_row < height) & (target_col < width)
    return torch.where(inside, target_row * width + target_col, height * width)


def match(similarity: torch.Tensor, template: torch.Tensor, allowed: torch.Tensor, index: torch.Tensor,
          offsets: torch.Tensor) -> Matches:
    """Score every offset of the crop over the original, and describe the best one.

    similarity: (B, h*w crop cells, h*w original cells) cosines; template: (B, h*w)
    weights of the crop's cells (1 inside the crop); allowed: (B, h*w) offsets.
    """
    batch = similarity.shape[0]
    padded = F.pad(similarity, (0, 1))  # a zero column for cells shifted off the canvas
    per_cell = padded.gather(2, index.expand(batch, -1, -1))  # (B, cells, offsets)
    cells = template.sum(1).clamp(min=1)
    scores = (per_cell * template[:, :, None]).sum(1) / cells[:, None]  # (B, offsets): mean cosine
    possible = allowed.any(1)
    masked = scores.masked_fill(~allowed, -2.0)  # below any cosine
    peak, best = masked.max(1)
    count = allowed.sum(1).clamp(min=1)
    mean = (scores * allowed).sum(1) / count
    # Every part of a true crop fits at its offset; a region past the border or a resized crop
    # fits only in part. So the heads also see the worst cells at the best offset.
    at_best = per_cell.gather(2, best[:, None, None].expand(-1, per_cell.shape[1], 1))[:, :, 0]  # (B, cells)
    worst, soft_worst = worst_cells(at_best, template > 0, cells)
    stats = torch.stack([peak, peak - mean, worst, soft_worst, torch.log(cells) / 4, torch.log(count) / 4,
                         possible.float()], dim=1)
    impossible = torch.tensor([-1.0, 0.0, -1.0, -1.0, 0.0, 0.0, 0.0], device=stats.device)
    stats = torch.where(possible[:, None], stats, impossible)  # neither the crop's size nor position fits
    return Matches(scores, allowed, offsets, stats)


def worst_cells(per_cell: torch.Tensor, inside: torch.Tensor, cells: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The worst cosine among the crop's cells at an offset, and a soft minimum (between the minimum and
    the mean): per_cell (n, cells) cosines, inside (n, cells) the crop's cells, cells (n,) how many."""
    worst = per_cell.masked_fill(~inside, 2.0).min(1).values
    soft_worst = -0.1 * torch.log((torch.exp(-per_cell / 0.1) * inside).sum(1) / cells)
    return worst, soft_worst


def feature_layers(config: ModelConfig) -> tuple[nn.Sequential, nn.Sequential]:
    """The siamese trunk (ResNet stem, layer1, layer2: stride 8) and its projection to the correlated features.
    Batch-normalized before the L2 norm: centred features, so that cosines are not all near 1."""
    trunk = resnet_trunk(config.arch.removeprefix("siamese-"), layers=2)
    project = nn.Sequential(nn.Conv2d(LAYER_WIDTHS[1], config.feature_dim, kernel_size=1, bias=False),
                            nn.BatchNorm2d(config.feature_dim))
    return trunk, project


class SoftArgmax(nn.Module):
    """The expected offset under softmax(scale * scores) over the allowed offsets, in cells."""

    def __init__(self, scale: float = 20.0):
        super().__init__()
        self.log_scale = nn.Parameter(torch.tensor(float(scale)).log())  # learnt sharpness

    def forward(self, matches: Matches) -> torch.Tensor:
        logits = (matches.scores * self.log_scale.exp()).masked_fill(~matches.allowed, -1e4)
        return logits.softmax(1) @ matches.offsets  # (B, h*w) @ (h*w, 2) -> (B, 2) cells


def mlp(inputs: int, hidden: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, outputs))


class SiameseCropNet(nn.Module):
    """One ResNet trunk (stem, layer1, layer2: stride 8) applied to each image; the crop's
    L2-normalized features are correlated over the original's, both ways (a in b, b in a).

    Input: (B, 8, N, N), both images at one scale on their canvases plus each one's mask
    (`fit_pair(..., masks=True)`). Correlation gives an inductive bias the 6-channel net
    has to learn: a true crop matches everywhere at one offset; another photo, a flip or
    a resized crop do not, and a region past the border has no offset inside the original.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.trunk, self.project = feature_layers(config)
        self.heads = nn.ModuleDict({
            "paired": mlp(2 * STATS, config.head_hidden, 2),  # reads both directions, the better one first
            "swapped": mlp(STATS, config.head_hidden, 1),  # how well one direction fits; compared both ways
            "top_left": SoftArgmax(),
        })
        self.refiner = Refiner(config) if config.refine_zoom else None

    def start_refiner(self) -> None:
        """Start the refining stage from this stage's features: the same correlation, at a closer view."""
        self.refiner.trunk.load_state_dict(self.trunk.state_dict())
        self.refiner.project.load_state_dict(self.project.state_dict())

    def features(self, canvases: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.project(self.trunk(canvases)), dim=1)  # (n, 3, N, N) -> (n, D, N/8, N/8)

    def match_both(self, images: torch.Tensor) -> tuple[Matches, Matches, torch.Tensor]:
        """Matches of a in b and of b in a, and the images' sizes on the canvas ((B, 2, 2): image, (w, h))."""
        batch = images.shape[0]
        features = self.features(torch.cat([images[:, 0:3], images[:, 3:6]]))  # (2B, D, h, w)
        height, width = features.shape[-2:]
        masks = images[:, 6:8]  # (B, 2, N, N)
        sizes = torch.stack([masks[:, :, 0, :].sum(-1), masks[:, :, :, 0].sum(-1)], dim=2)  # images sit top-left
        # A cell belongs to the crop's template when at least half of it lies inside the image.
        # The top-left cell always does, so that a crop smaller than half a cell still has one.
        template = (F.avg_pool2d(masks, STRIDE, ceil_mode=True) >= 0.5).flatten(2).float()  # (B, 2, h*w)
        template = torch.cat([torch.ones_like(template[:, :, :1]), template[:, :, 1:]], 2)
        fa, fb = features[:batch].flatten(2), features[batch:].flatten(2)  # (B, D, h*w)
        similarity = torch.einsum("bdi,bdj->bij", fa, fb)  # (B, cells of a, cells of b)
        index = shift_index(height, width, images.device)
        cell = torch.arange(height * width, device=images.device)
        offsets = torch.stack([cell % width, torch.div(cell, width, rounding_mode="floor")], 1).float()  # (dx, dy)
        offset_px = offsets * STRIDE

        def allowed(crop, original):
            # An offset (rounded to the cell) keeps the crop inside when crop + offset <= original, half a cell spare.
            return torch.all(offset_px[None] + sizes[:, crop, None] <= sizes[:, original, None] + STRIDE / 2, dim=2)

        a_in_b = match(similarity, template[:, 0], allowed(0, 1), index, offsets)
        b_in_a = match(similarity.transpose(1, 2), template[:, 1], allowed(1, 0), index, offsets)
        return a_in_b, b_in_a, sizes

    def forward(self, images: torch.Tensor) -> CropNetOutput:
        return self.answer(*self.match_both(images))  # (B, 8, N, N) -> two directions -> the heads

    def answer(self, a_in_b: Matches, b_in_a: Matches, sizes: torch.Tensor) -> CropNetOutput:
        swapped_logits = torch.cat([self.heads["swapped"](b_in_a.stats), self.heads["swapped"](a_in_b.stats)], 1)
        a_first = (a_in_b.stats[:, :1] >= b_in_a.stats[:, :1])  # order-free: the better-fitting direction first
        best = torch.where(a_first, a_in_b.stats, b_in_a.stats)
        other = torch.where(a_first, b_in_a.stats, a_in_b.stats)
        paired_logits = self.heads["paired"](torch.cat([best, other], 1))
        # The corner as a fraction of the original's size, each direction; mixed by the swapped head's belief.
        corner_a_in_b = self.heads["top_left"](a_in_b) * STRIDE / sizes[:, 1].clamp(min=1)
        corner_b_in_a = self.heads["top_left"](b_in_a) * STRIDE / sizes[:, 0].clamp(min=1)
        # When only one direction fits at all, it is the answer (the size rule); else the swapped head's belief.
        a_fits, b_fits = a_in_b.allowed.any(1, keepdim=True), b_in_a.allowed.any(1, keepdim=True)
        first_is_crop = torch.where(a_fits & ~b_fits, 1.0, torch.where(b_fits & ~a_fits, 0.0,
                                                                        swapped_logits.softmax(1)[:, 1:].detach()))
        top_left = first_is_crop * corner_a_in_b + (1 - first_is_crop) * corner_b_in_a
        return CropNetOutput(paired_logits, swapped_logits, top_left.clamp(0, 1))


def local_maxima_only(maps: torch.Tensor) -> torch.Tensor:
    """(B, h*w): each map of `maps` (B, 1, h, w) where it is the maximum of its 3 x 3 neighbourhood, and
    NOT_A_PEAK elsewhere, flattened: the peaks' ranking for `topk`."""
    local_maxima = maps == F.max_pool2d(maps, 3, stride=1, padding=1)
    return maps.masked_fill(~local_maxima, NOT_A_PEAK).flatten(1)


NOT_A_PEAK = -3.0  # below any cosine, and below any sum of two


def peak_corners(matches: Matches, original_sizes: torch.Tensor, count: int) -> torch.Tensor:
    """(B, count, 2): the offsets of the `count` highest local maxima of a direction's correlation map,
    as fractions of the original's (w, h) `original_sizes` (B, 2); the best first. The soft-argmax
    corner lies between two peaks when a crop fits two places about equally; these are where a
    closer look (the refining stage) can still find it."""
    side = int(round(matches.scores.shape[1] ** 0.5))
    ranked = local_maxima_only(matches.scores.masked_fill(~matches.allowed, -2.0).view(-1, 1, side, side))
    best = ranked.topk(min(count, ranked.shape[1]), dim=1).indices
    return matches.offsets[best] * STRIDE / original_sizes[:, None].clamp(min=1)  # (B, count, 2)


NO_FIT = 1e3  # a residual far above any real one (of normalized pixels): a place that is no fit at all
PIXEL_RADIUS = 24  # view px the pixel fit searches each way around the corners' feature estimate
PIXEL_STATS = 5


def blurred_valid(views: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, 3, S, S) RGB blurred by a 5-tap binomial (about a Gaussian of sigma 1) and (n, 1, S, S) where
    that blur saw image pixels only: views (n, 4, S, S) with their mask channel.

    The blur forgives the half-pixel difference between the crop's and the original's sampling grids
    at a reduced scale (a true crop need not start on a whole view pixel) and most of the JPEG noise,
    while a resized crop drifts by whole pixels across a patch and keeps its residual.
    """
    taps = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], device=views.device, dtype=views.dtype) / 16
    kernel = (taps[:, None] * taps[None, :]).expand(3, 1, 5, 5)
    blurred = F.conv2d(views[:, :3], kernel, padding=2, groups=3)
    valid = F.avg_pool2d(F.pad(views[:, 3:4], (2, 2, 2, 2)), 5, stride=1) > 0.999  # 5 x 5 all image
    return blurred, valid.to(views.dtype)


def gather_regions(views: torch.Tensor, starts: torch.Tensor, side: int) -> torch.Tensor:
    """(n, C, side, side): each view's square from its own (x, y) start `starts` (n, 2), long."""
    steps = torch.arange(side, device=views.device)
    rows = (starts[:, 1, None] + steps)[:, None, :, None]  # (n, 1, side, 1)
    cols = (starts[:, 0, None] + steps)[:, None, None, :]  # (n, 1, 1, side)
    channels = torch.arange(views.shape[1], device=views.device)[None, :, None, None]
    return views[torch.arange(views.shape[0], device=views.device)[:, None, None, None], channels, rows, cols]


def fft_correlation(regions: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """(n, o, o): sum over channels of each region (n, C, L, L) correlated with its kernel, through the
    FFT. Kernels here are nearly as large as their regions, where a direct convolution copies each
    region once per place (a whole crop of 192 x 192 px at 17 x 17 places: about 100 ms a crop,
    measured while a training run shared the CPU). Circular correlation
    at the regions' own size wraps nothing into the places kept. Each region has its own kernel
    (n, C, P, P), or one kernel (1, C, P, P) serves every region. Float64, so that the sums of squares
    it is used for keep their small differences.
    """
    side = regions.shape[-1]
    places = side - kernels.shape[-1] + 1
    spectrum = torch.fft.rfft2(regions.double()) * torch.fft.rfft2(kernels.double(), s=(side, side)).conj()
    return torch.fft.irfft2(spectrum.sum(1), s=(side, side))[:, :places, :places].to(regions.dtype)


def masked_squares(region_rgb: torch.Tensor, region_valid: torch.Tensor, patch_rgb: torch.Tensor,
                   patch_valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each patch (n, 3, P, P) at every place in its own region (n, 3, L, L), over the pixels both have
    (the `valid` masks, (n, 1, ., .)): the summed squared differences and the number of pixels compared,
    (n, o, o) each. Computed as sum r^2 - 2 r.p + p^2, three correlations.
    """
    rgb = region_rgb * region_valid
    kernel = patch_rgb * patch_valid
    squares = (fft_correlation((rgb * rgb).sum(1, keepdim=True), patch_valid) - 2 * fft_correlation(rgb, kernel)
               + fft_correlation(region_valid, (kernel * kernel).sum(1, keepdim=True)))
    return squares, fft_correlation(region_valid, patch_valid)


def mean_step(rgb: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(n,): the texture of each view (n, 3, S, S), the mean squared one-pixel step along x where `valid`."""
    both_valid = valid[..., 1:] * valid[..., :-1]
    step = ((rgb[..., 1:] - rgb[..., :-1]) ** 2 * both_valid).sum((1, 2, 3))
    # Per valid pixel rather than per step counted (a column fewer): the pixel head was trained on this.
    return step / (3 * valid.sum((1, 2, 3))).clamp(min=1)


def pixel_fit(windows: torch.Tensor, patches: torch.Tensor, estimate: torch.Tensor,
              radius: int = PIXEL_RADIUS) -> tuple[torch.Tensor, torch.Tensor]:
    """Fit the crop's two corner patches to their windows pixel by pixel, near the features' estimate.

    windows (B, 2, 4, W, W), patches (B, 2, 4, P, P) as `Refiner` takes them; estimate (B, 2): the
    top-left patch's (x, y) in its window, view px. A true crop's bottom-right patch then lies at
    W - P minus that in its (half-turned) window, so the two are fitted jointly: every place
    within `radius` whole view px is tried for both corners at once, and a resized crop, whose
    corners cannot both fit, keeps a large residual wherever it is put.

    Returns the stats (B, PIXEL_STATS), all logarithms: the mean squared residual of the blurred pixels
    at the best place, the share of the patches that falls off the image there, the worse and the
    better corner's own residual, and the patches' own texture (mean squared one-pixel step); and
    the best place for both corners (B, 2, 2), view px, as `RefineOutput.offsets`.
    """
    batch, _, _, size, _ = windows.shape
    patch = patches.shape[-1]
    radius = min(radius, (size - patch) // 2)  # a window only a little larger than its patch
    side = patch + 2 * radius
    window_rgb, window_valid = blurred_valid(windows.flatten(0, 1))  # (2B, ...): top-left, bottom-right per pair
    patch_rgb, patch_valid = blurred_valid(patches.flatten(0, 1))
    # Where each corner's square of candidate places starts, the bottom-right's mirrored.
    start = (estimate.detach().round().long() - radius).clamp(0, size - side)  # (B, 2)
    starts = torch.stack([start, size - side - start], 1).flatten(0, 1)
    regions = gather_regions(torch.cat([window_rgb, window_valid], 1), starts, side)
    squares, counts = masked_squares(regions[:, :3], regions[:, 3:], patch_rgb, patch_valid)  # (2B, o, o) each
    squares, counts = squares.view(batch, 2, *squares.shape[1:]), counts.view(batch, 2, *counts.shape[1:])
    # The bottom-right's place for top-left place d is the mirror image: flip its map both ways.
    squares[:, 1], counts[:, 1] = squares[:, 1].flip(-1, -2), counts[:, 1].flip(-1, -2)
    joint = squares.sum(1) / (3 * counts.sum(1)).clamp(min=1)  # (B, o, o) per channel and pixel
    possible = patch_valid.view(batch, 2, -1).sum(2).clamp(min=1)  # (B, 2) each patch's comparable pixels
    cover = counts.sum(1) / possible.sum(1)[:, None, None]
    joint = joint + (cover < 0.5) * NO_FIT  # a place where the patches hardly meet the image
    best = joint.flatten(1).argmin(1)
    reach = joint.shape[-1]
    best_y, best_x = torch.div(best, reach, rounding_mode="floor"), best % reach
    pick = torch.arange(batch, device=windows.device)
    each = squares[pick, :, best_y, best_x] / (3 * counts[pick, :, best_y, best_x]).clamp(min=1)  # (B, 2)
    texture = mean_step(patch_rgb, patch_valid).view(batch, 2).min(1).values
    off_image = 1 - cover[pick, best_y, best_x]  # a true crop: 0; a region past the border: its overhang
    stats = torch.stack([joint[pick, best_y, best_x].clamp(max=1e2), off_image, each.max(1).values,
                         each.min(1).values, texture], 1)
    # Logarithms: what tells a true crop from a near miss is a residual or an overhang near 0, against 1e-3 or 5%.
    stats = torch.log(stats.clamp(min=0) + 1e-4)
    top_left = start + torch.stack([best_x, best_y], 1)
    return stats, torch.stack([top_left, size - patch - top_left], 1).to(windows.dtype)


CROP_STATS = 3


def placed_residuals(regions: torch.Tensor, crops: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The whole crop tried at every place over each region (inputs as `crop_fit` takes them): the mean
    squared residual of the blurred pixels at each place (B, o, o), a place where the crop hardly meets
    the image made no fit; the crop's blurred pixels and mask; and how many of its pixels can be compared (B, 1, 1)."""
    region_rgb, region_valid = blurred_valid(regions)
    crop_rgb, crop_valid = blurred_valid(crops)
    squares, counts = masked_squares(region_rgb, region_valid, crop_rgb, crop_valid)  # (B, o, o)
    possible = crop_valid.flatten(1).sum(1).clamp(min=1)[:, None, None]
    residual = squares / (3 * counts).clamp(min=1) + (counts / possible < 0.5) * NO_FIT  # hardly meeting the image
    return residual, crop_rgb, crop_valid, possible


def image_cover(regions: torch.Tensor, crop_valid: torch.Tensor, possible: torch.Tensor) -> torch.Tensor:
    """(B, o, o): the share of the crop's pixels (`placed_residuals`' mask and count) on the image at each place.

    What hangs past the image is counted from 2 px beyond its edge: a true crop against the border can
    overhang its reduced original by a pixel, as the two are reduced on their own grids. Regions past
    the border by less are the pixel fit's to see, at its larger scale."""
    near_image = F.max_pool2d(regions[:, 3:], 5, stride=1, padding=2)
    return fft_correlation(near_image, crop_valid) / possible


def crop_fit(regions: torch.Tensor, crops: torch.Tensor) -> torch.Tensor:
    """Compare the whole crop with the original under it, pixel by pixel, at a reduced scale.

    crops (B, 4, S, S), or (1, 4, S, S) for one crop at B corners: the crop from its top-left, with
    its mask; regions (B, 4, S + 2r, S + 2r):
    the original from r view px before the corner found (`data.crop_fit_views`, r = its
    `CROP_FIT_RADIUS`). The corner patches of `pixel_fit` see a small part of a large crop; here
    every pixel of it is compared, so an edge anywhere inside a resized crop, or a flipped one, shows.
    The crop is tried at every place within r px (2r + 1 on each axis): a resized crop keeps its
    residual wherever it is put, and the corner it is given need not be exact.

    Returns (B, CROP_STATS), logarithms: the mean squared residual of the blurred pixels at the best
    place, the share of the crop off the image there, and the crop's texture.
    """
    residual, crop_rgb, crop_valid, possible = placed_residuals(regions, crops)
    cover = image_cover(regions, crop_valid, possible)
    best = residual.flatten(1).argmin(1, keepdim=True)
    texture = mean_step(crop_rgb, crop_valid).expand(len(regions))  # one crop's is taken once
    stats = torch.stack([residual.flatten(1).gather(1, best)[:, 0].clamp(max=1e2),
                         1 - cover.flatten(1).gather(1, best)[:, 0], texture], 1)
    return torch.log(stats.clamp(min=0) + 1e-4)


def mirror_excess(regions: torch.Tensor, crops: torch.Tensor, fit: torch.Tensor | None = None) -> torch.Tensor:
    """(B,): how much better the crop fits mirrored left to right than as it is, where it was found:
    the log of the ratio of the two residuals `crop_fit` takes (inputs as there; `fit`, the crop's own
    `crop_fit` there when already taken). A flipped crop is not a crop (README), and where one is found
    at the place it was flipped from, its mirror image fits to the noise; a true crop fits there at
    least as well as its mirror image."""
    width = int(crops[:, 3].sum(-1).amax())  # the crop's width in the view, which starts at its top-left
    mirrored = crops.clone()
    mirrored[..., :width] = crops[..., :width].flip(-1)
    own = crop_fit(regions, crops) if fit is None else fit
    return own[:, 0] - crop_fit(regions, mirrored)[:, 0]


def inside_fit(regions: torch.Tensor, crops: torch.Tensor,
               min_cover: float = 0.99) -> tuple[torch.Tensor, torch.Tensor]:
    """Where the whole crop fits each region best among the places where at least `min_cover` of it lies on
    the image (`image_cover`; inputs as `crop_fit`): the place (B, 2), (x, y) view px from the region's start,
    and its residual (B,), as the logarithm `crop_fit` gives it, infinite where no place qualifies. A place
    mostly past the image would compare few pixels and could fit by chance. Where the crop's corners are
    flat, the refining stage's corner patches can settle tens of px off; every pixel of the crop together
    rarely does."""
    residual, _, crop_valid, possible = placed_residuals(regions, crops)
    residual = residual + (image_cover(regions, crop_valid, possible) < min_cover) * NO_FIT  # (B, o, o)
    least, best = residual.flatten(1).min(1)
    width = residual.shape[-1]
    places = torch.stack([best % width, torch.div(best, width, rounding_mode="floor")], 1)
    logs = torch.log(least.clamp(min=0, max=1e2) + 1e-4)
    return places, torch.where(least < NO_FIT, logs, torch.inf)  # no fit, here or in placed_residuals


class RefineOutput(NamedTuple):
    paired_logits: torch.Tensor  # (B, 2): [not a crop, crop], judged from the closer view
    offsets: torch.Tensor  # (B, 2 corners, 2): where each corner patch lies in its window, (x, y) view px


REFINE_STATS = 6


class Refiner(nn.Module):
    """The refining stage: a closer look at the two corners the first stage proposes.

    The first stage sees the pair at one small scale (a cell of its features is 8 of its
    160 px), too coarse to pin a corner down or to see that a crop was resized. This stage
    sees both of the crop's corners (top-left, and bottom-right turned half a turn) at a
    larger scale: the crop's corner patch is correlated over a window of the original around
    where that corner should be. A true crop fits in both windows, at one and the same place;
    a resized crop's two corners disagree by its change of size, a region past the border
    finds no image under one corner, a flipped or foreign crop fits neither well.

    Input: windows (B, 2, 4, W, W) and patches (B, 2, 4, P, P) from `data.refine_views`
    (RGB and a mask of where the image is).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.trunk, self.project = feature_layers(config)  # as the first stage's, and started from them
        self.soft_argmax = SoftArgmax()
        # Reads both corners' fit and how far their two places disagree.
        self.paired = mlp(2 * REFINE_STATS + 3, config.head_hidden, 2)
        if config.refine_pixels:
            # Reads the pixel fit (`pixel_fit`); its say is added to the features', and starts at nothing,
            # so that it can be added to a trained stage without changing what that stage answers.
            self.pixel_paired = mlp(PIXEL_STATS, config.head_hidden, 2)
            nn.init.zeros_(self.pixel_paired[-1].weight)
            nn.init.zeros_(self.pixel_paired[-1].bias)
        if config.refine_crop_side:
            # Reads the whole crop's fit (`crop_fit`) where this stage put the corner; added in the same way.
            self.crop_paired = mlp(CROP_STATS, config.head_hidden, 2)
            nn.init.zeros_(self.crop_paired[-1].weight)
            nn.init.zeros_(self.crop_paired[-1].bias)

    def crop_logits(self, fit: torch.Tensor) -> torch.Tensor:
        """(B, 2): what the whole crop's fit (`crop_fit`, (B, CROP_STATS)) adds to `forward`'s paired
        logits, at the corner that gave its regions. A separate step, since the regions are cut where
        `forward`'s offsets put the corner.

        Answering (eval mode) it can only take away, a veto: it lowers the "crop" logit where the whole
        crop does not fit, and never raises it. Allowed to add, the head lifted regions just past the
        border that the pixel fit had rejected (validation photos: border 0.980 -> 0.922; it is trained
        at simulated corners, not at the ones the refining stage finds); as a veto it kept 0.980 there
        and the gain on resized flat crops (docs/network.md). Training adds it whole: a veto from the
        start never learnt, as its head starts silent at a margin of 0 and one step towards "crop"
        left no gradient (measured: a 3-epoch run that stayed at its first step). Trained at the corners
        answering really finds (train --stage crop-mined), added whole it again let regions past the border
        through; `config.refine_crop_adds` says to add it anyway.
        """
        logits = self.crop_paired(fit)
        # Training adds it (the crop-fit and crop-mined stages train this head alone, the rest in eval mode);
        # answering adds it only where the checkpoint says so (ModelConfig.refine_crop_adds).
        if self.crop_paired.training or self.config.refine_crop_adds:
            return logits
        veto = (logits[:, 1] - logits[:, 0]).clamp(max=0)
        return torch.stack([torch.zeros_like(veto), veto], 1)

    def scan(self, wholes: torch.Tensor, patches: torch.Tensor, reach: tuple[float, float], count: int) -> torch.Tensor:
        """(n <= count, 2): the crop's top-left (x, y) in view px at the `count` best places over the whole
        original, best first; for when the first stage's candidates all miss (flat art: docs/network.md).

        wholes (2, 4, H, W) and patches (2, 4, P, P) from `data.scan_views`: the original and the crop's
        top-left patch, and both half-turned for the bottom-right corner. `reach` (x, y): how far the
        crop's top-left can lie from the original's, view px. Each corner's patch is correlated with
        its whole view, as `forward` does in a window; a true crop's two corners fit at mirrored places,
        so the two maps are read together: the bottom-right's at (reach - place), turned back.
        """
        # One view at a time: a whole original is many windows' worth of activations.
        whole_features = torch.cat([self.features(whole[None])[0] for whole in wholes])
        patch_features, patch_cells = self.features(patches)
        _, dim, height, width = whole_features.shape
        scores = F.conv2d(whole_features.reshape(1, 2 * dim, height, width), patch_features, groups=2)[0]
        scores = scores / patch_cells.flatten(1).sum(1).clamp(min=1)[:, None, None]  # (2, o_h, o_w) mean cosines
        last_x = min(int(reach[0] // STRIDE), scores.shape[2] - 1)  # places that keep the crop inside
        last_y = min(int(reach[1] // STRIDE), scores.shape[1] - 1)
        xs, ys = torch.arange(last_x + 1, device=scores.device), torch.arange(last_y + 1, device=scores.device)
        turned_x = (reach[0] / STRIDE - xs).round().long().clamp(0, scores.shape[2] - 1)
        turned_y = (reach[1] / STRIDE - ys).round().long().clamp(0, scores.shape[1] - 1)
        joint = scores[0, :last_y + 1, :last_x + 1] + scores[1][turned_y][:, turned_x]
        ranked = local_maxima_only(joint[None, None])[0]
        best = ranked.topk(min(count, int((ranked > NOT_A_PEAK).sum()))).indices  # peaks only
        row, col = torch.div(best, last_x + 1, rounding_mode="floor"), best % (last_x + 1)
        return torch.stack([col, row], 1).to(wholes.dtype) * STRIDE

    def features(self, views: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """L2-normalized features, zero where the image is not, and that mask: (n, D, S/8, S/8), (n, 1, S/8, S/8).

        A cell is the image's when at least half of it is. The top-left cell always is (views start at the
        corner of a patch): a crop smaller than half a cell at this scale still has one to compare.
        """
        cells = (F.avg_pool2d(views[:, 3:4], STRIDE) >= 0.5).float()
        cells[:, :, 0, 0] = torch.maximum(cells[:, :, 0, 0], (views[:, 3, 0, 0] > 0).float()[:, None])
        trunk = self.trunk[STEM:](stem_in_bands(self.trunk[:STEM], views[:, :3]))
        return F.normalize(self.project(trunk), dim=1) * cells, cells

    def forward(self, windows: torch.Tensor, patches: torch.Tensor, regions: torch.Tensor | None = None,
                crops: torch.Tensor | None = None) -> RefineOutput:
        """`regions` and `crops` (see `crop_logits`), when given, add the whole crop's fit to the decision."""
        batch = windows.shape[0]
        window_features, window_cells = self.features(windows.flatten(0, 1))  # (2B, D, w, w)
        patch_features, patch_cells = self.features(patches.flatten(0, 1))  # (2B, D, p, p)
        n, dim, size, _ = window_features.shape
        side = patch_features.shape[-1]
        cells = patch_cells.flatten(1).sum(1).clamp(min=1)  # (2B,)
        # Each patch is correlated over its own window: one group per corner of each pair.
        correlation = F.conv2d(window_features.reshape(1, n * dim, size, size), patch_features, groups=n)[0]
        scores = correlation / cells[:, None, None]  # (2B, o, o): mean cosine of the patch's cells at each offset
        cover = F.conv2d(window_cells.reshape(1, n, size, size), patch_cells, groups=n)[0] / cells[:, None, None]
        reach = scores.shape[-1]
        flat = scores.flatten(1)  # (2B, o*o), row-major (dy, dx)
        place = torch.arange(reach * reach, device=scores.device)
        grid = torch.stack([place % reach, torch.div(place, reach, rounding_mode="floor")], 1).to(flat.dtype)
        every = torch.ones_like(flat, dtype=torch.bool)  # every offset keeps the patch inside its window
        offsets = self.soft_argmax(Matches(flat, every, grid, flat[:, :0])) * STRIDE  # (2B, 2) view px

        peak, best = flat.max(1)
        best_y, best_x = torch.div(best, reach, rounding_mode="floor"), best % reach
        # Every cell of a true crop's patch fits at its offset: the worst cell there says what the mean hides.
        rows = best_y[:, None, None] + torch.arange(side, device=scores.device)[None, :, None]  # (2B, p, 1)
        cols = best_x[:, None, None] + torch.arange(side, device=scores.device)[None, None, :]  # (2B, 1, p)
        under = window_features[torch.arange(n, device=scores.device)[:, None, None], :, rows, cols]  # (2B, p, p, D)
        per_cell = (under * patch_features.permute(0, 2, 3, 1)).sum(-1)  # (2B, p, p)
        worst, soft_worst = worst_cells(per_cell.flatten(1), patch_cells.flatten(1) > 0, cells)
        cover_at_best = cover.flatten(1).gather(1, best[:, None])[:, 0]  # a region past the border: below 1
        stats = torch.stack([peak, peak - flat.mean(1), worst, soft_worst, cover_at_best, torch.log(cells) / 4],
                            1).view(batch, 2 * REFINE_STATS)
        # A true crop's two corners sit at mirrored places about the windows' centres (see refine_views).
        centre = (self.config.refine_window - self.config.refine_patch) / 2
        pair_offsets = offsets.view(batch, 2, 2)
        disagreement = (pair_offsets[:, 0] + pair_offsets[:, 1] - 2 * centre) / STRIDE  # (B, 2) cells
        paired_logits = self.paired(torch.cat([stats, disagreement, disagreement.norm(dim=1, keepdim=True)], 1))
        if self.config.refine_pixels:
            estimate = (pair_offsets[:, 0] + 2 * centre - pair_offsets[:, 1]) / 2  # both corners' word on the top-left
            pixel_stats, fitted = pixel_fit(windows, patches, estimate)
            paired_logits = paired_logits + self.pixel_paired(pixel_stats)
            if not self.training:  # the answer's corner is the pixel fit; training's loss is on the soft-argmax
                pair_offsets = fitted
        if regions is not None:
            paired_logits = paired_logits + self.crop_logits(crop_fit(regions, crops))
        return RefineOutput(paired_logits, pair_offsets)
