"""The paper's reference implementation (github.com/Tab-ct/ContSup) as a benchmark runner.

Nothing of it ships with this package: `mi-analysis bench train --reference PATH` imports
`networks_dev.resnet` from a local copy at PATH (a clone of that repository). Its ResNet builds
and trains a K-module network in one call, `model(img, target)`, back-propagating each local
loss inside the forward, as its train.py does between optimizer.zero_grad() and step(). Its
`.cuda()` calls (the image statistics of its unused decoder path) are made no-ops so that it runs
on the CPU; on CUDA the model and batch are moved as usual. Settings as in its command.sh for
the paper's Table 1: ResNet-32, cross-entropy local loss, aux head 1c2f, widen 1, feature dim
128, no reconstruction (the loss weights ixx/ixy are then unused).
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from pathlib import Path
from typing import Iterator

import torch
from torch import nn


@contextlib.contextmanager
def _cuda_calls_are_no_ops(device: torch.device) -> Iterator[None]:
    if device.type == "cuda":
        yield
        return
    tensor_cuda, module_cuda = torch.Tensor.cuda, nn.Module.cuda
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    nn.Module.cuda = lambda self, *args, **kwargs: self
    try:
        yield
    finally:
        torch.Tensor.cuda, nn.Module.cuda = tensor_cuda, module_cuda


def _resnet_module(path: Path):
    if not (path / "networks_dev" / "resnet.py").is_file():
        raise ValueError(f"--reference {path} is not a copy of Tab-ct/ContSup: it has no networks_dev/resnet.py")
    sys.path.insert(0, str(path))
    try:
        return importlib.import_module("networks_dev.resnet")
    finally:
        sys.path.remove(str(path))


class ReferenceNet(nn.Module):
    """The reference ResNet behind the `training_step(x, y)` call of the benchmark's runners."""

    def __init__(self, path: str | Path, arch: str, num_modules: int, context: str, batch_size: int,
                 image_size: int, device: torch.device):
        super().__init__()
        module = _resnet_module(Path(path))
        if not hasattr(module, arch):
            raise ValueError(f"--reference has no architecture {arch!r}")
        with _cuda_calls_are_no_ops(device):
            self.net = getattr(module, arch)(
                local_module_num=num_modules, batch_size=batch_size, image_size=image_size, dataset="cifar10",
                class_num=10, wide_list=(16, 16, 32, 64), aux_net_config="1c2f", local_loss_mode="cross_entropy",
                aux_net_widen=1, aux_net_feature_dim=128, context_mode=context, h_reconstruct=False)
        self.device = device

    def training_step(self, x: torch.Tensor, y: torch.Tensor, *, autocast_dtype=None) -> None:
        if autocast_dtype is not None:
            raise ValueError("the reference implementation runs in float32 only here (no --bf16)")
        self.net.train()
        with _cuda_calls_are_no_ops(self.device):
            self.net(img=x, target=y)
