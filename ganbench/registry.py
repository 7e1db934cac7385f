"""Name -> GAN variant and name -> objective: built-ins, the `ganbench.variants` and `ganbench.objectives`
entry-point groups, and `path/to/file.py:NAME` files."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import replace
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from ganbench.errors import ConfigError, ModelError
from ganbench.models.base import Variant
from ganbench.models.catalog import VARIANTS, as_variant, register_variant
from ganbench.objectives import ALIASES, BUILTIN_OBJECTIVES, Objective

ENTRY_POINT_GROUP = "ganbench.variants"
OBJECTIVE_ENTRY_POINT_GROUP = "ganbench.objectives"
_builtins_loaded = False
_entry_points_loaded = False


def get_variant(name: str) -> Variant:
    """The variant registered under name (built-ins, then installed plugins)."""
    _load_builtins()
    if name not in VARIANTS:
        _load_entry_points()
    if name not in VARIANTS:
        raise ModelError(
            f"unknown model {name!r}; known: {', '.join(sorted(VARIANTS))} "
            "(a model from a file: --variant path/to/file.py:NAME)"
        )
    return VARIANTS[name]


def available_variants() -> list[Variant]:
    """All registered variants, sorted by name."""
    _load_builtins()
    _load_entry_points()
    return [VARIANTS[k] for k in sorted(VARIANTS)]


def _import_file(path_text: str, what: str, option: str) -> object:
    """Import a user's Python file once (keyed by its resolved path) and return the module."""
    path = Path(path_text).expanduser().resolve()
    if not path.is_file():
        raise ModelError(f"{what} file {path} does not exist; pass {option} path/to/file.py:NAME")
    module_name = f"ganbench_{what}_{abs(hash(str(path)))}"
    module = sys.modules.get(module_name)
    if module is None:
        spec_obj = importlib.util.spec_from_file_location(module_name, path)
        if spec_obj is None or spec_obj.loader is None:
            raise ModelError(f"cannot import {path} as a Python file")
        module = importlib.util.module_from_spec(spec_obj)
        sys.modules[module_name] = module
        try:
            spec_obj.loader.exec_module(module)
        except Exception as exc:  # the user's file: report its failure in one line
            del sys.modules[module_name]
            raise ModelError(f"importing {what} file {path} failed: {type(exc).__name__}: {exc}") from None
    return module


def _split_spec(spec: str, option: str) -> tuple[str, str]:
    path_text, sep, attr = spec.rpartition(":")
    if not sep or not path_text or not attr:
        raise ModelError(f"{option} expects path/to/file.py:NAME, got {spec!r}")
    return path_text, attr


def load_variant_file(spec: str) -> Variant:
    """Load `path/to/file.py:NAME` (a Variant or a function returning one), register it and return it."""
    path_text, attr = _split_spec(spec, "--variant")
    module = _import_file(path_text, "variant", "--variant")
    path = Path(path_text).expanduser().resolve()
    if not hasattr(module, attr):
        raise ModelError(f"variant file {path} defines no {attr!r}")
    variant = as_variant(getattr(module, attr), f"{path}:{attr}")
    variant = replace(variant, origin={"kind": "file", "path": str(path), "attr": attr})
    _load_builtins()
    register_variant(variant)
    return variant


# ------------------------------------------------------------------------------------------------ objectives
_OBJECTIVES: dict[str, type[Objective]] = {}
_OBJECTIVE_ORIGINS: dict[str, dict[str, str]] = {}
_objective_entry_points_loaded = False


