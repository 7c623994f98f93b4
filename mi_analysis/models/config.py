"""The model's settings: one frozen record that the builder takes (see models.builder)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    arch: str = "resnet32"
    num_modules: int = 1  # K; 1 = end-to-end
    context: str = "R0"  # R0 = plain greedy local learning
    local_loss: str = "cross_entropy"  # or "contrast"
    aux_head: str = "1c2f"
    split: str = "equal"  # or "balanced"
    reconstruct: bool = False  # InfoPro's decoder term in the local loss
    aux_widen: float = 1.0
    aux_feature_dim: int = 128
    lambdas: tuple[float, float, float, float] | None = None  # (lx1, ly1, lx2, ly2); None = paper default
    recompute_context: bool = False  # recompute context encoders in backward (less memory, same grads)
