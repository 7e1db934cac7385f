"""Vector arithmetic on z (DCGAN paper, sec. 6.3 and figure 7) and numbered sample grids to pick z from.

The paper picks a few samples per visual concept ("smiling woman", "neutral woman", "neutral man"), averages
their z (three per concept: single samples were unstable), computes e.g. mean(smiling woman) - mean(neutral
woman) + mean(neutral man) and shows G of the result Y beside 8 samples of G(Y + u), u uniform noise of scale
+-0.25 in every coordinate. Here the samples come from ``ganbench sample CKPT --save-z z.npy`` (a grid with
each image's index) and an expression of index groups: ``"3,7,12 - 5,9,20 + 1,2,4"``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ganbench.errors import ConfigError
from ganbench.files import atomic_path

NOISE_SCALE = 0.25  # the paper's figure 7: "uniform noise sampled with scale +-0.25 was added to Y"
NEIGHBOURS = 8


@dataclass(frozen=True)
class Term:
    """One group of the expression: its sign (+1 or -1) and the grid indices whose z are averaged."""

    sign: int
    indices: tuple[int, ...]


_GROUP = re.compile(r"^\d+(\s*,\s*\d+)*$")


def parse_expression(expr: str, n_available: int) -> list[Term]:
    """``"3,7,12 - 5,9,20 + 1,2,4"`` -> terms; indices must lie in [0, n_available). One-line errors."""
    text = expr.strip()
    if not text:
        raise ConfigError('--expr is empty; join groups of grid indices with + and -, e.g. "3,7,12 - 5,9,20 + 1,2,4"')
    pieces = re.split(r"\s*([+-])\s*", text)
    # pieces: [group, sign, group, sign, group, ...]; a leading sign gives an empty first piece
    first = pieces[0]
    terms: list[Term] = []
    signs = ["+"] + pieces[1::2] if first else pieces[1::2]
    groups = pieces[0::2] if first else pieces[2::2]
    if len(signs) != len(groups):
        raise ConfigError(f"--expr {expr!r} has a sign without a group after it; e.g. \"3,7,12 - 5,9,20 + 1,2,4\"")
    for sign, group in zip(signs, groups, strict=True):
        if not group:
            raise ConfigError(f"--expr {expr!r} has a + or - without a group of indices after it")
        if not _GROUP.match(group):
            raise ConfigError(
                f"--expr {expr!r}: {group!r} is not a group of comma-separated image indices; "
                'write e.g. "3,7,12 - 5,9,20 + 1,2,4"'
            )
        indices = tuple(int(v) for v in group.split(","))
        bad = [i for i in indices if i >= n_available]
        if bad:
            raise ConfigError(
                f"--expr {expr!r}: index {bad[0]} is out of range: the z file holds {n_available} vectors "
                f"(indices 0..{n_available - 1}, as numbered on the grid)"
            )
        terms.append(Term(1 if sign == "+" else -1, indices))
    return terms


def combine(z: np.ndarray, terms: list[Term]) -> tuple[np.ndarray, np.ndarray]:
    """(mean z of each term (T, nz), the signed sum of those means (nz,))."""
    means = np.stack([z[list(t.indices)].mean(axis=0) for t in terms])
    signs = np.array([t.sign for t in terms], dtype=means.dtype)[:, None]
    return means, (signs * means).sum(axis=0)


def expression_text(terms: list[Term]) -> str:
    out = []
    for k, t in enumerate(terms):
        group = ",".join(str(i) for i in t.indices)
        out.append(group if k == 0 and t.sign > 0 else f"{'+' if t.sign > 0 else '-'} {group}")
    return " ".join(out)


# ------------------------------------------------------------------------------------------- z files


def save_z(z: torch.Tensor | np.ndarray, path: str | os.PathLike) -> Path:
    """Write the (N, nz) latent vectors as a plain .npy, atomically."""
    arr = np.ascontiguousarray(z.detach().cpu().numpy() if isinstance(z, torch.Tensor) else z, dtype=np.float32)
    path = Path(path)
    if not path.parent.is_dir():
        raise ConfigError(f"cannot write {path}: folder {path.parent} does not exist; create it first")
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, arr)
    return path


def load_z(path: str | os.PathLike, nz: int) -> np.ndarray:
    """The (N, nz) vectors of a --save-z file, checked against the generator's latent size."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"z file {p} not found; write one with `ganbench sample CKPT --save-z {p.name}`")
    try:
        z = np.load(p, allow_pickle=False)
    except Exception as exc:
        raise ConfigError(f"cannot read z file {p} ({type(exc).__name__}); write it again with --save-z") from None
    if not isinstance(z, np.ndarray) or z.ndim != 2 or z.shape[1] != nz or not np.issubdtype(z.dtype, np.floating):
        shape = getattr(z, "shape", None)
        raise ConfigError(
            f"z file {p} holds {shape} but this generator needs float vectors (N, {nz}); use the z file "
            "saved with this checkpoint's `ganbench sample --save-z`"
        )
    if not np.isfinite(z).all():
        raise ConfigError(f"z file {p} contains NaN or infinite values; write it again with --save-z")
    return z.astype(np.float32)


