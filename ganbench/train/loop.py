"""The training loop: one step = a D update and a G update (or one of them, alternating), resumable bit for bit."""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganbench import __version__, distributed
from ganbench.checkpoint import (
    build_from_checkpoint,
    link_or_copy,
    load_checkpoint,
    model_record,
    save_checkpoint,
)
from ganbench.config import TrainConfig, write_config
from ganbench.data import load_images
from ganbench.devices import amp_autocast
from ganbench.errors import ConfigError, DistributedError, RunDirError, TrainingDiverged
from ganbench.files import LockBusy, atomic_write, exclusive_lock
from ganbench.models.base import generate, to_signed_unit
from ganbench.objectives import Objective
from ganbench.progress import progress_bar
from ganbench.registry import get_objective, get_variant, load_objective_file, load_variant_file
from ganbench.train.artifacts import plot_curves, save_grid

# settings a resumed run may change; everything else must match the run directory's config
RESUMABLE = ("steps", "epochs", "device", "log_every", "sample_every", "checkpoint_every", "tensorboard")


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    last_checkpoint: Path
    images_per_second: float
    final_metrics: dict[str, float]


class BatchSource:
    """Uniform random batches without replacement per epoch, from a uint8 store, as floats in [-1, 1].

    The permutation of epoch e depends only on (seed, e), so a resumed run draws the same batches.
    The store is moved to the device once when it fits comfortably; otherwise batches are gathered from
    the (memory-mapped) array, which stays decoded on disk.
    part (rank, world size): under torchrun batch_size is the global batch and each rank gets its contiguous
    slice of the same global batch indices, so the ranks together see exactly what one process would.
    """

    def __init__(self, images: np.ndarray, batch_size: int, seed: int, device: torch.device,
                 channels: int, channels_last: bool, part: tuple[int, int] = (0, 1)):
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
        on_device = device.type == "cpu" or nbytes < 0.25 * _free_device_memory(device)
        if on_device and nbytes < (8 << 30):
            self.images = torch.from_numpy(np.array(images)).to(device)  # a writable copy in RAM
            self.host: np.ndarray | None = None
        else:
            self.images, self.host = None, images
        self._epoch, self._perm = -1, None

    def _permutation(self, epoch: int) -> torch.Tensor:
        if epoch != self._epoch:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            perm = torch.randperm(self.n, generator=gen)  # on the CPU: the same data order on every device
            if self.images is not None and self.images.device.type != "cpu":
                # one asynchronous copy per epoch from pinned memory, not a blocking copy per step
                perm = perm.pin_memory().to(self.images.device, non_blocking=True)
            self._perm, self._epoch = perm, epoch
        return self._perm

    def batch(self, step: int) -> torch.Tensor:
        epoch, pos = divmod(step, self.steps_per_epoch)
        idx = self._permutation(epoch)[pos * self.batch_size:(pos + 1) * self.batch_size]
        if self.world > 1:
            idx = idx[self.rank * self.local:(self.rank + 1) * self.local]
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


def _free_device_memory(device: torch.device) -> float:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return float(free)
    return float("inf")


LOCK_NAME = ".lock"  # the run directory's lock file: held (flock) by the one process training in it


def check_out_path(out: Path) -> None:
    """--out must not be, or lie under, a file."""
    for folder in (out, *out.parents):
        if folder.exists() and not folder.is_dir():
            raise RunDirError(f"--out {out}: {folder} is a file, not a folder; choose another --out")


