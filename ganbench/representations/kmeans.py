"""The single-layer k-means features of Coates, Lee & Ng 2011 ("An analysis of single-layer networks in
unsupervised feature learning", AISTATS), the DCGAN paper's k-means baseline (Radford et al. 2015, Table 1).

Pipeline (sec. 3 of the paper): random w x w patches of the training images; each patch normalised by its own mean
and variance (brightness and contrast); ZCA whitening of the patches; k-means (Lloyd iterations) on the whitened
patches. An image is encoded at stride 1: every w x w patch, normalised and whitened the same way, gets the
"triangle" activation f_k(x) = max(0, mean_j(z_j) - z_k) with z_k = ||x - c_k||; the (H-w+1) x (W-w+1) x K maps are
sum-pooled over their four quadrants (4K features), then standardised with the mean and variance of the features
of the images the learner was fitted on. The regularisers (10 added to each patch's variance, 0.1 to the
eigenvalues of the whitening, 0.01 to the feature variance) are the values of the authors' released demo
(kmeans_demo.m); so is the quadrant split at round((H-w+1)/2).

Everything runs in torch float32 on the given device (a matrix product per batch of patches), float64 where a
covariance or a feature moment is accumulated.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ganbench.errors import ConfigError
from ganbench.representations.base import check_image_shape

PATCH_VAR_EPS = 10.0  # added to each patch's variance before dividing (pixel values in [0, 255])
ZCA_EPS = 0.1  # added to the covariance eigenvalues of the whitened patches
FEATURE_VAR_EPS = 0.01  # added to each feature's variance in the standardisation


def random_patches(images: np.ndarray, n: int, size: int, rng: np.random.Generator) -> torch.Tensor:
    """n patches (n, C*size*size) in float32 pixel values from uniformly drawn images and positions.

    images: uint8 (N, C, H, W). The flattening order is channel-major (torch's unfold order), the same order
    patch_grid uses, so a centroid reads as a C x size x size patch.
    """
    N, C, H, W = images.shape
    if size > min(H, W):
        raise ConfigError(f"k-means patches of {size}x{size} do not fit {H}x{W} images; pass a patch size of at "
                          f"most {min(H, W)}")
    which = rng.integers(0, N, n)
    rows = rng.integers(0, H - size + 1, n)
    cols = rng.integers(0, W - size + 1, n)
    out = np.empty((n, C, size, size), np.float32)
    order = np.argsort(which, kind="stable")  # images read in file order: sequential reads of a memory map
    for k in order:
        out[k] = images[which[k], :, rows[k]:rows[k] + size, cols[k]:cols[k] + size]
    return torch.from_numpy(out.reshape(n, -1))


def normalize_patches(patches: torch.Tensor) -> torch.Tensor:
    """Each row minus its mean, divided by sqrt(its unbiased variance + 10) (Coates et al.'s brightness and
    contrast normalisation)."""
    centred = patches - patches.mean(1, keepdim=True)
    return centred / torch.sqrt(centred.square().sum(1, keepdim=True) / (patches.shape[1] - 1) + PATCH_VAR_EPS)


def zca_fit(patches: torch.Tensor, eps: float = ZCA_EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """ZCA whitening of rows: mean M and matrix P = V diag(1 / sqrt(lambda + eps)) V^T of the unbiased
    covariance, so (x - M) P has about identity covariance (in float64, returned float32)."""
    x = patches.double()
    mean = x.mean(0)
    centred = x - mean
    cov = centred.T @ centred / (len(x) - 1)
    eigvals, eigvecs = torch.linalg.eigh(cov)
    P = eigvecs @ torch.diag(1.0 / torch.sqrt(eigvals.clamp_min(0) + eps)) @ eigvecs.T
    return mean.float(), P.float()


@dataclass
class KMeansFit:
    """The centroids and how the fit went."""

    centroids: torch.Tensor  # (K, d)
    iterations: int  # Lloyd iterations run (fewer than asked when the assignment stopped changing)
    empty_at_end: int  # clusters without a patch in the last assignment
    inertia: float  # mean squared distance of a patch to its centroid


EMPTY_CLUSTERS = ("scikit-learn relocates a cluster left empty by an assignment to the patch farthest from its "
                  "centroid (the authors' demo zeroes it instead, a dead feature)")


def kmeans(x: torch.Tensor, k: int, iterations: int, seed: int) -> KMeansFit:
    """Lloyd's k-means of the rows of x (float32), from k distinct random rows, for at most `iterations`.

    Fitted by scikit-learn's KMeans (algorithm "lloyd", one initialisation, tolerance 0: it stops early only when
    no assignment changes): faster on 2 cores than a torch loop of the same algorithm (benchmarks/bench_kmeans.py,
    results/benchmarks/kmeans.md), and well kept. Empty clusters: see EMPTY_CLUSTERS.
    """
    from sklearn.cluster import KMeans

    n = len(x)
    if k > n:
        raise ConfigError(f"k-means with {k} centroids needs at least {k} patches, got {n}; pass more patches or "
                          "fewer centroids")
    data = x.detach().float().cpu().numpy()
    start = data[np.random.default_rng(seed).choice(n, k, replace=False)]
    fit = KMeans(k, init=start, n_init=1, max_iter=iterations, tol=0, algorithm="lloyd", random_state=seed).fit(data)
    counts = np.bincount(fit.labels_, minlength=k)
    return KMeansFit(torch.from_numpy(np.asarray(fit.cluster_centers_, np.float32)), int(fit.n_iter_),
                     int((counts == 0).sum()), float(fit.inertia_) / n)


def triangle(x: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """The triangle activation max(0, mean_k z_k - z_k), z_k = ||x - c_k||, of rows x against centroids (K, d)."""
    d2 = x.square().sum(1, keepdim=True) + centroids.square().sum(1) - 2 * (x @ centroids.T)
    z = d2.clamp_min(0).sqrt()
    return (z.mean(1, keepdim=True) - z).clamp_min(0)


def quadrant_split(positions: int) -> int:
    """Where the pooling cuts a side of `positions` patch positions: MATLAB's round(positions / 2), halves up."""
    return int(math.floor(positions / 2 + 0.5))


