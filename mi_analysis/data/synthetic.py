"""A synthetic, class-conditional image set with a known generative rule.

Class c owns an oriented sinusoidal grating: orientation theta_c = pi * c / num_classes,
frequency r_c ~ U(2, 5) cycles per image and a colour w_c (a random vector over the channels,
scaled so that its largest |entry| is 1); these are drawn once from data_seed. An image of
class c, with pixel coordinates (u, v) in [0, 1) and values on the 0..1 scale, is

    0.5 + a * w_c * cos(2 pi r_c (u cos theta_c + v sin theta_c) + phi)
        + 0.15 * w' * cos(2 pi r' (u cos theta' + v sin theta') + phi')
        + noise * N(0, 1)

clipped to [0, 1] and quantised to uint8, with a ~ U(0.15, 0.3), phase phi ~ U(0, 2 pi) and a
distractor grating (theta' ~ U(0, pi), r' ~ U(2, 5), phase phi', colour w') drawn afresh for
every image. The random phase makes every class-mean image flat, so a linear read-out of the
pixels can only use the sign of a phase projection and stays far from perfect (about 45% for
10 classes with the defaults), while the grating's frequency and orientation, e.g. Fourier
magnitudes, name the class (above 95%); the distractor and the noise keep that from being
trivial, and a small convolutional network learns it. Classes are balanced exactly. Train and
test images come from independent streams of data_seed, so both are fixed by data_seed alone
(the experiment seed only moves the validation split and the loader).
"""

from __future__ import annotations

import math
from types import MappingProxyType

import torch

from mi_analysis.data.records import ImageTensors
from mi_analysis.data.sampling import torch_generator

SYNTHETIC_OPTIONS = MappingProxyType(
    {
        "num_train": 5000,
        "num_test": 1000,
        "num_classes": 10,
        "in_channels": 3,
        "noise": 0.2,
        "data_seed": 0,
    }
)
_DISTRACTOR_AMPLITUDE = 0.15
_AMPLITUDE_RANGE = (0.15, 0.3)
_FREQUENCY_RANGE = (2.0, 5.0)  # cycles per image
_CHUNK = 256  # images per vectorised draw; fixed, so the random stream never depends on memory


def read_synthetic(
    image_size: int, *, num_train: int, num_test: int, num_classes: int, in_channels: int, noise: float, data_seed: int
) -> tuple[ImageTensors, ImageTensors]:
    check_synthetic_options(
        num_train=num_train,
        num_test=num_test,
        num_classes=num_classes,
        in_channels=in_channels,
        noise=noise,
        data_seed=data_seed,
    )
    template = torch_generator(data_seed, 0)
    orientation = math.pi * torch.arange(num_classes, dtype=torch.float64) / num_classes
    frequency = _uniform(num_classes, _FREQUENCY_RANGE, template)
    colour = _colours(num_classes, in_channels, template)
    classes = (orientation, frequency, colour)
    train = _sample(num_train, image_size, classes, float(noise), torch_generator(data_seed, 1))
    test = _sample(num_test, image_size, classes, float(noise), torch_generator(data_seed, 2))
    return train, test


def check_synthetic_options(**options: object) -> None:
    """ValueError unless every option of SYNTHETIC_OPTIONS given here has a valid value."""
    lowest = {"num_train": 1, "num_test": 1, "num_classes": 2, "in_channels": 1, "data_seed": 0}
    for option, low in lowest.items():
        value = options.get(option, low)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"synthetic option {option} must be an integer >= {low}, got {value!r}")
    noise = options.get("noise", 0.0)
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not 0 <= noise < math.inf:
        raise ValueError(f"synthetic option noise must be a finite number >= 0, got {noise!r}")


def _sample(
    count: int,
    size: int,
    classes: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    noise: float,
    generator: torch.Generator,
) -> ImageTensors:
    orientation, frequency, colour = classes
    num_classes, channels = colour.shape
    labels = (torch.arange(count) % num_classes)[torch.randperm(count, generator=generator)]
    amplitude = _uniform(count, _AMPLITUDE_RANGE, generator)
    phase = _uniform(count, (0.0, 2 * math.pi), generator)
    distractor_orientation = _uniform(count, (0.0, math.pi), generator)
    distractor_frequency = _uniform(count, _FREQUENCY_RANGE, generator)
    distractor_phase = _uniform(count, (0.0, 2 * math.pi), generator)
    distractor_colour = _colours(count, channels, generator)
    signal = amplitude[:, None] * colour[labels]  # (count, channels)
    distractor = _DISTRACTOR_AMPLITUDE * distractor_colour
    chunks = []
    for start in range(0, count, _CHUNK):
        part = slice(start, start + _CHUNK)
        rows = labels[part]
        pixels = 0.5 + _grating(orientation[rows], frequency[rows], phase[part], signal[part], size)
        pixels += _grating(
            distractor_orientation[part], distractor_frequency[part], distractor_phase[part], distractor[part], size
        )
        pixels += noise * torch.randn(pixels.shape, generator=generator)
        chunks.append((pixels.clamp(0, 1) * 255).round().to(torch.uint8))
    return ImageTensors(torch.cat(chunks), labels)


def _grating(
    orientation: torch.Tensor, frequency: torch.Tensor, phase: torch.Tensor, weight: torch.Tensor, size: int
) -> torch.Tensor:
    """weight (B, C) * cos(2 pi f (u cos t + v sin t) + phase) -> (B, C, size, size), float32."""
    coordinate = torch.arange(size, dtype=torch.float64) / size
    v, u = torch.meshgrid(coordinate, coordinate, indexing="ij")  # v: row, u: column
    direction = torch.cos(orientation)[:, None, None] * u + torch.sin(orientation)[:, None, None] * v
    wave = torch.cos(2 * math.pi * frequency[:, None, None] * direction + phase[:, None, None])  # (B, H, W)
    return weight.float()[:, :, None, None] * wave.float()[:, None]


def _colours(count: int, channels: int, generator: torch.Generator) -> torch.Tensor:
    raw = torch.randn(count, channels, generator=generator, dtype=torch.float64)
    return raw / raw.abs().amax(dim=1, keepdim=True)


def _uniform(count: int, bounds: tuple[float, float], generator: torch.Generator) -> torch.Tensor:
    low, high = bounds
    return low + (high - low) * torch.rand(count, generator=generator, dtype=torch.float64)
