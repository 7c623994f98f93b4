"""Cost of a model: forward FLOPs per image and the measured activation memory of a training step."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from mi_analysis.memory import SavedTensorMeter, tensor_bytes


def forward_flops_per_image(model: torch.nn.Module, input_shape: tuple[int, ...]) -> int:
    """FLOPs (multiply and add counted separately) of one inference forward pass, batch of one."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, *input_shape, device=next(model.parameters()).device))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def training_step_memory(model: Any, batch_size: int, input_shape: tuple[int, ...], num_classes: int,
                         seed: int = 0) -> dict[str, int]:
    """Peak bytes saved for backward during one `training_step` (parameters excluded), next to
    parameter bytes. Gradients are cleared afterwards; BN running stats are restored."""
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch_size, *input_shape, generator=generator).to(device)
    y = torch.randint(0, num_classes, (batch_size,), generator=generator).to(device)
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    was_training = model.training
    model.train()
    try:
        with SavedTensorMeter(exclude=model.parameters()) as meter:
            model.training_step(x, y)
    finally:
        model.load_state_dict(buffers)
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return {
        "batch_size": batch_size,
        "peak_saved_bytes": meter.peak_bytes,
        "parameter_bytes": tensor_bytes(model.parameters()),
    }
