"""The name -> Variant table that model modules register into (register_variant).

It sits below registry.py so that the built-in model modules can register themselves without importing the
registry, which imports them (registry._load_builtins); lookup, plugins and variant files live in registry.py.
"""

from __future__ import annotations

from collections.abc import Callable

from ganbench.errors import ModelError
from ganbench.models.base import Variant

VARIANTS: dict[str, Variant] = {}


def register_variant(obj: Variant | Callable[[], Variant]) -> Variant | Callable[[], Variant]:
    """Register a Variant, or (as a decorator) a zero-argument function returning one; returns its argument."""
    variant = as_variant(obj, "register_variant")
    existing = VARIANTS.get(variant.name)
    if existing is not None and existing.origin != variant.origin:
        raise ModelError(
            f"model name {variant.name!r} is taken (registered from {_describe(existing)}); choose another name"
        )
    VARIANTS[variant.name] = variant
    return obj


def as_variant(obj: object, where: str) -> Variant:
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
