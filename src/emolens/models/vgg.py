"""A VGG-style network for 48x48 faces, after Khaireddin & Chen (2021), 73.28% on FER-2013.

Four stages of two 3x3 conv-BN-ReLU layers and a 2x max-pool, then two dense layers. Global
average pooling replaces the flatten so any input size works and the weights stay small.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from emolens.models.registry import register_model


def _stage(cin: int, cout: int, depth: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Conv2d(cin if i == 0 else cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
    layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class VGGFer(nn.Module):
    def __init__(
        self,
        num_classes: int = 7,
        in_chans: int = 1,
        widths: tuple[int, ...] = (64, 128, 256, 512),
        depth: int = 2,  # conv layers per stage; the paper uses 2
        hidden: int = 512,
        dropout: float = 0.4,
        input_size: int = 48,  # accepted for a uniform interface; pooling makes it irrelevant
    ):
        super().__init__()
        chans = (in_chans, *widths)
        self.features = nn.Sequential(*[_stage(chans[i], chans[i + 1], depth) for i in range(len(widths))])
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
            nn.Linear(widths[-1], hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, 48, 48) -> (B, num_classes)
        return self.head(self.features(x))  # features: (B, widths[-1], 3, 3)


@register_model
def vgg_fer(**kwargs) -> VGGFer:
    return VGGFer(**kwargs)


@register_model
def vgg_fer_small(**kwargs) -> VGGFer:
    """Half the width: a quarter of the compute, for CPU training and fast inference."""
    kwargs.setdefault("widths", (32, 64, 128, 256))
    kwargs.setdefault("hidden", 256)
    return VGGFer(**kwargs)
