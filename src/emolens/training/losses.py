"""Losses on target distributions, and mixup/cutmix.

Every target reaching the loss is a distribution (B, C): one-hot labels, FER+ vote shares, or
a mix of two of those. That lets one loss serve hard labels, soft labels, label smoothing,
mixup and cutmix alike.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from emolens.training.config import AugConfig, ImbalanceConfig, LossConfig


def class_weights(counts: np.ndarray, power: float = 1.0) -> torch.Tensor:
    """sklearn's 'balanced' weights n / (C * n_c), raised to `power`, scaled to mean 1 over seen classes.

    A class absent from training gets weight 0: it has no examples to weigh.
    """
    counts = np.asarray(counts, dtype=np.float64)
    seen = counts > 0
    w = np.zeros_like(counts)
    w[seen] = (counts.sum() / (seen.sum() * counts[seen])) ** power
    w[seen] /= w[seen].mean()
    return torch.tensor(w, dtype=torch.float32)


class DistributionLoss(torch.nn.Module):
    """Cross-entropy (or focal loss) against target distributions (B, C), with optional class weights.

    With weights, each example counts by the weight of its target (sum_c w_c t_c), and the mean
    is taken over those weights, as `F.cross_entropy(weight=...)` does for hard labels.
    """

    def __init__(self, label_smoothing: float = 0.0, weights: torch.Tensor | None = None, focal_gamma: float = 0.0):
        super().__init__()
        self.label_smoothing = label_smoothing
        self.focal_gamma = focal_gamma
        self.register_buffer("weights", weights if weights is not None else torch.empty(0), persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float()  # (B, C); the loss in fp32 even under autocast
        C = logits.shape[1]
        if self.label_smoothing:
            target = target * (1.0 - self.label_smoothing) + self.label_smoothing / C
        logp = F.log_softmax(logits, dim=1)
        per_class = -target * logp  # (B, C)
        if self.focal_gamma:
            per_class = per_class * (1.0 - logp.exp()).pow(self.focal_gamma)
        if self.weights.numel():
            per_class = per_class * self.weights
            norm = (target * self.weights).sum()
            return per_class.sum() / norm.clamp_min(1e-12)
        return per_class.sum(1).mean()


def make_loss(loss_cfg: LossConfig, imbalance: ImbalanceConfig, train_counts: np.ndarray) -> DistributionLoss:
    strategy = imbalance.strategy
    weights = class_weights(train_counts, imbalance.weight_power) if strategy in ("class_weights", "focal") else None
    gamma = imbalance.focal_gamma if strategy == "focal" else 0.0
    return DistributionLoss(loss_cfg.label_smoothing, weights, gamma)


def mix_batch(x: torch.Tensor, target: torch.Tensor, aug: AugConfig, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup or cutmix of a batch with a shuffled copy of itself; targets mixed by the same share.

    x (B, 1, H, W), target (B, C). Returns both unchanged when mixing is off or not drawn.
    All draws come from `g` (a CPU generator), so mixing is reproducible.
    """
    use = [k for k, a in (("mixup", aug.mixup_alpha), ("cutmix", aug.cutmix_alpha)) if a > 0]
    if not use or x.shape[0] < 2 or torch.rand(1, generator=g).item() >= aug.mix_prob:
        return x, target
    kind = use[int(torch.randint(len(use), (1,), generator=g).item())]
    alpha = aug.mixup_alpha if kind == "mixup" else aug.cutmix_alpha
    # Beta(a, a) from two Gammas, drawn with our generator (torch.distributions has no generator argument).
    ga = torch._standard_gamma(torch.full((2,), float(alpha)), generator=g)
    lam = float(ga[0] / ga.sum())
    perm = torch.randperm(x.shape[0], generator=g).to(x.device)
    if kind == "mixup":
        x = x * lam + x[perm] * (1.0 - lam)
    else:
        H, W = x.shape[-2:]
        cut = (1.0 - lam) ** 0.5
        h, w = int(round(H * cut)), int(round(W * cut))
        cy, cx = int(torch.randint(H, (1,), generator=g)), int(torch.randint(W, (1,), generator=g))
        y0, y1 = max(0, cy - h // 2), min(H, cy + h // 2)
        x0, x1 = max(0, cx - w // 2), min(W, cx + w // 2)
        x = x.clone()
        x[:, :, y0:y1, x0:x1] = x[perm][:, :, y0:y1, x0:x1]
        lam = 1.0 - (y1 - y0) * (x1 - x0) / (H * W)  # the share actually kept
    return x, target * lam + target[perm] * (1.0 - lam)


def distillation_loss(student_logits: torch.Tensor, teacher_logits: list[torch.Tensor], temperature: float) -> torch.Tensor:
    """KL divergence from the teachers' mean softened distribution to the student's (Hinton et al. 2015).

    Scaled by T^2 so that the gradients keep their size whatever the temperature, and the
    `distill.alpha` mix with the label loss means the same thing at every T.
    """
    T = float(temperature)
    p_teacher = torch.stack([F.softmax(z.float() / T, dim=1) for z in teacher_logits]).mean(0)  # (B, C)
    log_student = F.log_softmax(student_logits.float() / T, dim=1)
    kl = (p_teacher * (p_teacher.clamp_min(1e-12).log() - log_student)).sum(1)
    return kl.mean() * (T * T)
