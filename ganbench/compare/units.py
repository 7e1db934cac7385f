"""A SPEC's units of work: each (variant, seed) training run with its settings, resolved once, and the G steps at
which it is evaluated. Running reads them to train and evaluate, reporting to know each run's final step."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ganbench.compare.spec import DEFAULT_REPRESENTATION, CompareSpec, probe_representation, training_overrides
from ganbench.config import TrainConfig
from ganbench.errors import ConfigError


@dataclass
class Unit:
    """One (variant, seed) training run and its evaluation points (in G steps).

    config: the settings compare gives the run (what `train` is called with); resolved: the same with every
    default filled in (objective, lr, D steps, architecture options), resolved once when the unit is planned.
    """

    variant: str
    seed: int
    config: TrainConfig
    run_dir: Path
    steps: int
    eval_steps: list[int]
    images_per_step: int
    resolved: TrainConfig

    def with_settings(self, **changes: Any) -> Unit:
        """The unit with run settings (device, tensorboard) changed in its config and its resolved config alike."""
        return replace(self, config=replace(self.config, **changes), resolved=replace(self.resolved, **changes))


# the settings plan sets after resolving: resolve_config fills none of them, so the resolved config takes them as is
PLANNED = ("steps", "checkpoint_every", "sample_every")


def plan(spec: CompareSpec, out: Path, device: str = "cpu") -> list[Unit]:
    """Every (variant, seed) with its training settings and the steps at which it is evaluated."""
    from ganbench.train.loop import resolve_config

    units = []
    for name, overrides in spec.variants.items():
        for seed in spec.variant_seeds(name):
            base = {"model": spec.model, **spec.train, **training_overrides(overrides)}
            cfg = TrainConfig.from_dict(base, where=f"variant {name}")
            cfg = replace(cfg, dataset=spec.dataset, data_root=spec.data_root, split=spec.split,
                          max_images=spec.max_images, seed=seed, device=device)
            resolved = resolve_config(replace(cfg, steps=None))  # the steps come from the budget, below
            _check_representation(name, probe_representation(spec, name), resolved.objective)
            per_step = resolved.batch_size * (resolved.d_steps or 1)
            if spec.budget_unit == "steps":
                steps, every = spec.budget, spec.eval_every
            else:
                steps, every = spec.budget // per_step, spec.eval_every // per_step
            if steps < 1 or every < 1:
                raise ConfigError(f"variant {name!r} reads {per_step} images per G step, more than the budget's "
                                  f"{spec.budget_unit} allow; raise budget or eval_every")
            evals = sorted({*range(every, steps + 1, every), steps})
            cfg = replace(cfg, steps=steps, checkpoint_every=every,
                          sample_every=cfg.sample_every if "sample_every" in base else every)
            try:
                cfg.validate()  # settings that depend on the run's length (--lr-decay-from)
            except ConfigError as exc:
                raise ConfigError(f"variant {name!r}: {exc}") from None
            resolved = replace(resolved, **{key: getattr(cfg, key) for key in PLANNED})
            units.append(Unit(name, seed, cfg, out / "runs" / folder_name(name) / f"seed{seed}", steps, evals,
                              per_step, resolved))
    return units


def _check_representation(variant: str, rep: str, objective: str) -> None:
    from ganbench.registry import get_objective

    owned = get_objective(objective).representations
    if rep != DEFAULT_REPRESENTATION and rep not in owned:
        raise ConfigError(f"variant {variant!r}: probe_representation {rep!r} is not a representation of objective "
                          f"{objective!r} (it has {', '.join((DEFAULT_REPRESENTATION, *owned))})")


def folder_name(name: str) -> str:
    """A variant's name as a file or folder name (its run directory, its collected sample grid)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