def prepare_run_dir(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to clobber an existing run unless asked; --resume needs checkpoints/last.pt. The lock file is not
    part of the run: it neither makes the folder count as used nor is deleted by --overwrite (its holder is us).
    Runs inside hold_run_dir, which has checked the path; train() has refused --resume with --overwrite."""
    exists = out.exists() and any(p.name != LOCK_NAME for p in out.iterdir())
    if resume:
        if not (out / "checkpoints" / "last.pt").is_file():
            raise RunDirError(f"cannot resume: {out / 'checkpoints' / 'last.pt'} does not exist; start a new run")
        return
    if exists:
        if not overwrite:
            raise RunDirError(
                f"run directory {out} already exists; pass --resume to continue it or --overwrite to replace it"
            )
        for child in out.iterdir():
            if child.name == LOCK_NAME:
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    out.mkdir(parents=True, exist_ok=True)


@contextlib.contextmanager
def hold_run_dir(out: Path, resume: bool) -> Iterator[None]:
    """Hold the run directory's OS lock for the block, so a second `ganbench train` on the same --out refuses in
    one line instead of interleaving checkpoints. The kernel drops the lock when the holder dies (kill -9 too)."""
    check_out_path(out)
    if resume and not out.is_dir():
        raise RunDirError(f"cannot resume: {out / 'checkpoints' / 'last.pt'} does not exist; start a new run")
    out.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(exclusive_lock(out / LOCK_NAME, wait=False))
        except LockBusy:
            raise RunDirError(f"{out} is in use by another `ganbench train` (it holds {out / LOCK_NAME}); wait for "
                              f"that run to finish or choose another --out") from None
        yield


def trim_metrics(path: Path, step: int) -> None:
    """On resume: keep the metrics rows up to the checkpoint's step (later rows were logged after it by the run
    that died, and will be logged again), dropping a torn last line."""
    if not path.is_file():
        return
    keep = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] <= step:
            keep.append(line + "\n")
    atomic_write(path, "".join(keep))


def resolve_config(cfg: TrainConfig) -> TrainConfig:
    """Fill every None with the objective's or the variant's default so config.toml records the values used.

    Order of precedence: what the user gave, then the objective's paper defaults (lr, betas, D steps, architecture
    options such as WGAN-GP's critic without BatchNorm), then the architecture's.
    """
    if cfg.variant_file:
        load_variant_file(cfg.variant_file)
    if cfg.objective_file:
        load_objective_file(cfg.objective_file)
    variant = get_variant(cfg.model)
    objective = get_objective(cfg.objective or variant.objective)
    objective(**cfg.objective_args)  # refuse unknown options before anything is written
    betas = objective.betas or variant.betas
    model_args = dict(cfg.model_args)
    unknown = sorted(k for k in model_args if not variant.accepts(k))
    if unknown:
        variant.model_kwargs(**model_args)  # raises with the accepted names
    for key, value in objective.model_defaults.items():
        if variant.accepts(key):
            model_args.setdefault(key, value)
    return replace(
        cfg,
        lr=cfg.lr if cfg.lr is not None else (objective.lr or variant.lr),
        beta1=cfg.beta1 if cfg.beta1 is not None else betas[0],
        beta2=cfg.beta2 if cfg.beta2 is not None else betas[1],
        weight_decay=cfg.weight_decay if cfg.weight_decay is not None else variant.weight_decay,
        objective=objective.name,
        d_steps=cfg.d_steps if cfg.d_steps is not None else objective.d_steps,
        model_args=model_args,
        schedule=cfg.schedule or variant.schedule,
    ).validate()


def merge_resume_config(saved: TrainConfig, given: TrainConfig, explicit: set[str]) -> TrainConfig:
    """The saved config with the explicitly given resumable settings; other explicit changes are refused."""
    conflicts = [k for k in sorted(explicit) if k not in RESUMABLE and getattr(given, k) != getattr(saved, k)]
    if conflicts:
        raise ConfigError(
            f"--resume continues the run as configured; it cannot change {', '.join(conflicts)} "
            f"(only {', '.join(RESUMABLE)}); start a new run with --out instead"
        )
    changes = {k: getattr(given, k) for k in explicit if k in RESUMABLE}
    if "steps" in changes:
        changes.setdefault("epochs", None)
    if "epochs" in changes:
        changes.setdefault("steps", None)
    return replace(saved, **changes).validate()


def train(
    cfg: TrainConfig,
    out: str | os.PathLike,
    *,
    resume: bool = False,
    overwrite: bool = False,
    explicit: set[str] | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train a GAN as cfg says, writing config.toml, metrics.jsonl, samples/, curves.png and checkpoints/ in out.

    explicit: names of settings the user gave on this call (only matters with resume).

    Under torchrun (several processes) the run is data-parallel: cfg.batch_size is the global batch, split across
    the ranks; rank 0 prepares the run directory and writes every file; see ganbench.distributed.
    """
    out = Path(out)
    distributed.init_group(cfg.device)  # under torchrun the group first: rank 0's errors below reach every rank
    world, rank = distributed.world_size(), distributed.rank()

    def check() -> None:
        cfg.validate()
        if cfg.tensorboard:
            require_tensorboard()  # before anything is written
        if not resume:  # unknown model, objective or option: refused before --overwrite deletes anything
            resolve_config(cfg)
            _check_global_batch(cfg.batch_size, world)
        if resume and overwrite:
            raise ConfigError("--resume and --overwrite contradict each other; give one")

    # a user's mistake is found by rank 0 first and printed once; the other ranks stop with it
    distributed.main_first(check)
    held = contextlib.ExitStack()
    # rank 0 alone holds the run directory's lock (the other ranks write nothing there)
    distributed.on_main(lambda: held.enter_context(hold_run_dir(out, resume)))
    with held:
        return _train_locked(cfg, out, resume=resume, overwrite=overwrite, explicit=explicit, progress=progress,
                             world=world, rank=rank)


