"""A training run's settings: defaults filled from the objective and the variant, and what a resume may change."""

from __future__ import annotations

from dataclasses import replace

from ganbench.config import TrainConfig
from ganbench.errors import ConfigError
from ganbench.registry import get_objective, get_variant, load_objective_file, load_variant_file

# settings a resumed run may change; everything else must match the run directory's config
# (a learning-rate decay may be added or changed: a run continued with a decaying tail, e.g. after its curve flattens)
RESUMABLE = ("steps", "epochs", "device", "log_every", "sample_every", "checkpoint_every", "tensorboard",
             "lr_decay", "lr_decay_from")


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
    if cfg.online_probe and not objective.adversarial:
        raise ConfigError(f"--online-probe reads D's features in D's update; objective {objective.name} trains no D "
                          "(use the offline probe: ganbench eval --representation)")
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


def check_global_batch(batch_size: int, world: int) -> None:
    if world > 1 and batch_size % world:
        raise ConfigError(f"--batch-size {batch_size} is the global batch of {world} processes and must be a "
                          f"multiple of {world}; pass --batch-size {batch_size // world * world or world}")


def require_tensorboard() -> None:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        raise ConfigError("--tensorboard needs the tensorboard package; install it with "
                          "pip install 'ganbench[tensorboard]'") from None
