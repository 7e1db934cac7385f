"""Name -> GAN variant: built-ins, the `ganbench.variants` entry-point group, and `path/to/file.py:NAME` files."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import replace
from importlib.metadata import entry_points
from pathlib import Path

from ganbench.errors import ModelError
from ganbench.models.base import Variant

ENTRY_POINT_GROUP = "ganbench.variants"
_VARIANTS: dict[str, Variant] = {}
_builtins_loaded = False
_entry_points_loaded = False


def register_variant(obj: Variant | Callable[[], Variant]) -> Variant | Callable[[], Variant]:
    """Register a Variant, or (as a decorator) a zero-argument function returning one; returns its argument."""
    variant = _as_variant(obj, "register_variant")
    existing = _VARIANTS.get(variant.name)
    if existing is not None and existing.origin != variant.origin:
        raise ModelError(
            f"model name {variant.name!r} is taken (registered from {_describe(existing)}); choose another name"
        )
    _VARIANTS[variant.name] = variant
    return obj


def get_variant(name: str) -> Variant:
    """The variant registered under name (built-ins, then installed plugins)."""
    _load_builtins()
    if name not in _VARIANTS:
        _load_entry_points()
    if name not in _VARIANTS:
        raise ModelError(
            f"unknown model {name!r}; known: {', '.join(sorted(_VARIANTS))} "
            "(a model from a file: --variant path/to/file.py:NAME)"
        )
    return _VARIANTS[name]


def available_variants() -> list[Variant]:
    """All registered variants, sorted by name."""
    _load_builtins()
    _load_entry_points()
    return [_VARIANTS[k] for k in sorted(_VARIANTS)]


def load_variant_file(spec: str) -> Variant:
    """Load `path/to/file.py:NAME` (a Variant or a function returning one), register it and return it."""
    path_text, sep, attr = spec.rpartition(":")
    if not sep or not path_text or not attr:
        raise ModelError(f"--variant expects path/to/file.py:NAME, got {spec!r}")
    path = Path(path_text).expanduser().resolve()
    if not path.is_file():
        raise ModelError(f"variant file {path} does not exist; pass --variant path/to/file.py:NAME")
    module_name = f"ganbench_variant_{abs(hash(str(path)))}"
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
            raise ModelError(f"importing variant file {path} failed: {type(exc).__name__}: {exc}") from None
    if not hasattr(module, attr):
        raise ModelError(f"variant file {path} defines no {attr!r}")
    variant = _as_variant(getattr(module, attr), f"{path}:{attr}")
    variant = replace(variant, origin={"kind": "file", "path": str(path), "attr": attr})
    _load_builtins()
    register_variant(variant)
    return variant


def _as_variant(obj: object, where: str) -> Variant:
    if isinstance(obj, Variant):
        return obj
    if callable(obj):
        made = obj()
        if isinstance(made, Variant):
            return made
    raise ModelError(f"{where}: expected a ganbench Variant or a function returning one, got {type(obj).__name__}")


def _describe(variant: Variant) -> str:
    origin = dict(variant.origin)
    kind = origin.pop("kind", "?")
    return kind + (f" {origin}" if origin else "")


def _load_builtins() -> None:
    global _builtins_loaded
    if not _builtins_loaded:
        _builtins_loaded = True
        importlib.import_module("ganbench.models.dcgan")
        importlib.import_module("ganbench.models.dcgan_code")


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            variant = _as_variant(ep.load(), f"entry point {ep.name} ({ep.value})")
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