# -------------------------------------------------------------------------------------------- pictures


def _to_uint8_hwc(images: torch.Tensor, cell: int) -> list[np.ndarray]:
    """[-1, 1] (N, C, H, W) -> list of (cell, cell, 3) uint8, enlarged by pixel repetition when small."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    factor = max(1, cell // x.shape[-1])
    if factor > 1:
        x = x.repeat_interleave(factor, dim=2).repeat_interleave(factor, dim=3)
    return [img.permute(1, 2, 0).numpy() for img in x]


def label_font(size: int = 11):
    """The font of the numbers and captions drawn on grids (shared with memorization's figures)."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the bitmap font
        return ImageFont.load_default()


def _save_png(image, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".png") as tmp:
        image.save(tmp, format="PNG")
    return path


def save_numbered_grid(images: torch.Tensor, path: str | os.PathLike, nrow: int | None = None,
                       cell: int = 64) -> Path:
    """A PNG grid of [-1, 1] images with each image's index (its row in the z file) printed above it."""
    from PIL import Image, ImageDraw

    tiles = _to_uint8_hwc(images, cell)
    size = tiles[0].shape[0]
    nrow = nrow or max(1, int(round(len(tiles) ** 0.5)))
    rows = -(-len(tiles) // nrow)
    band, pad = 14, 2
    canvas = Image.new("RGB", (nrow * (size + pad) + pad, rows * (size + band + pad) + pad), "white")
    draw, font = ImageDraw.Draw(canvas), label_font()
    for i, tile in enumerate(tiles):
        x = pad + (i % nrow) * (size + pad)
        y = pad + (i // nrow) * (size + band + pad)
        draw.text((x + 2, y), str(i), fill="black", font=font)
        canvas.paste(Image.fromarray(tile), (x, y + band))
    return _save_png(canvas, path)


def draw_arithmetic(groups: list[torch.Tensor], means: torch.Tensor, result: torch.Tensor, terms: list[Term],
                    path: str | os.PathLike, noise: float = NOISE_SCALE,
                    cell: int = 64) -> tuple[Path, dict[str, tuple[int, int, int]]]:
    """The paper's figure-7 layout: one column per group (its images with their indices, a rule, the image of
    the group's mean z), the signs between columns, '=' and a 3x3 block with G(Y) in the centre (red frame)
    and the 8 images G(Y + u), u ~ U[-noise, noise]^nz, around it. Returns the path and where each image
    went: {"group K image J" / "mean K" / "result R": (left, top, size)}, R = 0 for G(Y)."""
    from PIL import Image, ImageDraw

    group_tiles = [_to_uint8_hwc(g, cell) for g in groups]
    mean_tiles = _to_uint8_hwc(means, cell)
    result_tiles = _to_uint8_hwc(result, cell)  # [Y, Y + u_1, ..., Y + u_8]
    size = mean_tiles[0].shape[0]
    pad, band, gap, rule = 4, 14, 24, 10
    step = band + size + pad  # one captioned image
    tallest = max(len(t) for t in group_tiles)
    mean_top = pad + tallest * step + rule
    block = 3 * size + 2 * pad
    height = max(mean_top + step, pad + band + block + pad) + 2 * band
    width = max(pad + len(groups) * (size + gap) + block + pad, 420)
    canvas = Image.new("RGB", (width, height), "white")
    draw, font, big = ImageDraw.Draw(canvas), label_font(), label_font(20)
    boxes: dict[str, tuple[int, int, int]] = {}
    x = pad + (gap if terms[0].sign < 0 else 0)
    for k, (tiles, term) in enumerate(zip(group_tiles, terms, strict=True)):
        if k > 0 or term.sign < 0:  # the sign in front of this column, level with the means
            draw.text((x - gap + 6, mean_top + band + size // 2 - 12), "+" if term.sign > 0 else "-",
                      fill="black", font=big)
        for j, (idx, tile) in enumerate(zip(term.indices, tiles, strict=True)):
            y = pad + j * step
            draw.text((x + 2, y), str(idx), fill="black", font=font)
            canvas.paste(Image.fromarray(tile), (x, y + band))
            boxes[f"group {k} image {j}"] = (x, y + band, size)
        draw.line([(x, mean_top - rule // 2), (x + size, mean_top - rule // 2)], fill="black", width=2)
        draw.text((x + 2, mean_top), "mean", fill="black", font=font)
        canvas.paste(Image.fromarray(mean_tiles[k]), (x, mean_top + band))
        boxes[f"mean {k}"] = (x, mean_top + band, size)
        x += size + gap
    draw.text((x - gap + 5, mean_top + band + size // 2 - 12), "=", fill="black", font=big)
    order = [1, 2, 3, 4, 0, 5, 6, 7, 8]  # the noiseless result in the centre of the 3x3 block
    top = max(pad + band, mean_top + band + size - block)  # the block's bottom row level with the means
    for slot, which in enumerate(order):
        cx, cy = x + (slot % 3) * (size + pad), top + (slot // 3) * (size + pad)
        canvas.paste(Image.fromarray(result_tiles[which]), (cx, cy))
        boxes[f"result {which}"] = (cx, cy, size)
        if which == 0:
            draw.rectangle([cx - 2, cy - 2, cx + size + 1, cy + size + 1], outline="red", width=2)
    draw.text((x, top - band), "Y", fill="red", font=font)
    foot = height - 2 * band
    draw.text((pad, foot), f"Y = {expression_text(terms)} (each group: the mean of its z)", fill="black", font=font)
    draw.text((pad, foot + band), f"red: G(Y); around it: G(Y + u), u ~ U[-{noise:g}, {noise:g}] per coordinate",
              fill="black", font=font)
    return _save_png(canvas, path), boxes


def vector_arithmetic(checkpoint: str | os.PathLike, z_path: str | os.PathLike, expr: str,
                      out: str | os.PathLike, *, noise: float = NOISE_SCALE, seed: int = 0, bn: str = "batch",
                      variant_file: str | None = None, device: str = "auto") -> dict:
    """Average the z of each index group of ``expr``, combine them, draw the figure-7 picture into ``out``.

    With ``bn="batch"`` (as ``ganbench sample``) every vector of the z file is generated in the same batch as
    the new ones, so the group images look as they did on the numbered grid. Returns a summary dict.
    """
    from ganbench.checkpoint import build_from_checkpoint, load_checkpoint
    from ganbench.devices import pick_device
    from ganbench.models.base import generate

    if noise < 0:
        raise ConfigError(f"--noise must be >= 0, got {noise}")
    dev = pick_device(device)
    gen, _, _ = build_from_checkpoint(load_checkpoint(checkpoint), variant_file, device=dev)
    z_all = load_z(z_path, int(gen.nz))
    terms = parse_expression(expr, len(z_all))
    means, y = combine(z_all, terms)
    rng = torch.Generator().manual_seed(seed)
    u = (torch.rand(NEIGHBOURS, y.shape[0], generator=rng) * 2 - 1) * noise
    result = torch.from_numpy(y)[None] + torch.cat([torch.zeros(1, y.shape[0]), u])
    new = torch.cat([torch.from_numpy(means), result.float()])
    if bn == "batch":
        images = generate(gen, torch.cat([torch.from_numpy(z_all), new]).to(dev), bn="batch")
        grid_images, new_images = images[: len(z_all)], images[len(z_all):]
        groups = [grid_images[list(t.indices)] for t in terms]
    else:
        picked = torch.from_numpy(np.concatenate([z_all[list(t.indices)] for t in terms]))
        images = generate(gen, torch.cat([picked, new]).to(dev), bn="running")
        sizes = [len(t.indices) for t in terms]
        groups = list(images[: sum(sizes)].split(sizes))
        new_images = images[sum(sizes):]
    path, boxes = draw_arithmetic(groups, new_images[: len(terms)], new_images[len(terms):], terms, out,
                                  noise=noise)
    return {"out": str(path), "expression": expression_text(terms), "groups": len(terms), "y": y,
            "result_norm": float(np.linalg.norm(y)), "noise": noise, "boxes": boxes}
