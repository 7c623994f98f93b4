"""Local and final losses: cross-entropy and supervised contrastive (SupCon).

SupCon follows Khosla et al. (2020), "Supervised Contrastive Learning", with a
single view per sample, as used by InfoPro and ContSup for local heads: for an
anchor i with positives P(i) = {p != i : y_p = y_i} in the batch,

    loss_i = -(T / T_base) * mean_{p in P(i)} log( exp(z_i.z_p / T) / sum_{a != i} exp(z_i.z_a / T) )

with z the L2-normalised features, T = T_base = 0.07. The loss is the mean over
anchors that have at least one positive. (The reference code counts anchors
without positives as zero in that mean, which shrinks the loss of batches with
rare classes; here they are left out.) A batch where no anchor has a positive
gives 0, connected to the graph so backward still runs, never NaN.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

LOCAL_LOSSES = ("cross_entropy", "contrast")

_EXCLUDED = -1e9  # logit given to the anchor itself, far below any z.z / T


def cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy in nats; logits (B, classes), labels int64 (B,). Computed in float32."""
    return F.cross_entropy(logits.float(), labels)


def supervised_contrastive(features: Tensor, labels: Tensor, *, temperature: float = 0.07,
                           base_temperature: float = 0.07) -> Tensor:
    """SupCon loss of features (B, D) (normalised here) with labels (B,); scalar float32."""
    if features.dim() != 2:
        raise ValueError(f"features must be (batch, dim), got shape {tuple(features.shape)}")
    if labels.shape != features.shape[:1]:
        raise ValueError(f"labels must have shape ({features.shape[0]},), got {tuple(labels.shape)}")
    # float32 outside autocast: logits reach 1/T = 14, too coarse in bfloat16
    with torch.autocast(features.device.type, enabled=False):
        z = F.normalize(features.float(), dim=1)
        logits = z @ z.T / temperature                                   # (B, B)
        self_pair = torch.eye(len(z), dtype=torch.bool, device=z.device)
        # a finite fill (not -inf) keeps a batch of one sample free of NaN gradients
        log_denominator = torch.logsumexp(logits.masked_fill(self_pair, _EXCLUDED), dim=1,
                                          keepdim=True)
        positives = (labels[:, None] == labels[None, :]) & ~self_pair    # (B, B)
        log_prob = torch.where(positives, logits - log_denominator, torch.zeros_like(logits))
        num_positives = positives.sum(1)
        has_positive = (num_positives > 0).float()
        # masked means instead of boolean indexing: no host-device sync per step
        mean_log_prob = log_prob.sum(1) / num_positives.clamp(min=1)
        mean_over_anchors = (mean_log_prob * has_positive).sum() / has_positive.sum().clamp(min=1)
        return -(temperature / base_temperature) * mean_over_anchors
