"""The small CNN of the usual FER-2013 notebooks: the baseline every other model must beat.

Four conv layers with max-pooling and dropout, then a wide dense layer, as in the Keras
tutorials that reach 60-66% on FER-2013.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from emolens.models.registry import register_model


class SimpleCNN(nn.Module):
    def __init__(self, num_classes: int = 7, in_chans: int = 1, input_size: int = 48, dropout: float = 0.5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, 32, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2), nn.Dropout(0.25),
            nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(128, 128, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2), nn.Dropout(0.25),
        )
        side = input_size // 8  # three 2x pools
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(128 * side * side, 1024), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(1024, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, num_classes)
        return self.head(self.features(x))


@register_model
def simple_cnn(**kwargs) -> SimpleCNN:
    return SimpleCNN(**kwargs)