def _train_locked(cfg: TrainConfig, out: Path, *, resume: bool, overwrite: bool, explicit: set[str] | None,
                  progress: bool, world: int, rank: int) -> TrainResult:
    distributed.on_main(lambda: prepare_run_dir(out, resume, overwrite))

    def settle() -> tuple[dict[str, Any] | None, TrainConfig]:
        ckpt, run_cfg = None, cfg
        if resume:
            ckpt = load_checkpoint(out / "checkpoints" / "last.pt")
            saved = TrainConfig.from_dict(ckpt["config"], where=str(out / "checkpoints" / "last.pt"))
            run_cfg = merge_resume_config(saved, cfg, explicit or set())
        run_cfg = resolve_config(run_cfg)
        _check_global_batch(run_cfg.batch_size, world)
        if run_cfg.tensorboard:
            require_tensorboard()
        return ckpt, run_cfg

    ckpt, cfg = distributed.main_first(settle)
    progress = progress and rank == 0

    def place() -> torch.device:
        dev = distributed.setup(cfg.device)
        if cfg.amp == "fp16" and dev.type != "cuda":
            raise ConfigError("--amp fp16 needs a CUDA device; on the CPU use --amp bf16 or off")
        return dev

    device = distributed.main_first(place)
    _set_determinism(cfg.deterministic, device)

    variant = get_variant(cfg.model)
    # rank 0 decodes the store (once), the others then memory-map what it wrote
    store = distributed.main_first(lambda: load_images(
        cfg.dataset, cfg.data_root, cfg.split, image_size=variant.image_size, download=cfg.download,
        max_images=cfg.max_images, progress=progress))
    channels = cfg.channels or int(store.images.shape[1])
    if "channels" not in variant.defaults and cfg.channels is None:
        channels = None  # a model with a fixed channel count; BatchSource checks the data fits it
    model_kwargs = variant.model_kwargs(nz=cfg.nz, ngf=cfg.ngf, ndf=cfg.ndf, channels=channels, **cfg.model_args,
                                        spectral_norm=cfg.spectral_norm)
    if cfg.channels is None:
        cfg = replace(cfg, channels=channels)

    objective: Objective = get_objective(cfg.objective)(**cfg.objective_args)
    torch.manual_seed(cfg.seed)
    if ckpt is not None:
        gen, disc, _ = build_from_checkpoint(ckpt, cfg.variant_file)
    else:
        gen, disc = variant.build(**model_kwargs)
    if world > 1 and cfg.sync_bn:  # BatchNorm over the global batch, as one process would compute it
        gen = distributed.convert_sync_batchnorm(gen, device)
        disc = distributed.convert_sync_batchnorm(disc, device)
    gen.to(device)
    disc.to(device)
    if cfg.channels_last:
        gen.to(memory_format=torch.channels_last)
        disc.to(memory_format=torch.channels_last)

    opt_g = torch.optim.Adam(gen.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                             weight_decay=cfg.weight_decay)
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                             weight_decay=cfg.weight_decay)
    # one scaler per optimizer: each loss has its own backward and its own overflow history
    scaler_d = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16")
    scaler_g = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16")
    z_gen = torch.Generator(device).manual_seed(cfg.seed + 1)
    start = 0
    if ckpt is not None:
        opt_g.load_state_dict(ckpt["opt_G"])
        opt_d.load_state_dict(ckpt["opt_D"])
        for scaler, key in ((scaler_d, "scaler_D"), (scaler_g, "scaler_G")):
            if ckpt.get(key):
                scaler.load_state_dict(ckpt[key])
        z_gen.set_state(ckpt["rng"]["z"].to("cpu"))
        objective.load_state_dict((ckpt.get("objective") or {}).get("state") or {})
        start = int(ckpt["step"])
        ranks_rng = ckpt["rng"].get("torch_ranks")
        if world == 1 or rank == 0:
            torch.set_rng_state(ckpt["rng"]["torch"].to("cpu"))
        elif ranks_rng is not None and len(ranks_rng) == world:
            torch.set_rng_state(ranks_rng[rank].to("cpu"))
        else:  # resumed with another number of processes: a fresh stream per rank, fixed by seed and step
            torch.manual_seed(cfg.seed + 7919 * rank + 1_000_003 * start)
    elif world > 1 and rank > 0:
        torch.manual_seed(cfg.seed + 7919 * rank)  # each rank its own stream (e.g. WGAN-GP's interpolation weights)

    data = BatchSource(store.images, cfg.batch_size, cfg.seed, device, disc.channels, cfg.channels_last,
                       part=(rank, world))
    k_d = cfg.d_steps or 1  # D minibatches per G update; a step is one G update and reads k_d real minibatches
    total = cfg.steps if cfg.steps is not None else math.ceil((cfg.epochs or 25) * data.steps_per_epoch / k_d)
    if start >= total:
        raise ConfigError(f"{out} is already at step {start}; pass --steps above {start} to train further")

    note = None
    if world > 1:
        note = (f"torchrun: {world} processes; batch_size {cfg.batch_size} is the global batch "
                f"({cfg.batch_size // world} images per process)" + (", SyncBatchNorm" if cfg.sync_bn else ""))

    def write_run_files() -> None:
        (out / "samples").mkdir(exist_ok=True)
        (out / "checkpoints").mkdir(exist_ok=True)
        if start:
            trim_metrics(out / "metrics.jsonl", start)
            for stale in (out / "checkpoints").glob(".*.tmp"):  # a killed writer's temporary file; we hold the lock
                stale.unlink(missing_ok=True)
        write_config(cfg, out / "config.toml", note)

    distributed.on_main(write_run_files)
    fixed_z = gen.sample_z(cfg.n_samples, generator=torch.Generator().manual_seed(cfg.seed + 2),
                           device="cpu").to(device)

    g_train, d_train = gen, disc
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        g_train = DistributedDataParallel(gen, device_ids=ids)
        d_train = DistributedDataParallel(disc, device_ids=ids)
    g_step, d_step = (torch.compile(g_train), torch.compile(d_train)) if cfg.compile else (g_train, d_train)
    # G's update runs D without weight gradients: through D itself, not DDP's wrapper, which would wait for them
    d_for_g = d_step if world == 1 else (torch.compile(disc) if cfg.compile else disc)
    autocast = amp_autocast(cfg.amp, device)
    provenance = {
        "ganbench": __version__, "torch": str(torch.__version__), "python": platform.python_version(),
        "device": str(device), "dataset": store.meta,
    }
    if world > 1:
        provenance["world_size"] = world
    record = model_record(variant, model_kwargs)

    def save(step: int) -> Path:
        rng = {"torch": torch.get_rng_state(), "z": z_gen.get_state()}
        if world > 1:  # every rank's stream, so that each rank resumes its own
            rng["torch_ranks"] = distributed.all_gather_object(torch.get_rng_state())

        def write() -> Path:
            payload = {
                "model": record, "G": gen.state_dict(), "D": disc.state_dict(),
                "opt_G": opt_g.state_dict(), "opt_D": opt_d.state_dict(),
                "scaler_D": scaler_d.state_dict() if scaler_d.is_enabled() else None,
                "scaler_G": scaler_g.state_dict() if scaler_g.is_enabled() else None,
                "step": step, "rng": rng,
                "objective": {"name": objective.name, "state": objective.state_dict()},
                "config": cfg.to_dict(), "provenance": provenance,
            }
            path = save_checkpoint(payload, out / "checkpoints" / f"step_{step:07d}.pt")
            link_or_copy(path, out / "checkpoints" / "last.pt")
            plot_curves(metrics_path, out / "curves.png", objective.output_kind)
            return path

        distributed.on_main(write)
        return out / "checkpoints" / f"step_{step:07d}.pt"

    # device-side accumulators: no host sync per step, one per log interval
    zero = torch.zeros((), device=device)
    sums: dict[str, torch.Tensor] = {}
    counts = {"d": 0, "g": 0}
    sides = {"loss_d": "d", "loss_g": "g"}  # which update's count averages each logged scalar
    first_bad = torch.full((), -1, dtype=torch.long, device=device)
    last_ckpt = out / "checkpoints" / "last.pt"
    metrics_path = out / "metrics.jsonl"
    t_window, imgs_window, rate = time.perf_counter(), 0, 0.0
    t_start = time.perf_counter()
    final: dict[str, Any] = {}

    def accumulate(logs: dict[str, torch.Tensor], side: str) -> None:
        for name, value in logs.items():
            sides.setdefault(name, side)
            sums[name] = sums[name] + value.detach().float() if name in sums else zero + value.detach().float()

    def update_d(x: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        with autocast:
            loss, logs = objective.d_loss(d_step, x, fake)
        opt_d.zero_grad(set_to_none=True)
        scaler_d.scale(loss).backward()
        scaler_d.step(opt_d)
        scaler_d.update()
        accumulate(logs, "d")
        return loss.detach()

    def update_g(x: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        disc.requires_grad_(False)  # no weight gradients for D in the G step
        with autocast:
            loss, logs = objective.g_loss(d_for_g, x, fake)
        opt_g.zero_grad(set_to_none=True)
        scaler_g.scale(loss).backward()
        scaler_g.step(opt_g)
        scaler_g.update()
        disc.requires_grad_(True)
        accumulate(logs, "g")
        return loss.detach()

    def check_finite() -> None:
        if world > 1:  # the first bad step of any rank stops every rank, with the same message
            never = torch.iinfo(torch.long).max
            anywhere = distributed.all_reduce_(torch.where(first_bad < 0, never, first_bad), "min")
            bad = int(anywhere)
            bad = -1 if bad == never else bad
        else:
            bad = int(first_bad)
        if bad >= 0:
            where = f"last good checkpoint {last_ckpt}" if last_ckpt.exists() else "no checkpoint was written"
            raise (TrainingDiverged if rank == 0 else distributed.MirroredError)(
                f"loss became NaN or infinite at step {bad + 1}; training stopped ({where}); "
                "lower --lr or try --amp off"
            )

    def record_loss(name: str, value: torch.Tensor, step: int) -> None:
        nonlocal first_bad
        accumulate({name: value}, name[-1])
        counts[name[-1]] += 1
        # new_full fills on the device: no host-to-device copy (and so no wait) per step
        first_bad = torch.where((first_bad < 0) & ~torch.isfinite(value), first_bad.new_full((), step), first_bad)

    def draw_z() -> torch.Tensor:
        z = gen.sample_z(cfg.batch_size, generator=z_gen, device=device)
        # every rank draws the global batch of z from the same stream and keeps its slice
        return z if world == 1 else z[rank * data.local:(rank + 1) * data.local]

    sampler = None  # rank 0's G for sample grids: a plain copy when G's BatchNorm would wait for the other ranks

    def sample_grid(done: int) -> None:
        nonlocal sampler
        net = gen
        if world > 1 and cfg.sync_bn:
            if sampler is None:
                with torch.random.fork_rng(devices=[]):
                    sampler = variant.build(**model_kwargs)[0].to(device)
            sampler.load_state_dict(gen.state_dict())
            net = sampler
        images = generate(net, fixed_z)
        save_grid(images, out / "samples" / f"step_{done:07d}.png")
        if writer is not None:
            from torchvision.utils import make_grid

            writer.add_image("samples", make_grid(images.cpu(), nrow=max(1, round(len(images) ** 0.5)),
                                                  normalize=True, value_range=(-1, 1)), done)

    def write_row(row: dict[str, Any]) -> None:
        with open(metrics_path, "ab", buffering=0) as fh:  # one write(2) per row: a kill tears at most it
            fh.write((json.dumps(row) + "\n").encode("utf-8"))
        if writer is not None:
            for key, value in row.items():
                if key != "step":
                    writer.add_scalar(f"train/{key}", value, row["step"])
            writer.flush()

    writer = _tensorboard_writer(out) if cfg.tensorboard and rank == 0 else None
    bar = _progress_bar(total, start, progress)
    step = start
    try:
        for step in range(start, total):
            gen.train()
            loss_d = loss_g = None
            if cfg.schedule == "simultaneous":
                for j in range(k_d):  # D on k_d fresh minibatches; G's update reuses the last fake batch
                    x = data.batch(step * k_d + j)
                    z = draw_z()
                    with autocast, torch.set_grad_enabled(j == k_d - 1):
                        fake = g_step(z)
                    loss_d = update_d(x, fake.detach())
                    if j < k_d - 1:
                        record_loss("loss_d", loss_d, step)
                loss_g = update_g(x, fake)
            elif step % 2 == 1:  # alternating, as in the authors' code: this minibatch updates D only
                x = data.batch(step)
                z = draw_z()
                with torch.no_grad(), autocast:
                    fake = g_step(z)
                loss_d = update_d(x, fake)
            else:  # alternating, even minibatch: G only (the authors' loop starts with a G update)
                x = data.batch(step)
                z = draw_z()
                with autocast:
                    fake = g_step(z)
                loss_g = update_g(x, fake)
            for name, value in (("loss_d", loss_d), ("loss_g", loss_g)):
                if value is not None:
                    record_loss(name, value, step)
            imgs_window += cfg.batch_size * (k_d if cfg.schedule == "simultaneous" else 1)
            done = step + 1
            if done % cfg.log_every == 0 or done == total:
                check_finite()
                elapsed = time.perf_counter() - t_window
                rate = imgs_window / elapsed if elapsed > 0 else 0.0
                if world > 1:  # window means over every rank's images: one collective per log interval
                    keys = sorted(sums)
                    total_sums = distributed.all_reduce_(torch.stack([sums[k] for k in keys])) / world
                    sums.update(zip(keys, total_sums.unbind()))
                final = _log_row(sums, counts, sides, done, rate, time.perf_counter() - t_start)
                if rank == 0:
                    write_row(final)
                shown = {k: f"{v:.3g}" for k, v in final.items() if k not in ("step", "images_per_s", "elapsed_s")}
                bar.set_postfix(**shown, img_s=f"{rate:.0f}", refresh=False)
                sums.clear()
                counts.update(d=0, g=0)
                t_window, imgs_window = time.perf_counter(), 0
            if done % cfg.sample_every == 0 or done == total:
                check_finite()
                if rank == 0:
                    sample_grid(done)
            if done % cfg.checkpoint_every == 0 or done == total:
                check_finite()
                last_ckpt = save(done)
            bar.update(1)
    except RuntimeError as exc:
        if not distributed.lost_peer(exc):
            raise
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        where = f"the last checkpoint is {last_ckpt}" if last_ckpt.exists() else "no checkpoint was written"
        raise DistributedError(
            f"another process of this torchrun job stopped or cannot be reached at step {step + 1} ({first}); "
            f"{where}: look at that process's output, then start the job again with --resume") from None
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    return TrainResult(out, total, out / "checkpoints" / "last.pt", rate, final)


def _log_row(sums: dict[str, torch.Tensor], counts: dict[str, int], sides: dict[str, str], step: int, rate: float,
             elapsed: float) -> dict[str, Any]:
    """Window means: losses and the objective's scalars over the D or G updates that produced them."""
    row: dict[str, Any] = {"step": step}
    for name in ("loss_d", "loss_g", "d_real", "d_fake", *sorted(set(sums) - {"loss_d", "loss_g", "d_real", "d_fake"})):
        if name in sums:
            row[name] = float(sums[name]) / max(counts[sides[name]], 1)
    row.update(images_per_s=rate, elapsed_s=elapsed)
    return row


def _check_global_batch(batch_size: int, world: int) -> None:
    if world > 1 and batch_size % world:
        raise ConfigError(f"--batch-size {batch_size} is the global batch of {world} processes and must be a "
                          f"multiple of {world}; pass --batch-size {batch_size // world * world or world}")


def require_tensorboard() -> None:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        raise ConfigError("--tensorboard needs the tensorboard package; install it with "
                          "pip install 'ganbench[tensorboard]'") from None


def _tensorboard_writer(out: Path):
    """A SummaryWriter whose event files lie in the run directory, beside metrics.jsonl."""
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(out))


def _progress_bar(total: int, start: int, enabled: bool):
    return progress_bar(total, "train", "step", initial=start, enabled=enabled, smoothing=0.1)


def _set_determinism(deterministic: bool, device: torch.device) -> None:
    if deterministic or torch.are_deterministic_algorithms_enabled():
        # switching it off when it is already off still imports dynamo and inductor: seconds at every start
        torch.use_deterministic_algorithms(deterministic, warn_only=False)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cudnn.deterministic = deterministic
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
