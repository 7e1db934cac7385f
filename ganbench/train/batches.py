"""The batch source of training: seeded per-epoch permutations of a uint8 image store, as floats in [-1, 1]."""

from __future__ import annotations

import numpy as np
import torch

from ganbench.devices import available_bytes
from ganbench.errors import ConfigError
from ganbench.models.base import to_signed_unit


class BatchSource:
    """Uniform random batches without replacement per epoch, from a uint8 store, as floats in [-1, 1].

    The permutation of epoch e depends only on (seed, e), so a resumed run draws the same batches.
    The store is moved to the device once when it fits comfortably; otherwise batches are gathered from
    the (memory-mapped) array, which stays decoded on disk.
    part (rank, world size): under torchrun batch_size is the global batch and each rank gets its contiguous
    slice of the same global batch indices, so the ranks together see exactly what one process would.
    """

    def __init__(self, images: np.ndarray, batch_size: int, seed: int, device: torch.device,
                 channels: int, channels_last: bool, part: tuple[int, int] = (0, 1),
                 labels: np.ndarray | None = None):
        self.n = len(images)
        if self.n < batch_size:
            raise ConfigError(
                f"batch size {batch_size} exceeds the {self.n} images of the dataset; lower --batch-size"
            )
        self.batch_size, self.seed, self.device = batch_size, seed, device
        self.rank, self.world = part
        self.local = batch_size // self.world
        self.steps_per_epoch = self.n // batch_size
        self.repeat = channels // images.shape[1] if images.shape[1] != channels else 1
        if images.shape[1] * self.repeat != channels:
            raise ConfigError(
                f"the dataset has {images.shape[1]}-channel images but the model expects {channels}; "
                f"pass --channels {images.shape[1]}"
            )
        self.channels_last = channels_last
        nbytes = images.size
        on_device = device.type == "cpu" or nbytes < 0.25 * available_bytes(device)
        if on_device and nbytes < (8 << 30):
            self.images = torch.from_numpy(np.array(images)).to(device)  # a writable copy in RAM
            self.host: np.ndarray | None = None
        else:
            self.images, self.host = None, images
        self._epoch, self._perm = -1, None
        # the labels, only for a reader of them (the online probe): G and D never see them
        self.labels = None if labels is None else torch.as_tensor(np.asarray(labels), dtype=torch.long).to(device)

    def _permutation(self, epoch: int) -> torch.Tensor:
        if epoch != self._epoch:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            perm = torch.randperm(self.n, generator=gen)  # on the CPU: the same data order on every device
            if self.images is not None and self.images.device.type != "cpu":
                # one asynchronous copy per epoch from pinned memory, not a blocking copy per step
                perm = perm.pin_memory().to(self.images.device, non_blocking=True)
            self._perm, self._epoch = perm, epoch
        return self._perm

    def _indices(self, step: int) -> torch.Tensor:
        epoch, pos = divmod(step, self.steps_per_epoch)
        idx = self._permutation(epoch)[pos * self.batch_size:(pos + 1) * self.batch_size]
        if self.world > 1:
            idx = idx[self.rank * self.local:(self.rank + 1) * self.local]
        return idx

    def batch_labels(self, step: int) -> torch.Tensor:
        """The labels of batch(step)'s images, in its order (on the device)."""
        if self.labels is None:
            raise RuntimeError("this batch source was built without labels")
        return self.labels[self._indices(step).to(self.labels.device)]

    def batch(self, step: int) -> torch.Tensor:
        idx = self._indices(step)
        if self.images is not None:
            x = self.images[idx]
        else:
            order = np.sort(idx.numpy())  # sequential reads from the memmap
            x = torch.from_numpy(self.host[order])
            if self.device.type == "cuda":
                x = x.pin_memory().to(self.device, non_blocking=True)
        x = to_signed_unit(x)
        if self.repeat > 1:
            x = x.repeat(1, self.repeat, 1, 1)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x