def register_objective(cls: type[Objective], origin: dict[str, str] | None = None) -> type[Objective]:
    """Register an Objective subclass under its `name`; returns it (usable as a class decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, Objective)):
        raise ModelError(f"expected a ganbench.objectives.Objective subclass, got {cls!r}")
    if not cls.name:
        raise ModelError(f"objective class {cls.__name__} has no `name`; set the class attribute")
    if cls.d_steps < 1 or cls.output_kind not in ("logit", "critic"):
        raise ModelError(f"objective {cls.name!r}: d_steps must be >= 1 and output_kind 'logit' or 'critic'")
    existing = _OBJECTIVES.get(cls.name)
    if existing is not None and existing is not cls:
        raise ModelError(f"objective name {cls.name!r} is taken (by {existing.__module__}.{existing.__name__}); "
                         "choose another name")
    _OBJECTIVES[cls.name] = cls
    _OBJECTIVE_ORIGINS[cls.name] = origin or {"kind": "builtin"}
    return cls


for _cls in BUILTIN_OBJECTIVES:
    register_objective(_cls)


def get_objective(name: str) -> type[Objective]:
    """The objective class registered under name (built-ins, then installed plugins); old names are aliases."""
    name = ALIASES.get(name, name)
    if name not in _OBJECTIVES:
        _load_objective_entry_points()
    if name not in _OBJECTIVES:
        raise ConfigError(
            f"unknown objective {name!r}; known: {', '.join(sorted(_OBJECTIVES))} "
            "(an objective from a file: --objective-file path/to/file.py:NAME; list them: ganbench objectives)"
        )
    return _OBJECTIVES[name]


def objective_origin(name: str) -> dict[str, str]:
    """Where a registered objective came from (builtin, entry point or file)."""
    return dict(_OBJECTIVE_ORIGINS[get_objective(name).name])


def available_objectives() -> list[type[Objective]]:
    """All registered objectives, sorted by name."""
    _load_objective_entry_points()
    return [_OBJECTIVES[k] for k in sorted(_OBJECTIVES)]


def owned_modules_table(objectives: list[type[Objective]], model: str = "dcgan32") -> dict[str, list[dict]]:
    """What each objective owns when given the default architecture of model: per objective a list of
    {name, side, parameters, representation}. Built with a forked random state, so the caller's stream is untouched."""
    import torch

    with torch.random.fork_rng(devices=[]):
        gen, disc = get_variant(model).build()
        table = {}
        for cls in objectives:
            try:
                owned = cls().build_modules(gen, disc)
            except Exception as exc:  # a plug-in's build_modules: its failure in one line
                raise ModelError(f"objective {cls.name!r}: build_modules failed on {model}: "
                                 f"{type(exc).__name__}: {exc}") from None
            table[cls.name] = [{"name": name, "side": item.side,
                                "parameters": sum(p.numel() for p in item.module.parameters()),
                                "representation": name in cls.representations} for name, item in owned.items()]
    return table


def load_objective_file(spec: str) -> type[Objective]:
    """Load `path/to/file.py:NAME` (an Objective subclass), register it and return it."""
    path_text, attr = _split_spec(spec, "--objective-file")
    module = _import_file(path_text, "objective", "--objective-file")
    path = Path(path_text).expanduser().resolve()
    if not hasattr(module, attr):
        raise ModelError(f"objective file {path} defines no {attr!r}")
    obj = getattr(module, attr)
    if not (isinstance(obj, type) and issubclass(obj, Objective)):
        raise ModelError(f"{spec}: expected a ganbench.objectives.Objective subclass, got {type(obj).__name__} "
                         f"{obj!r:.40}; point --objective-file at the class")
    return register_objective(obj, {"kind": "file", "path": str(path), "attr": attr})


def _load_objective_entry_points() -> None:
    global _objective_entry_points_loaded
    if _objective_entry_points_loaded:
        return
    _objective_entry_points_loaded = True
    for ep in entry_points(group=OBJECTIVE_ENTRY_POINT_GROUP):
        try:
            cls = ep.load()
        except Exception as exc:
            raise ModelError(
                f"plugin entry point {ep.name} = {ep.value} failed to load: {type(exc).__name__}: {exc}"
            ) from None
        register_objective(cls, {"kind": "entry_point", "value": ep.value})
        if ep.name != cls.name:
            raise ModelError(f"entry point {ep.name!r} provides an objective named {cls.name!r}; make them equal")


def _load_builtins() -> None:
    global _builtins_loaded
    if not _builtins_loaded:
        _builtins_loaded = True
        importlib.import_module("ganbench.models.dcgan")
        importlib.import_module("ganbench.models.partial")


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            variant = as_variant(ep.load(), f"entry point {ep.name} ({ep.value})")
        except ModelError:
            raise
        except Exception as exc:
            raise ModelError(
                f"plugin entry point {ep.name} = {ep.value} failed to load: {type(exc).__name__}: {exc}"
            ) from None
        variant = replace(variant, origin={"kind": "entry_point", "value": ep.value})
        if ep.name != variant.name:
            raise ModelError(f"entry point {ep.name!r} provides a variant named {variant.name!r}; make them equal")
        register_variant(variant)


def describe_variant(variant: Variant) -> dict[str, Any]:
    """Name, image size, nz, parameter counts of G and D, feature_dim and layer shapes of the default build."""
    gen, disc = variant.build()
    return {
        "name": variant.name,
        "image_size": variant.image_size,
        "nz": gen.nz,
        "z_dist": gen.z_dist,
        "g_params": sum(p.numel() for p in gen.parameters()),
        "d_params": sum(p.numel() for p in disc.parameters()),
        "feature_dim": disc.feature_dim(),
        "layers": [list(s) for s in disc.layer_shapes()],
        "defaults": dict(variant.defaults),
        "objective": variant.objective,
        "options": dict(variant.options),
        "schedule": variant.schedule,
        "origin": dict(variant.origin),
        "description": variant.description,
    }


def describe_variants(variant_file: str | None = None) -> list[dict[str, Any]]:
    """describe_variant for every registered model (plus one loaded from a file, if given)."""
    if variant_file:
        load_variant_file(variant_file)
    return [describe_variant(v) for v in available_variants()]