class KMeansFeatures:
    """A fitted single-layer k-means representation: images (N, C, H, W) uint8 -> (N, 4K) standardised features.

    Learned state, in the scikit-learn manner of attributes ending in `_`: patch whitening (mean_, zca_),
    centroids_, feature standardisation (feature_mean_, feature_std_).
    """

    name = "kmeans"
    description = "single-layer k-means: whitened 6x6 patches, triangle encoding at stride 1, quadrant sum pooling"
    paper = "Coates, Lee & Ng 2011 (77.9% on CIFAR-10 with 1,600 centroids, 79.6% with 4,000)"
    # the paper's CIFAR-10 settings: 6x6 receptive fields, 400,000 patches, 1,600 centroids; the demo's 50 iterations
    options: dict[str, Any] = {"centroids": 1600, "patch_size": 6, "patches": 400_000, "iterations": 50,
                               "standardize_images": 10_000}

    def __init__(self, image_size: int, channels: int, centroids: int = 1600, patch_size: int = 6,
                 patches: int = 400_000, iterations: int = 50, standardize_images: int | None = 10_000):
        for key, value in (("centroids", centroids), ("patch_size", patch_size), ("patches", patches),
                           ("iterations", iterations)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"k-means option {key}={value!r} must be a positive whole number")
        if patch_size > image_size:
            raise ConfigError(f"k-means patches of {patch_size}x{patch_size} do not fit {image_size}x{image_size} "
                              f"images; pass patch_size of at most {image_size}")
        if centroids > patches:
            raise ConfigError(f"k-means with {centroids} centroids needs at least as many patches, got "
                              f"patches={patches}; raise patches or lower centroids")
        self.image_size, self.channels, self.patch_size, self.n_centroids = image_size, channels, patch_size, centroids
        self.n_patches, self.iterations, self.standardize_images = patches, iterations, standardize_images
        self.mean_: torch.Tensor | None = None
        self.zca_: torch.Tensor | None = None
        self.centroids_: torch.Tensor | None = None
        self.feature_mean_: torch.Tensor | None = None
        self.feature_std_: torch.Tensor | None = None

    @property
    def dim(self) -> int:
        return 4 * self.n_centroids

    def settings(self) -> dict[str, Any]:
        return {"image_size": self.image_size, "channels": self.channels, "centroids": self.n_centroids,
                "patch_size": self.patch_size, "patches": self.n_patches, "iterations": self.iterations,
                "standardize_images": self.standardize_images}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"mean": self.mean_, "zca": self.zca_, "centroids": self.centroids_,
                "feature_mean": self.feature_mean_, "feature_std": self.feature_std_}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> KMeansFeatures:
        d = self.channels * self.patch_size**2
        shapes = {"mean": (d,), "zca": (d, d), "centroids": (self.n_centroids, d), "feature_mean": (self.dim,),
                  "feature_std": (self.dim,)}
        for key, shape in shapes.items():
            value = state.get(key)
            if not isinstance(value, torch.Tensor) or tuple(value.shape) != shape:
                got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
                raise ConfigError(f"k-means state {key!r} has shape {got}, expected {shape} for these settings")
        self.mean_, self.zca_, self.centroids_ = state["mean"].float(), state["zca"].float(), state["centroids"].float()
        self.feature_mean_, self.feature_std_ = state["feature_mean"].float(), state["feature_std"].float()
        return self

    def whiten(self, patches: torch.Tensor) -> torch.Tensor:
        return (normalize_patches(patches) - self.mean_.to(patches)) @ self.zca_.to(patches)

    def encode(self, images: torch.Tensor, chunk: int = 32) -> torch.Tensor:
        """The pooled triangle features (before standardisation) of float pixel images (B, C, H, W).

        chunk images at a time: their (positions x K) activations (93 MB for 32 CIFAR images and 1,600 centroids)
        stay small enough to be reused from cache by the in-place steps that follow the product.
        """
        return torch.cat([self._encode_chunk(images[lo:lo + chunk]) for lo in range(0, len(images), chunk)])

    def _encode_chunk(self, images: torch.Tensor) -> torch.Tensor:
        B, _, H, W = images.shape
        w = self.patch_size
        ph, pw = H - w + 1, W - w + 1
        patches = F.unfold(images, w).transpose(1, 2).reshape(B * ph * pw, -1)  # channel-major, as random_patches
        white = self.whiten(patches)
        centroids = self.centroids_.to(white)
        # ||x - c||^2 = ||x||^2 + ||c||^2 - 2 x.c in one product, then the triangle activation in place
        z = torch.addmm(white.square().sum(1, keepdim=True) + centroids.square().sum(1), white, centroids.T,
                        alpha=-2)
        z.clamp_min_(0).sqrt_()
        act = torch.sub(z.mean(1, keepdim=True), z, out=z).clamp_min_(0).view(B, ph, pw, -1)
        hr, hc = quadrant_split(ph), quadrant_split(pw)
        halves = (act[:, :hr].sum(1), act[:, hr:].sum(1))  # rows first: the sums shrink the data 27-fold at once
        return torch.cat([half[:, cols].sum(1) for half in halves for cols in (slice(0, hc), slice(hc, pw))], 1)

    def transform(self, images: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
        """Standardised features (N, 4K) float32 of uint8 images (N, C, H, W), on device."""
        self.check_images(images)
        x = torch.from_numpy(np.array(images)).to(device).float()  # a writable copy
        raw = self.encode(x)
        return (raw - self.feature_mean_.to(raw)) / self.feature_std_.to(raw)

    def check_images(self, images: np.ndarray) -> None:
        check_image_shape(self.name, self.channels, self.image_size, images)

    def fit(self, images: np.ndarray, *, seed: int = 0, device: torch.device | str = "cpu", batch_size: int = 64,
            progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
        """Fit on uint8 images (N, C, H, W); returns what the fit record says (reseeded clusters, inertia).

        The feature mean and variance come from a seeded sample of standardize_images of the images (None: all),
        which costs one encoding pass over them.
        progress: called as progress(stage, done, total).
        """
        self.check_images(images)
        patches, iterations, standardize_images = self.n_patches, self.iterations, self.standardize_images
        rng = np.random.default_rng(seed)
        raw = random_patches(images, patches, self.patch_size, rng)
        normed = normalize_patches(raw)
        self.mean_, self.zca_ = zca_fit(normed)
        white = (normed - self.mean_) @ self.zca_
        del raw, normed
        if progress is not None:
            progress("k-means", 0, 1)
        result = kmeans(white, self.n_centroids, iterations, seed)
        if progress is not None:
            progress("k-means", 1, 1)
        self.centroids_ = result.centroids
        chosen = np.arange(len(images))
        if standardize_images is not None and standardize_images < len(images):
            chosen = np.sort(rng.choice(len(images), standardize_images, replace=False))
        total = torch.zeros(self.dim, dtype=torch.float64)
        total_sq = torch.zeros(self.dim, dtype=torch.float64)
        for lo in range(0, len(chosen), batch_size):
            idx = chosen[lo:lo + batch_size]
            f = self.encode(torch.from_numpy(np.asarray(images[idx])).to(device).float()).double().cpu()
            total += f.sum(0)
            total_sq += f.square().sum(0)
            if progress is not None:
                progress("standardisation", min(lo + batch_size, len(chosen)), len(chosen))
        n = len(chosen)
        mean = total / n
        var = (total_sq - n * mean.square()).clamp_min(0) / max(n - 1, 1)  # unbiased, as MATLAB's var
        self.feature_mean_ = mean.float()
        self.feature_std_ = torch.sqrt(var + FEATURE_VAR_EPS).float()
        return {"iterations": result.iterations, "empty_clusters_at_end": result.empty_at_end,
                "empty_clusters": EMPTY_CLUSTERS, "inertia": round(result.inertia, 6), "patches": patches,
                "standardize_images": int(n)}
