"""Reader for the IDX files of MNIST and Fashion-MNIST, plain or gzip-compressed.

IDX layout (big-endian): two zero bytes, a type code (0x08 = uint8), the number of dimensions
d, then d uint32 sizes, then the values in C order.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import torch

IDX_FILES: tuple[str, ...] = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_UINT8 = 0x08


def read_idx(path: Path) -> torch.Tensor:
    """The uint8 array stored in an IDX file (.gz read through gzip)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as err:  # gzip: BadGzipFile, EOFError when truncated
        raise ValueError(f"{path} cannot be read, it is corrupt or truncated ({str(err) or type(err).__name__}); "
                         "replace it with a fresh copy") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path} is not an IDX file (bad magic number)")
    if data[2] != _UINT8:
        raise ValueError(f"{path}: only uint8 IDX files are supported, got type code {data[2]:#04x}")
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = tuple(int(s) for s in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape))
    if len(data) - header != expected:
        raise ValueError(f"{path}: header says shape {shape} ({expected} values), file holds {len(data) - header}")
    return torch.from_numpy(np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy())


def find_idx_files(directory: Path) -> dict[str, Path]:
    """The IDX files that lie directly in `directory`, by base name (a plain file wins over .gz)."""
    found = {}
    for name in IDX_FILES:
        for candidate in (directory / name, directory / f"{name}.gz"):
            if candidate.is_file():
                found[name] = candidate
                break
    return found
