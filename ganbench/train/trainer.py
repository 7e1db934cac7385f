"""The Trainer: one training run, from set-up through steps, logging and checkpoints to the end, resumable bit for bit.

A step is one G update and the D updates before it (simultaneous schedule), or one of the two (alternating).
Each method does one thing; `run` calls them in order. The objective instance is created once, from the resolved
configuration, and every loss goes through it: the Trainer never branches on an objective's name.

Modules the objective owns (objectives/base.py) follow their side: their parameters are extra parameter groups of
that side's Adam (so its settings and its checkpointed state cover them), they are placed, converted to
SyncBatchNorm and wrapped in DDP as G and D are, set to training mode with G, and saved under the checkpoint's
"owned" key. In each update the losses see the updating side's modules as trained (DDP wrappers under torchrun)
and the other side's as plain modules; in G's update D's side gets no weight gradients.

With --online-probe a linear head (train/online_probe.py) reads D's layers in each D update's pass on the real
batch and learns the batch's labels after the update; it has its own optimizer and checkpoint key ("online_probe").
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from ganbench import __version__, distributed
from ganbench.checkpoint import (
    build_from_checkpoint,
    link_or_copy,
    load_checkpoint,
    load_owned_modules,
    model_record,
    owned_payload,
    save_checkpoint,
)
from ganbench.config import TrainConfig, write_config
from ganbench.data import load_images
from ganbench.devices import amp_autocast
from ganbench.errors import ConfigError, DistributedError, TrainingDiverged
from ganbench.models.base import generate
from ganbench.objectives import Objective
from ganbench.progress import progress_bar
from ganbench.registry import get_objective, get_variant
from ganbench.train.artifacts import plot_curves, save_grid
from ganbench.train.batches import BatchSource
from ganbench.train.online_probe import OnlineProbe
from ganbench.train.rundir import prepare_run_dir, trim_metrics
from ganbench.train.settings import check_global_batch, merge_resume_config, require_tensorboard, resolve_config


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    last_checkpoint: Path
    images_per_second: float
    final_metrics: dict[str, float]


class Trainer:
    """One training run in the run directory out, which the caller holds locked (rank 0).

    resolved: the configuration already resolved by the caller (a new run), or None to resolve it here from
    cfg and, on resume, the checkpoint's configuration. explicit: names of settings the user gave on this call.
    """

    def __init__(self, cfg: TrainConfig, out: Path, *, resume: bool, overwrite: bool, explicit: set[str] | None,
                 progress: bool, world: int, rank: int, resolved: TrainConfig | None = None):
        self.cfg, self.out, self.resume, self.overwrite = cfg, out, resume, overwrite
        self.explicit = explicit or set()
        self.world, self.rank = world, rank
        self.progress = progress and rank == 0
        self.resolved = resolved
        self.ckpt: dict[str, Any] | None = None
        self.start = 0
        self.metrics_path = out / "metrics.jsonl"
        self.last_path = out / "checkpoints" / "last.pt"
        self.last_ckpt = self.last_path  # the newest checkpoint this run wrote, named in error messages
        self.writer = None
        self.sampler = None  # rank 0's G for sample grids when G's SyncBatchNorm would wait for the other ranks

    # ------------------------------------------------------------------------------------------------- set-up
    def set_up(self) -> None:
        """Everything before the first step, in the order that fixes the random streams of a run."""
        distributed.on_main(lambda: prepare_run_dir(self.out, self.resume, self.overwrite))
        self.ckpt, self.cfg = distributed.main_first(self._settle)
        self.device = distributed.main_first(self._place)
        _set_determinism(self.cfg.deterministic, self.device)
        self._load_store()
        self._build_networks()
        self._build_probe()
        self._build_optimizers()
        if self.ckpt is not None:
            self._restore(self.ckpt)
        elif self.world > 1 and self.rank > 0:
            # each rank its own stream (e.g. WGAN-GP's interpolation weights)
            torch.manual_seed(self.cfg.seed + 7919 * self.rank)
        self._prepare_data()
        distributed.on_main(self._write_run_files)
        self.fixed_z = self.gen.sample_z(self.cfg.n_samples, generator=torch.Generator().manual_seed(self.cfg.seed + 2),
                                         device="cpu").to(self.device)
        self._wrap_for_training()
        self.autocast = amp_autocast(self.cfg.amp, self.device)
        self.provenance = self._provenance()
        self.record = model_record(self.variant, self.model_kwargs)

    def _settle(self) -> tuple[dict[str, Any] | None, TrainConfig]:
        """The checkpoint to resume from (or None) and the configuration of the run, resolved once."""
        ckpt, run_cfg = None, self.resolved or self.cfg
        if self.resume:
            ckpt = load_checkpoint(self.last_path)
            saved = TrainConfig.from_dict(ckpt["config"], where=str(self.last_path))
            run_cfg = merge_resume_config(saved, self.cfg, self.explicit)
        if self.resume or self.resolved is None:
            run_cfg = resolve_config(run_cfg)
        check_global_batch(run_cfg.batch_size, self.world)
        if run_cfg.tensorboard:
            require_tensorboard()
        return ckpt, run_cfg

    def _place(self) -> torch.device:
        dev = distributed.setup(self.cfg.device)
        if self.cfg.amp == "fp16" and dev.type != "cuda":
            raise ConfigError("--amp fp16 needs a CUDA device; on the CPU use --amp bf16 or off")
        return dev

    def _load_store(self) -> None:
        """The decoded images (rank 0 decodes once, the others memory-map them) and the networks' arguments."""
        cfg = self.cfg
        self.variant = get_variant(cfg.model)
        self.store = distributed.main_first(lambda: load_images(
            cfg.dataset, cfg.data_root, cfg.split, image_size=self.variant.image_size, download=cfg.download,
            max_images=cfg.max_images, progress=self.progress))
        channels = cfg.channels or int(self.store.images.shape[1])
        if "channels" not in self.variant.defaults and cfg.channels is None:
            channels = None  # a model with a fixed channel count; BatchSource checks the data fits it
        self.model_kwargs = self.variant.model_kwargs(nz=cfg.nz, ngf=cfg.ngf, ndf=cfg.ndf, channels=channels,
                                                      **cfg.model_args, spectral_norm=cfg.spectral_norm)
        if cfg.channels is None:
            self.cfg = replace(cfg, channels=channels)

    def _build_networks(self) -> None:
        """The objective, then G, D and the objective's owned modules (seeded; from the checkpoint on resume), on
        the device in their layout."""
        cfg = self.cfg
        self.objective: Objective = get_objective(cfg.objective)(**cfg.objective_args)
        torch.manual_seed(cfg.seed)
        if self.ckpt is not None:
            gen, disc, _ = build_from_checkpoint(self.ckpt, cfg.variant_file)
        else:
            gen, disc = self.variant.build(**self.model_kwargs)
        owned = self.objective.own_modules(gen, disc)
        if self.ckpt is not None:
            load_owned_modules(owned, self.ckpt)
        self.gen, self.disc = self._place_module(gen), self._place_module(disc)
        self.owned = {name: replace(item, module=self._place_module(item.module)) for name, item in owned.items()}

    def _build_probe(self) -> None:
        """With --online-probe: its head (from the checkpoint on resume) and its hooks on D's feature layers."""
        self.probe = None
        if not self.cfg.online_probe:
            return
        classes = len(self.store.classes)
        if classes < 2:
            raise ConfigError(f"--online-probe needs labelled images; {self.cfg.dataset} gives {classes} class(es) "
                              "here; train without --online-probe")
        self.probe = OnlineProbe(self.disc, classes, self.device, self.world)
        if self.ckpt is not None:
            if "online_probe" not in self.ckpt:
                raise ConfigError(f"{self.last_path} was trained without --online-probe; resume without it")
            self.probe.load_state_dict(self.ckpt["online_probe"])

    def _place_module(self, net: torch.nn.Module) -> torch.nn.Module:
        """net on the device, with SyncBatchNorm under torchrun when asked (BatchNorm over the global batch, as one
        process would compute it) and in channels_last layout when asked."""
        if self.world > 1 and self.cfg.sync_bn:
            net = distributed.convert_sync_batchnorm(net, self.device)
        net.to(self.device)
        if self.cfg.channels_last:
            net.to(memory_format=torch.channels_last)
        return net

    def _build_optimizers(self) -> None:
        cfg = self.cfg
        self.opt_g = torch.optim.Adam(self.gen.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                                      weight_decay=cfg.weight_decay)
        self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                                      weight_decay=cfg.weight_decay)
        for item in self.owned.values():  # one group per owned module, after its side's network, in build order
            (self.opt_d if item.side == "d" else self.opt_g).add_param_group({"params": list(item.module.parameters())})
        # one scaler per optimizer: each loss has its own backward and its own overflow history
        self.scaler_d = torch.amp.GradScaler(self.device.type, enabled=cfg.amp == "fp16")
        self.scaler_g = torch.amp.GradScaler(self.device.type, enabled=cfg.amp == "fp16")
        self.z_gen = torch.Generator(self.device).manual_seed(cfg.seed + 1)

    def _restore(self, ckpt: dict[str, Any]) -> None:
        """Optimizer, scaler, objective and random states of the checkpoint: the run goes on as if never stopped."""
        self.opt_g.load_state_dict(ckpt["opt_G"])
        self.opt_d.load_state_dict(ckpt["opt_D"])
        for scaler, key in ((self.scaler_d, "scaler_D"), (self.scaler_g, "scaler_G")):
            if ckpt.get(key):
                scaler.load_state_dict(ckpt[key])
        self.z_gen.set_state(ckpt["rng"]["z"].to("cpu"))
        self.objective.load_state_dict((ckpt.get("objective") or {}).get("state") or {})
        self.start = int(ckpt["step"])
        ranks_rng = ckpt["rng"].get("torch_ranks")
        if self.world == 1 or self.rank == 0:
            torch.set_rng_state(ckpt["rng"]["torch"].to("cpu"))
        elif ranks_rng is not None and len(ranks_rng) == self.world:
            torch.set_rng_state(ranks_rng[self.rank].to("cpu"))
        else:  # resumed with another number of processes: a fresh stream per rank, fixed by seed and step
            torch.manual_seed(self.cfg.seed + 7919 * self.rank + 1_000_003 * self.start)

    def _prepare_data(self) -> None:
        """The batch source and the step count; refuses a run that is already complete."""
        cfg = self.cfg
        self.data = BatchSource(self.store.images, cfg.batch_size, cfg.seed, self.device, self.disc.channels,
                                cfg.channels_last, part=(self.rank, self.world),
                                labels=self.store.labels if self.probe is not None else None)
        self.k_d = cfg.d_steps or 1  # D minibatches per G update; a step is one G update and reads k_d minibatches
        self.total = (cfg.steps if cfg.steps is not None
                      else math.ceil((cfg.epochs or 25) * self.data.steps_per_epoch / self.k_d))
        if self.start >= self.total:
            raise ConfigError(f"{self.out} is already at step {self.start}; pass --steps above {self.start} "
                              "to train further")
        cfg.check_lr_decay(self.total)  # with --epochs the total is known only here

    def _write_run_files(self) -> None:
        out = self.out
        (out / "samples").mkdir(exist_ok=True)
        (out / "checkpoints").mkdir(exist_ok=True)
        if self.start:
            trim_metrics(self.metrics_path, self.start)
            for stale in (out / "checkpoints").glob(".*.tmp"):  # a killed writer's temporary file; we hold the lock
                stale.unlink(missing_ok=True)
        note = None
        if self.world > 1:
            note = (f"torchrun: {self.world} processes; batch_size {self.cfg.batch_size} is the global batch "
                    f"({self.cfg.batch_size // self.world} images per process)"
                    + (", SyncBatchNorm" if self.cfg.sync_bn else ""))
        write_config(self.cfg, out / "config.toml", note)

    def _wrap_for_training(self) -> None:
        """The modules the updates call: DDP under torchrun, compiled with --compile."""
        g_train, d_train = self.gen, self.disc
        if self.world > 1:
            g_train, d_train = self._ddp(self.gen), self._ddp(self.disc)
        compile_ = self.cfg.compile
        self.g_step, self.d_step = (torch.compile(g_train), torch.compile(d_train)) if compile_ else (g_train, d_train)
        # G's update runs D without weight gradients: through D itself, not DDP's wrapper, which would wait for them
        self.d_for_g = self.d_step if self.world == 1 else (torch.compile(self.disc) if compile_ else self.disc)
        # owned modules, not compiled: small heads, or an encoder a probe reads later
        trained = {name: (self._ddp(item.module, find_unused_parameters=True) if self.world > 1 else item.module)
                   for name, item in self.owned.items()}
        self.views = {side: {name: trained[name] if item.side == side else item.module
                             for name, item in self.owned.items()} for side in ("d", "g")}

    def _ddp(self, net: torch.nn.Module, **options: Any) -> torch.nn.Module:
        """net in DDP. Owned modules pass find_unused_parameters: one may hold parameters no loss reaches (BiGAN's
        encoder keeps the copy of D's output layer), which DDP would otherwise wait for."""
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(net, device_ids=ids, **options)

    def _provenance(self) -> dict[str, Any]:
        provenance = {
            "ganbench": __version__, "torch": str(torch.__version__), "python": platform.python_version(),
            "device": str(self.device), "dataset": self.store.meta,
        }
        if self.world > 1:
            provenance["world_size"] = self.world
        return provenance

    # --------------------------------------------------------------------------------------------------- step
    def step(self, step: int) -> None:
        """One step: D and G updates on the schedule; their losses go to the window's sums."""
        if self.cfg.lr_decay == "linear":
            self._set_lr(self.cfg.lr * self.cfg.lr_factor(step, self.total))
        self.gen.train()
        for item in self.owned.values():
            if item.side == "g":  # D and its side stay in training mode throughout
                item.module.train()
        if not self.objective.adversarial:  # an autoencoder: G's side on a real batch, no D update
            loss_d, loss_g = None, self._update_g(self.data.batch(step), None, self._draw_z())
        elif self.cfg.schedule == "simultaneous":
            loss_d, loss_g = self._simultaneous_step(step)
        elif step % 2 == 1:  # alternating, as in the authors' code: this minibatch updates D only
            loss_d, loss_g = self._alternating_d_step(step), None
        else:  # alternating, even minibatch: G only (the authors' loop starts with a G update)
            loss_d, loss_g = None, self._alternating_g_step(step)
        for name, value in (("loss_d", loss_d), ("loss_g", loss_g)):
            if value is not None:
                self._record_loss(name, value, step)
        simultaneous = self.cfg.schedule == "simultaneous" and self.objective.adversarial
        self.imgs_window += self.cfg.batch_size * (self.k_d if simultaneous else 1)

    def _set_lr(self, lr: float) -> None:
        """Every parameter group of both sides (owned modules included) at lr."""
        for opt in (self.opt_g, self.opt_d):
            for group in opt.param_groups:
                group["lr"] = lr

    def _simultaneous_step(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """D on k_d fresh minibatches; G's update reuses the last fake batch (and its graph to G)."""
        k_d = self.k_d
        for j in range(k_d):
            x = self.data.batch(step * k_d + j)
            z = self._draw_z()
            with self.autocast, torch.set_grad_enabled(j == k_d - 1):
                fake = self.g_step(z)
            loss_d = self._update_d(x, fake.detach(), z, step * k_d + j)
            if j < k_d - 1:
                self._record_loss("loss_d", loss_d, step)
        return loss_d, self._update_g(x, fake, z)

    def _alternating_d_step(self, step: int) -> torch.Tensor:
        x = self.data.batch(step)
        z = self._draw_z()
        with torch.no_grad(), self.autocast:
            fake = self.g_step(z)
        return self._update_d(x, fake, z, step)

    def _alternating_g_step(self, step: int) -> torch.Tensor:
        x = self.data.batch(step)
        z = self._draw_z()
        with self.autocast:
            fake = self.g_step(z)
        return self._update_g(x, fake, z)

    def _draw_z(self) -> torch.Tensor:
        z = self.gen.sample_z(self.cfg.batch_size, generator=self.z_gen, device=self.device)
        # every rank draws the global batch of z from the same stream and keeps its slice
        local = self.data.local
        return z if self.world == 1 else z[self.rank * local:(self.rank + 1) * local]

    def _latent(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """The keyword z for an objective whose losses take the latent batch (Objective.takes_z)."""
        return {"z": z} if self.objective.takes_z else {}

    def _generator(self) -> dict[str, torch.nn.Module]:
        """The keyword G for an objective whose G loss takes G itself (Objective.takes_g)."""
        return {"G": self.g_step} if self.objective.takes_g else {}

    def _update_d(self, x: torch.Tensor, fake: torch.Tensor, z: torch.Tensor, batch: int) -> torch.Tensor:
        """D's update on the real batch x (minibatch number batch of the data order) and a fake batch."""
        self.objective.use_modules(self.views["d"])
        if self.probe is not None:
            self.probe.arm(x)
        with self.autocast:
            loss, logs = self.objective.d_loss(self.d_step, x, fake, **self._latent(z))
        self.opt_d.zero_grad(set_to_none=True)
        self.scaler_d.scale(loss).backward()
        self.scaler_d.step(self.opt_d)
        self.scaler_d.update()
        self._accumulate(logs, "d")
        if self.probe is not None:
            self._accumulate(self.probe.update(self.data.batch_labels(batch), self.objective.name), "d")
        return loss.detach()

    def _update_g(self, x: torch.Tensor, fake: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        self._freeze_d_side(True)  # no weight gradients for D's side in the G step
        self.objective.use_modules(self.views["g"])
        with self.autocast:
            loss, logs = self.objective.g_loss(self.d_for_g, x, fake, **self._latent(z), **self._generator())
        self.opt_g.zero_grad(set_to_none=True)
        self.scaler_g.scale(loss).backward()
        self.scaler_g.step(self.opt_g)
        self.scaler_g.update()
        self._freeze_d_side(False)
        self._accumulate(logs, "g")
        return loss.detach()

    def _freeze_d_side(self, frozen: bool) -> None:
        self.disc.requires_grad_(not frozen)
        for item in self.owned.values():
            if item.side == "d":
                item.module.requires_grad_(not frozen)

    # ------------------------------------------------------------------------------------------------ logging
    def _reset_window(self) -> None:
        """Device-side accumulators of the log window: no host sync per step, one per log interval."""
        self.zero = torch.zeros((), device=self.device)
        self.sums: dict[str, torch.Tensor] = {}
        self.counts = {"d": 0, "g": 0}
        self.sides = {"loss_d": "d", "loss_g": "g"}  # which update's count averages each logged scalar
        self.first_bad = torch.full((), -1, dtype=torch.long, device=self.device)
        self.t_window, self.imgs_window, self.rate = time.perf_counter(), 0, 0.0

    def _accumulate(self, logs: dict[str, torch.Tensor], side: str) -> None:
        sums = self.sums
        for name, value in logs.items():
            self.sides.setdefault(name, side)
            sums[name] = sums[name] + value.detach().float() if name in sums else self.zero + value.detach().float()

    def _record_loss(self, name: str, value: torch.Tensor, step: int) -> None:
        self._accumulate({name: value}, name[-1])
        self.counts[name[-1]] += 1
        first_bad = self.first_bad
        # new_full fills on the device: no host-to-device copy (and so no wait) per step
        self.first_bad = torch.where((first_bad < 0) & ~torch.isfinite(value), first_bad.new_full((), step),
                                     first_bad)

    def _check_finite(self) -> None:
        """Stop at the first NaN or infinite loss (any rank's, under torchrun: every rank stops alike)."""
        if self.world > 1:
            never = torch.iinfo(torch.long).max
            anywhere = distributed.all_reduce_(torch.where(self.first_bad < 0, never, self.first_bad), "min")
            bad = int(anywhere)
            bad = -1 if bad == never else bad
        else:
            bad = int(self.first_bad)
        if bad >= 0:
            where = (f"last good checkpoint {self.last_ckpt}" if self.last_ckpt.exists()
                     else "no checkpoint was written")
            raise (TrainingDiverged if self.rank == 0 else distributed.MirroredError)(
                f"loss became NaN or infinite at step {bad + 1}; training stopped ({where}); "
                "lower --lr or try --amp off"
            )

    def _log(self, done: int) -> None:
        """The window's means as one metrics row (rank 0 writes it), shown on the progress bar."""
        self._check_finite()
        elapsed = time.perf_counter() - self.t_window
        self.rate = self.imgs_window / elapsed if elapsed > 0 else 0.0
        if self.world > 1:  # window means over every rank's images: one collective per log interval
            keys = sorted(self.sums)
            total_sums = distributed.all_reduce_(torch.stack([self.sums[k] for k in keys])) / self.world
            self.sums.update(zip(keys, total_sums.unbind()))
        self.final = _log_row(self.sums, self.counts, self.sides, done, self.rate, time.perf_counter() - self.t_start)
        if self.cfg.lr_decay == "linear":  # the rate of the window's last step
            self.final["lr"] = self.opt_g.param_groups[0]["lr"]
        if self.rank == 0:
            self._write_row(self.final)
        shown = {k: f"{v:.3g}" for k, v in self.final.items() if k not in ("step", "images_per_s", "elapsed_s")}
        self.bar.set_postfix(**shown, img_s=f"{self.rate:.0f}", refresh=False)
        self.sums.clear()
        self.counts.update(d=0, g=0)
        self.t_window, self.imgs_window = time.perf_counter(), 0

    def _write_row(self, row: dict[str, Any]) -> None:
        with open(self.metrics_path, "ab", buffering=0) as fh:  # one write(2) per row: a kill tears at most it
            fh.write((json.dumps(row) + "\n").encode("utf-8"))
        if self.writer is not None:
            for key, value in row.items():
                if key != "step":
                    self.writer.add_scalar(f"train/{key}", value, row["step"])
            self.writer.flush()

    def _sample_grid(self, done: int) -> None:
        """Rank 0's grid of G on the fixed z, written to samples/ (and TensorBoard)."""
        self._check_finite()
        if self.rank != 0:
            return
        net = self.gen
        if self.world > 1 and self.cfg.sync_bn:  # a plain copy: G's SyncBatchNorm would wait for the other ranks
            if self.sampler is None:
                with torch.random.fork_rng(devices=[]):
                    self.sampler = self.variant.build(**self.model_kwargs)[0].to(self.device)
            self.sampler.load_state_dict(self.gen.state_dict())
            net = self.sampler
        images = generate(net, self.fixed_z)
        save_grid(images, self.out / "samples" / f"step_{done:07d}.png")
        if self.writer is not None:
            from torchvision.utils import make_grid

            self.writer.add_image("samples", make_grid(images.cpu(), nrow=max(1, round(len(images) ** 0.5)),
                                                       normalize=True, value_range=(-1, 1)), done)

    # -------------------------------------------------------------------------------------------- checkpoints
    def _save(self, step: int) -> Path:
        """The checkpoint of step (rank 0 writes it; every rank's random stream goes into it)."""
        self._check_finite()
        rng = {"torch": torch.get_rng_state(), "z": self.z_gen.get_state()}
        if self.world > 1:  # every rank's stream, so that each rank resumes its own
            rng["torch_ranks"] = distributed.all_gather_object(torch.get_rng_state())
        path = self.out / "checkpoints" / f"step_{step:07d}.pt"

        def write() -> None:
            save_checkpoint(self._payload(step, rng), path)
            link_or_copy(path, self.last_path)
            plot_curves(self.metrics_path, self.out / "curves.png", self.objective.output_kind)

        distributed.on_main(write)
        return path

    def _payload(self, step: int, rng: dict[str, Any]) -> dict[str, Any]:
        # "owned" only when there are owned modules: checkpoints of the other objectives stay as they were
        extra = {"owned": owned_payload(self.owned)} if self.owned else {}
        if self.probe is not None:
            extra["online_probe"] = self.probe.state_dict()
        return {
            "model": self.record, "G": self.gen.state_dict(), "D": self.disc.state_dict(),
            "opt_G": self.opt_g.state_dict(), "opt_D": self.opt_d.state_dict(),
            "scaler_D": self.scaler_d.state_dict() if self.scaler_d.is_enabled() else None,
            "scaler_G": self.scaler_g.state_dict() if self.scaler_g.is_enabled() else None,
            "step": step, "rng": rng,
            "objective": {"name": self.objective.name, "state": self.objective.state_dict()},
            "config": self.cfg.to_dict(), "provenance": self.provenance, **extra,
        }

    # ---------------------------------------------------------------------------------------------------- run
    def run(self) -> TrainResult:
        """Set up, train to the last step (logging, sampling and checkpointing on their intervals), return."""
        self.set_up()
        self._reset_window()
        self.t_start = time.perf_counter()
        self.final: dict[str, Any] = {}
        self.writer = _tensorboard_writer(self.out) if self.cfg.tensorboard and self.rank == 0 else None
        self.bar = progress_bar(self.total, "train", "step", initial=self.start, enabled=self.progress,
                                smoothing=0.1)
        step = self.start
        try:
            for step in range(self.start, self.total):
                self.step(step)
                self._after_step(step + 1)
        except RuntimeError as exc:
            if not distributed.lost_peer(exc):
                raise
            self._lost_peer(exc, step)
        finally:
            self.bar.close()
            if self.writer is not None:
                self.writer.close()
        return TrainResult(self.out, self.total, self.last_path, self.rate, self.final)

    def _after_step(self, done: int) -> None:
        """Logging, sample grids and checkpoints that fall due after step done (1-based)."""
        last = done == self.total
        if done % self.cfg.log_every == 0 or last:
            self._log(done)
        if done % self.cfg.sample_every == 0 or last:
            self._sample_grid(done)
        if done % self.cfg.checkpoint_every == 0 or last:
            self.last_ckpt = self._save(done)
        self.bar.update(1)

    def _lost_peer(self, exc: RuntimeError, step: int) -> None:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        where = f"the last checkpoint is {self.last_ckpt}" if self.last_ckpt.exists() else "no checkpoint was written"
        raise DistributedError(
            f"another process of this torchrun job stopped or cannot be reached at step {step + 1} ({first}); "
            f"{where}: look at that process's output, then start the job again with --resume") from None


def _log_row(sums: dict[str, torch.Tensor], counts: dict[str, int], sides: dict[str, str], step: int, rate: float,
             elapsed: float) -> dict[str, Any]:
    """Window means: losses and the objective's scalars over the D or G updates that produced them."""
    row: dict[str, Any] = {"step": step}
    for name in ("loss_d", "loss_g", "d_real", "d_fake", *sorted(set(sums) - {"loss_d", "loss_g", "d_real", "d_fake"})):
        if name in sums:
            row[name] = float(sums[name]) / max(counts[sides[name]], 1)
    row.update(images_per_s=rate, elapsed_s=elapsed)
    return row


def _tensorboard_writer(out: Path):
    """A SummaryWriter whose event files lie in the run directory, beside metrics.jsonl."""
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(out))


def _set_determinism(deterministic: bool, device: torch.device) -> None:
    if deterministic or torch.are_deterministic_algorithms_enabled():
        # switching it off when it is already off still imports dynamo and inductor: seconds at every start
        torch.use_deterministic_algorithms(deterministic, warn_only=False)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cudnn.deterministic = deterministic
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
