"""Row chunks of a feature matrix X for the torch L2-SVM (ganbench/probe/l2svm.py): X (float16/32/64 array or
np.memmap) is read a chunk at a time, converted to the compute dtype on the compute device and optionally centred,
so it is never held in the compute dtype in full."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
import torch

from ganbench.devices import available_bytes
from ganbench.errors import ConfigError

CHUNK_BYTES = 256 * 2**20  # one converted row chunk


class FeatureRows:
    """Row chunks of X on the compute device in the compute dtype, optionally minus a centre vector."""

    def __init__(
        self, X: np.ndarray, device: torch.device, dtype: torch.dtype, chunk_rows: int | None = None
    ) -> None:
        self.X = X
        self.n, self.d = X.shape
        self.device = device
        self.dtype = dtype
        itemsize = torch.empty((), dtype=dtype).element_size()
        self.chunk_rows = int(chunk_rows) if chunk_rows else max(1, CHUNK_BYTES // (self.d * itemsize))
        self.chunk_rows = min(self.chunk_rows, self.n)
        self.center: torch.Tensor | None = None  # (d,) in dtype, subtracted from every row when set
        self._buffers: dict[int, torch.Tensor] = {}
        self._resident: torch.Tensor | None = None
        self.passes = 0
        if device.type != "cpu":
            # A GPU has room for X in its own (often float16) dtype: upload it once instead of once per pass.
            if X.nbytes < 0.4 * available_bytes(device):
                self._resident = torch.empty(X.shape, dtype=_torch_dtype(X.dtype), device=device)
                for a in range(0, self.n, self.chunk_rows):
                    b = min(a + self.chunk_rows, self.n)
                    self._resident[a:b].copy_(from_numpy(X[a:b]))

    def _buffer(self, slot: int) -> torch.Tensor:
        buf = self._buffers.get(slot)
        if buf is None:
            buf = torch.empty(self.chunk_rows, self.d, dtype=self.dtype, device=self.device)
            self._buffers[slot] = buf
        return buf

    def block(self, a: int, b: int, slot: int = 0, center: bool = True) -> torch.Tensor:
        """Rows a..b-1 converted (and centred when a centre is set and center=True); valid until reused."""
        if self._resident is not None:
            src = self._resident[a:b]
        else:
            src = from_numpy(self.X[a:b])
            if self.device.type != "cpu":
                src = src.to(self.device, non_blocking=False)
        shift = self.center if center else None
        if shift is None and src.dtype == self.dtype:
            return src  # zero-copy view, only ever read
        out = self._buffer(slot)[: b - a]
        out.copy_(src)
        if shift is not None:
            out.sub_(shift)
        return out

    def chunks(self, center: bool = True) -> Iterator[tuple[int, int, torch.Tensor]]:
        self.passes += 1
        for a in range(0, self.n, self.chunk_rows):
            b = min(a + self.chunk_rows, self.n)
            yield a, b, self.block(a, b, 0, center)

    def release(self) -> None:
        self._buffers.clear()
        self._resident = None


def _torch_dtype(dtype: np.dtype) -> torch.dtype:
    return {2: torch.float16, 4: torch.float32, 8: torch.float64}[np.dtype(dtype).itemsize]


def from_numpy(a: np.ndarray) -> torch.Tensor:
    with warnings.catch_warnings():
        # read-only memmaps: the tensor is only ever read
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(np.asarray(a))


def nonfinite_error(rows: FeatureRows, a: int, b: int, chunk: torch.Tensor, name: str = "X") -> ConfigError:
    if torch.isfinite(chunk).all():
        return ConfigError(
            f"{name} rows {a}..{b - 1} have values too large for {str(rows.dtype)[6:]} sums; rescale the "
            f"features"
        )
    return ConfigError(f"{name} has NaN or infinite values in rows {a}..{b - 1}; remove or impute them")


def mean_and_check(rows: FeatureRows) -> torch.Tensor:
    """Column means of X (float64), checking chunk by chunk that every value is finite."""
    total = torch.zeros(rows.d, dtype=torch.float64, device=rows.device)
    for a, b, chunk in rows.chunks(center=False):
        s = chunk.sum(0)  # NaN/inf anywhere in the chunk shows up here, at a tenth of isfinite's cost
        if not bool(torch.isfinite(s).all()):
            raise nonfinite_error(rows, a, b, chunk)
        total += s.double()
    return total / rows.n
