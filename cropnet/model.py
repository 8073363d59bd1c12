"""The network: a torchvision ResNet trunk over a 6-channel pair, and three heads.

Imports only torch and torchvision and knows nothing of files or the CLI.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torchvision
from torch import nn

from .config import ModelConfig


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
        resnet = getattr(torchvision.models, config.arch)(weights=None)
        # The one change to the trunk: conv1 reads both RGB images stacked (6 channels).
        resnet.conv1 = nn.Conv2d(6, 64, kernel_size=7, stride=2, padding=3, bias=False)
        # Everything up to layer4; ResNet's avgpool and fc are replaced by the heads.
        self.trunk = nn.Sequential(
            resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool,
            resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4,
        )
        features = resnet.fc.in_features
        self.heads = nn.ModuleDict({
            "paired": Head(features, config),
            "swapped": Head(features, config),
            "top_left": Head(features, config),
        })
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision initializes the trunk; conv1 is new, so give it the same He init.
        nn.init.kaiming_normal_(self.trunk[0].weight, mode="fan_out", nonlinearity="relu")
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
