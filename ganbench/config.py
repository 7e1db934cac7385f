"""Settings of a training run: one dataclass shared by the API, the CLI and the run's config.toml."""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import tomli_w

from ganbench.choices import AMP_MODES, DEVICES, LR_DECAYS, SCHEDULES  # noqa: F401 (re-exported: the CLI and tests import them here)
from ganbench.errors import ConfigError


@dataclass
class TrainConfig:
    """Everything that determines a training run. None means "the variant's default" until `resolved`."""

    model: str = "dcgan32"
    variant_file: str | None = None
    nz: int | None = None
    ngf: int | None = None
    ndf: int | None = None
    channels: int | None = None
    dataset: str = "cifar10"
    data_root: str | None = None
    split: str = "train"
    download: bool = False
    max_images: int | None = None
    steps: int | None = None
    epochs: float | None = None
    batch_size: int = 128
    lr: float | None = None
    beta1: float | None = None
    beta2: float | None = None
    weight_decay: float | None = None
    lr_decay: str | None = None
    lr_decay_from: int | None = None
    objective: str | None = None
    objective_file: str | None = None
    objective_args: dict[str, Any] = dataclasses.field(default_factory=dict)
    d_steps: int | None = None
    model_args: dict[str, Any] = dataclasses.field(default_factory=dict)
    spectral_norm: bool = False
    schedule: str | None = None
    seed: int = 0
    deterministic: bool = False
    device: str = "auto"
    amp: str = "off"
    channels_last: bool = False
    compile: bool = False
    log_every: int = 50
    sample_every: int = 500
    checkpoint_every: int = 1000
    n_samples: int = 64
    sync_bn: bool = False
    tensorboard: bool = False
    online_probe: bool = False

    def validate(self) -> TrainConfig:
        """Refuse values no run could use, each with the accepted ones."""
        if self.steps is not None and self.epochs is not None:
            raise ConfigError("give --steps or --epochs, not both")
        if self.steps is not None and self.steps < 1:
            raise ConfigError(f"--steps must be at least 1, got {self.steps}")
        if self.epochs is not None and self.epochs <= 0:
            raise ConfigError(f"--epochs must be positive, got {self.epochs}")
        for name in ("batch_size", "log_every", "sample_every", "checkpoint_every", "n_samples"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.schedule is not None and self.schedule not in SCHEDULES:
            raise ConfigError(f"unknown schedule {self.schedule!r}; choose {' or '.join(SCHEDULES)}")
        if self.lr_decay is not None and self.lr_decay not in LR_DECAYS:
            raise ConfigError(f"unknown --lr-decay {self.lr_decay!r}; choose {' or '.join(LR_DECAYS)}")
        if self.lr_decay_from is not None:
            if self.lr_decay_from < 0:
                raise ConfigError(f"--lr-decay-from must be zero or positive, got {self.lr_decay_from}")
            if self.lr_decay in (None, "constant"):
                raise ConfigError("--lr-decay-from is the step where a decay begins; give --lr-decay linear too")
            if self.steps is not None:
                self.check_lr_decay(self.steps)
        if self.amp not in AMP_MODES:
            raise ConfigError(f"unknown --amp {self.amp!r}; choose one of {', '.join(AMP_MODES)}")
        if self.device not in DEVICES:
            raise ConfigError(f"unknown --device {self.device!r}; choose one of {', '.join(DEVICES)}")
        for name in ("lr", "beta1", "beta2", "weight_decay", "epochs"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise ConfigError(f"--{name.replace('_', '-')} must be a finite number, got {value}")
        if self.lr is not None and self.lr <= 0:
            raise ConfigError(f"--lr must be positive, got {self.lr}")
        for name in ("beta1", "beta2"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < 1:
                raise ConfigError(f"--{name} must lie in [0, 1), got {value}")
        if self.weight_decay is not None and self.weight_decay < 0:
            raise ConfigError(f"--weight-decay must be zero or positive, got {self.weight_decay}")
        for name in ("nz", "ngf", "ndf", "channels", "max_images"):
            value = getattr(self, name)
            if value is not None and value < 1:
                owner = "dataset" if name in ("channels", "max_images") else "model"
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {value} "
                                  f"(leave it out for the {owner}'s default)")
        if self.seed < 0:
            raise ConfigError(f"--seed must be zero or positive, got {self.seed}")
        if self.d_steps is not None and self.d_steps < 1:
            raise ConfigError(f"--d-steps must be at least 1, got {self.d_steps}")
        if self.online_probe and self.compile:
            raise ConfigError("--online-probe reads D's layers through hooks, which --compile does not keep; "
                              "give one of them")
        if (self.d_steps or 1) > 1 and self.schedule == "alternating":
            raise ConfigError("--schedule alternating takes one D minibatch per G minibatch; "
                              "with several D steps per G step use --schedule simultaneous")
        return self

    def check_lr_decay(self, total: int) -> None:
        """Refuse a decay that would begin at or after the last of the run's `total` steps."""
        if (self.lr_decay_from or 0) >= total:
            raise ConfigError(f"--lr-decay-from {self.lr_decay_from} leaves no step to decay over (the run ends at "
                              f"step {total}); give a step below {total}")

    def lr_factor(self, step: int, total: int) -> float:
        """The learning rate of step `step` (0-based, as --steps counts) of a run of `total` steps, as a fraction
        of lr: 1 throughout without a decay; with "linear", 1 until lr_decay_from, then falling linearly to 0 after
        the last step (the schedule of Miyato et al. 2018's SN-GAN and of Mimicry). A function of the step alone, so
        a resumed run continues it exactly; a resume that raises --steps stretches the decay to the new end."""
        if self.lr_decay in (None, "constant"):
            return 1.0
        start = self.lr_decay_from or 0
        if step < start:
            return 1.0
        return max(0.0, (total - step) / max(total - start, 1))

    def to_dict(self) -> dict[str, Any]:
        """Plain dict without None values (TOML has no null) and without empty option tables."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None and v != {}}

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "config") -> TrainConfig:
        """Build from a mapping, refusing unknown keys (a typo must not silently fall back to a default)."""
        known = {f.name for f in fields(cls)}
        data = dict(data)
        if "loss" in data and "objective" not in data:  # written by ganbench before objectives replaced losses
            data["objective"] = data.pop("loss")
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"{where}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(known))}"
            )
        for f in fields(cls):
            if f.name in data and not _has_type(data[f.name], str(f.type)):
                raise ConfigError(f"{where}: {f.name} must be {_TYPE_WORDS.get(str(f.type), f.type)}, "
                                  f"got {data[f.name]!r}")
        return cls(**data)


_TYPE_WORDS = {"int": "an integer", "int | None": "an integer", "float | None": "a number", "str": "a string",
               "str | None": "a string", "bool": "true or false", "dict[str, Any]": "a table of KEY = VALUE"}


def _has_type(value: Any, annotation: str) -> bool:
    """Whether a config value fits a TrainConfig field's annotation (None is not a TOML value, so never given)."""
    base = annotation.replace(" | None", "")
    if base == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if base == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if base == "str":
        return isinstance(value, str)
    if base == "bool":
        return isinstance(value, bool)
    if base.startswith("dict"):
        return isinstance(value, dict)
    return True


def read_config(path: str | Path) -> dict[str, Any]:
    """Parse a TOML settings file (keys checked by TrainConfig.from_dict)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def write_config(cfg: TrainConfig, path: str | Path, note: str | None = None) -> None:
    """Write cfg as TOML, after note as comment lines when given (e.g. how a torchrun job split the batch)."""
    head = "".join(f"# {line}\n" for line in note.splitlines()) if note else ""
    Path(path).write_text(head + tomli_w.dumps(cfg.to_dict()))
