"""Train the digits classifier behind digits-IS / digits-FID, deterministically, on the CPU (about a minute).

    python -m ganbench.metrics.train_digits_classifier --out ganbench/assets/digits_classifier.pt

Data: scikit-learn's 1,797 digits upscaled to 32x32 exactly as the demo sees them, split 80/20
(stratified, seeded); training uses random shifts of up to 2 pixels; the held-out accuracy is stored in
the file's metadata. The file holds only tensors, strings and numbers, so ``torch.load(...,
weights_only=True)`` reads it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ganbench.metrics.digits_classifier import (
    ARCH,
    FEATURE_DIM,
    DigitsClassifier,
    digits_images,
    split_indices,
)


def _shift(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Translate each image by up to max_shift pixels (zero fill = background -1)."""
    n, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4, value=-1.0)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    return torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])


@torch.no_grad()
def accuracy(model: DigitsClassifier, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    return float((model(x).argmax(1) == y).double().mean())


def train(
    seed: int = 0, epochs: int = 25, batch_size: int = 64, lr: float = 2e-3, max_shift: int = 2, log=print
) -> tuple[DigitsClassifier, dict]:
    """Train on the seeded 80% split; returns (model, metadata with test accuracy)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    images, labels = digits_images()
    train_idx, test_idx = split_indices(labels, seed=seed)
    x = DigitsClassifier.preprocess(images)
    y = torch.from_numpy(labels)
    x_train, y_train, x_test, y_test = x[train_idx], y[train_idx], x[test_idx], y[test_idx]
    model = DigitsClassifier()
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    t0 = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x_train), generator=gen)
        total = 0.0
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            xb = _shift(x_train[idx], max_shift, gen) if max_shift else x_train[idx]
            loss = F.cross_entropy(model(xb), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        sched.step()
        if (epoch + 1) % 10 == 0 or epoch == epochs - 1:
            log(
                f"epoch {epoch + 1:3d}/{epochs}: loss {total / len(x_train):.4f}, "
                f"held-out accuracy {accuracy(model, x_test, y_test):.4f} ({time.perf_counter() - t0:.0f} s)"
            )
    model.eval()
    meta = {
        "arch": ARCH,
        "feature_dim": FEATURE_DIM,
        "input": "(N, 1, 32, 32), uint8 0..255 or float in [-1, 1]",
        "data": "sklearn.datasets.load_digits, round(v*255/16), PIL bilinear to 32x32",
        "split": "sklearn train_test_split(test_size=0.2, stratify=labels, random_state=seed)",
        "seed": seed,
        "epochs": epochs,
        "n_train": len(train_idx),
        "n_test": len(test_idx),
        "train_accuracy": accuracy(model, x_train, y_train),
        "test_accuracy": accuracy(model, x_test, y_test),
        "torch_version": str(torch.__version__),
        "numpy_version": str(np.__version__),
    }
    return model, meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ganbench.metrics.train_digits_classifier",
        description="Train the digits classifier used for digits-IS / digits-FID (deterministic, CPU).",
    )
    parser.add_argument("--out", type=Path, required=True, help="where to write the weights (.pt)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=25)
    args = parser.parse_args(argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(
        1
    )  # bit-reproducible CPU kernels, and faster than 2 contended threads for this size
    try:
        model, meta = train(seed=args.seed, epochs=args.epochs)
    finally:
        torch.set_num_threads(threads)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    tmp = args.out.with_name(args.out.name + ".tmp")
    torch.save({"state_dict": state, "meta": meta}, tmp)
    tmp.replace(args.out)
    size_kb = args.out.stat().st_size / 1024
    print(
        f"wrote {args.out} ({size_kb:.0f} KB): held-out accuracy {meta['test_accuracy']:.4f} "
        f"on {meta['n_test']} digits (seed {args.seed})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
