"""One training problem of the L2-SVM: X validated and read in centred row chunks, labels as +-1 targets.

Shared by the estimator (l2svm.py) and both solvers (primal.py, dual.py), which import it; it imports neither."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ganbench.errors import ConfigError
from ganbench.probe.rows import FeatureRows, mean_and_check


def as_matrix(X: Any, name: str = "X") -> np.ndarray:
    """X as a 2-D numpy array; float16/32/64 arrays and memmaps are not copied (others become float32)."""
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    if not isinstance(X, np.ndarray):
        try:
            X = np.asarray(X)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be a 2-D numeric array, got {type(X).__name__}") from None
    if X.ndim != 2:
        raise ConfigError(f"{name} must be 2-D (n_samples, n_features), got shape {X.shape}")
    if X.shape[0] < 1 or X.shape[1] < 1:
        raise ConfigError(f"{name} must have at least one sample and one feature, got shape {X.shape}")
    if X.dtype.kind != "f" or X.dtype.itemsize not in (2, 4, 8):
        if X.dtype.kind not in "biuf":
            raise ConfigError(f"{name} must hold numbers, got dtype {X.dtype}")
        X = X.astype(np.float32)
    if not X.dtype.isnative:
        X = X.astype(X.dtype.newbyteorder("="))
    return X


def class_indices(y: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(classes, index of each sample's class) for labels y of n samples."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ConfigError(f"y must be 1-D (one label per sample), got shape {y.shape}")
    if len(y) != n:
        raise ConfigError(f"X has {n} samples but y has {len(y)} labels; pass one label per row of X")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise ConfigError("y has NaN or infinite labels; pass finite class labels")
    classes, index = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise ConfigError(f"y must hold at least 2 classes, got only {classes.tolist()!r}")
    return classes, index.reshape(-1)


class Problem:
    """One training set on one device: row chunks of X centred by its column mean, +-1 targets, Gram cache."""

    def __init__(self, X: Any, y: Any, device: torch.device, dtype: torch.dtype, chunk_rows: int | None):
        X = as_matrix(X)
        self.classes, index = class_indices(y, X.shape[0])
        self.n, self.d = X.shape
        self.K = len(self.classes)
        self.rows = FeatureRows(X, device, dtype, chunk_rows)
        self.device, self.dtype = device, dtype
        mean = mean_and_check(self.rows)
        self.rows.center = mean.to(dtype)
        self.m64 = self.rows.center.double()  # the centre exactly as subtracted
        Y = -torch.ones(self.n, self.K, dtype=torch.float64, device=device)
        Y[torch.arange(self.n, device=device), torch.as_tensor(index, device=device)] = 1.0
        self.Y64 = Y
        self.Y = Y.to(dtype)
        # caches owned by the solvers: the dual's Gram matrix (dual.problem_gram), the primal's preconditioning
        # subspace (primal.problem_subspace); kept here so a C path computes each once
        self.gram: Any = None
        self.subspace: Any = None
        self.lowp: Any = None  # the primal's bfloat16 copy of the centred rows (primal.problem_lowp)
        self._energy: float | None = None

    def centred_energy(self) -> float:
        """mean_i ||x_i - m||^2, the average squared norm of the centred rows (one pass over X, then cached): with C
        it sets the scale of the data term against the regulariser (L2SVM's solver choice)."""
        if self._energy is None:
            total = 0.0
            for _a, _b, chunk in self.rows.chunks():
                total += float(chunk.pow(2).sum(dtype=torch.float64))
            self._energy = total / self.n
        return self._energy

    def forward(self, V: torch.Tensor, out_dtype: torch.dtype | None = None) -> torch.Tensor:
        """(n, k) products X~ V^T for V (k, d+1) (last column: the intercept's weight), one pass over X."""
        V = V.to(self.dtype)
        off = (V[:, : self.d].double() @ self.m64 + V[:, self.d].double()).to(self.dtype)
        Vt = V[:, : self.d].T
        Z = torch.empty(self.n, V.shape[0], dtype=out_dtype or self.dtype, device=self.device)
        for a, b, chunk in self.rows.chunks():
            Z[a:b] = torch.addmm(off, chunk, Vt)
        return Z

    def margins(self, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """(n, K) float64 values X W^T + b for float64 W (K, d), b (K,)."""
        return self.forward(torch.cat([W, b[:, None]], 1), torch.float64)
