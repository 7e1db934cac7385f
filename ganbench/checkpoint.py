"""Self-describing checkpoints: atomic save, safe load (weights_only), rebuild G and D from the registry."""

from __future__ import annotations

import io
import os
import pickle
import shutil
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ganbench.errors import CheckpointError, ModelError
from ganbench.files import file_sha256  # noqa: F401 (re-exported: evaluate, quality, interop import it here)
from ganbench.models.base import Discriminator, Generator, Variant
from ganbench.objectives import Objective, OwnedModule
from ganbench.registry import get_objective, get_variant, load_objective_file, load_variant_file

FORMAT_VERSION = 1


def model_record(variant: Variant, kwargs: dict[str, Any]) -> dict[str, Any]:
    """What a checkpoint stores to rebuild its networks alone: registry name, constructor arguments, origin."""
    return {"name": variant.name, "kwargs": dict(kwargs), "origin": dict(variant.origin),
            "image_size": variant.image_size}


def save_checkpoint(payload: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write payload to path atomically: temporary file in the same folder, fsync, rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        buffer = io.BytesIO()  # serialise first: a failing disk then shows as the OSError (ENOSPC) of a write
        torch.save({"format_version": FORMAT_VERSION, **payload}, buffer)
        with os.fdopen(fd, "wb") as fh:
            _write_all(fh, buffer.getbuffer())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename is None and exc.errno is not None:
            raise OSError(exc.errno, exc.strerror, str(path)) from exc  # name the checkpoint in the message
        raise
    _fsync_dir(path.parent)
    return path


def _write_all(fh: Any, data: memoryview) -> None:
    """The checkpoint writer: data to fh in 16 MiB pieces (tests patch this to simulate a full disk)."""
    for i in range(0, len(data), 1 << 24):
        fh.write(data[i:i + (1 << 24)])


def link_or_copy(src: Path, dst: Path) -> None:
    """Make dst the same file as src (a hard link where possible), replacing dst atomically."""
    tmp = dst.with_name(f".{dst.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)
    _fsync_dir(dst.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu",
                    learner_ok: bool = False) -> dict[str, Any]:
    """Read a checkpoint without executing code from it (torch.load weights_only=True), and check its shape.

    learner_ok: also accept the checkpoint of a learner that is not a GAN (`ganbench train --learner`: k-means,
    pixels), which has no G or D; callers that need a network leave it False and get a one-line refusal.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; pass the .pt file written by `ganbench train`")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols of foreign files; the error says it
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, KeyError,
            TypeError, AttributeError, IndexError, UnicodeDecodeError) as exc:  # text or other non-torch files
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        # torch's weights_only refusal puts the useful part ("Unsupported global: ...") on a later line
        first = next((ln for ln in lines if "Unsupported global" in ln), lines[0] if lines else type(exc).__name__)
        if not isinstance(exc, (RuntimeError, pickle.UnpicklingError, OSError, zipfile.BadZipFile)):
            first = "not a torch file"  # the legacy reader's KeyError/TypeError on a text file says nothing useful
        raise CheckpointError(
            f"checkpoint {path} is not a readable ganbench checkpoint ({first[:160]}); "
            "it may be truncated or not a torch file: use another one, e.g. checkpoints/last.pt"
        ) from None
    if isinstance(ckpt, dict) and isinstance(ckpt.get("learner"), dict):
        name = ckpt["learner"].get("name")
        if not learner_ok:
            raise CheckpointError(
                f"checkpoint {path} holds a {name!r} learner, not a GAN: it has no generator or discriminator; "
                "probe it with `ganbench eval cifar10|svhn|mnist|digits --checkpoint`"
            )
        if ckpt.get("format_version") != FORMAT_VERSION or not isinstance(ckpt.get("state"), dict):
            raise CheckpointError(f"checkpoint {path} is a {name!r} learner checkpoint of another format; refit it "
                                  "with `ganbench train --learner`")
        return ckpt
    if not isinstance(ckpt, dict) or "model" not in ckpt or "G" not in ckpt or "D" not in ckpt:
        raise CheckpointError(
            f"checkpoint {path} lacks the keys 'model', 'G' and 'D'; it was not written by ganbench "
            "(authors' Theano models: `ganbench import dcgan-code`)"
        )
    version = ckpt.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format_version {version}, this ganbench reads {FORMAT_VERSION}; "
            "upgrade ganbench or re-export the checkpoint"
        )
    return ckpt


def resolve_variant(model: dict[str, Any], variant_file: str | None = None) -> Variant:
    """The registered variant a checkpoint's model record names (never loads code named by the checkpoint)."""
    if variant_file:
        load_variant_file(variant_file)
    try:
        return get_variant(model["name"])
    except ModelError:
        origin = model.get("origin", {})
        if origin.get("kind") == "file":
            raise ModelError(
                f"checkpoint model {model['name']!r} came from {origin.get('path')}:{origin.get('attr')}; "
                f"pass --variant {origin.get('path')}:{origin.get('attr')} to rebuild it"
            ) from None
        raise


def build_from_checkpoint(
    ckpt: dict[str, Any], variant_file: str | None = None, device: str | torch.device = "cpu"
) -> tuple[Generator, Discriminator, Variant]:
    """Rebuild G and D from a loaded checkpoint and load their weights."""
    variant = resolve_variant(ckpt["model"], variant_file)
    gen, disc = variant.build(**ckpt["model"].get("kwargs", {}))
    for net, key in ((gen, "G"), (disc, "D")):
        if ckpt[key] is None:
            continue
        try:
            net.load_state_dict(ckpt[key])
        except RuntimeError as exc:
            raise CheckpointError(
                f"checkpoint weights for {key} do not fit model {variant.name!r} "
                f"with {ckpt['model'].get('kwargs')}: {str(exc).splitlines()[0]}"
            ) from None
    return gen.to(device), disc.to(device), variant


def owned_payload(owned: dict[str, OwnedModule]) -> dict[str, Any]:
    """The checkpoint's "owned" entry: {name: {"side": "d" or "g", "state": state_dict}}."""
    return {name: {"side": item.side, "state": item.module.state_dict()} for name, item in owned.items()}


def load_owned_modules(owned: dict[str, OwnedModule], ckpt: dict[str, Any]) -> None:
    """Load the checkpoint's owned-module states into owned (built by its objective); a checkpoint written before
    owned modules existed has none. Names, sides and shapes must match, else one line of CheckpointError."""
    saved = ckpt.get("owned") or {}
    objective = (ckpt.get("config") or {}).get("objective")
    if set(saved) != set(owned):
        raise CheckpointError(
            f"checkpoint's owned modules ({', '.join(sorted(saved)) or 'none'}) do not match those objective "
            f"{objective!r} builds ({', '.join(sorted(owned)) or 'none'}); use a checkpoint of this objective"
        )
    for name, item in owned.items():
        if saved[name].get("side") != item.side:
            raise CheckpointError(f"checkpoint's owned module {name!r} is on side {saved[name].get('side')!r}, "
                                  f"objective {objective!r} puts it on {item.side!r}; use a checkpoint of it")
        try:
            item.module.load_state_dict(saved[name]["state"])
        except RuntimeError as exc:
            raise CheckpointError(f"checkpoint weights of owned module {name!r} do not fit objective {objective!r}: "
                                  f"{str(exc).strip().splitlines()[0][:200]}") from None


def objective_from_checkpoint(ckpt: dict[str, Any], objective_file: str | None = None) -> Objective:
    """The objective a checkpoint was trained with, with its options (a file objective needs objective_file)."""
    if objective_file:
        load_objective_file(objective_file)
    cfg = ckpt.get("config") or {}
    return get_objective(cfg.get("objective") or cfg.get("loss") or "ns")(**(cfg.get("objective_args") or {}))


def build_owned_module(ckpt: dict[str, Any], name: str, variant_file: str | None = None,
                       objective_file: str | None = None, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild one module the checkpoint's objective owns (e.g. BiGAN's "encoder") with its trained weights.

    G and D are rebuilt from the registry, the objective from the checkpoint's config (objective, objective_args),
    then its build_modules, then the saved states. Returns the module in train mode, as the networks of
    build_from_checkpoint are; a representation (Objective.representations) keeps the Discriminator feature contract.
    """
    saved = ckpt.get("owned") or {}
    if name not in saved:
        raise CheckpointError(f"checkpoint has no owned module {name!r}; it has "
                              f"{', '.join(sorted(saved)) or 'none (its objective owns no modules)'}")
    gen, disc, _ = build_from_checkpoint(ckpt, variant_file)
    owned = objective_from_checkpoint(ckpt, objective_file).own_modules(gen, disc)
    load_owned_modules(owned, ckpt)
    return owned[name].module.to(device)


def owned_modules_info(ckpt: dict[str, Any], variant_file: str | None = None,
                       objective_file: str | None = None) -> list[dict[str, Any]]:
    """The checkpoint's owned modules, rebuilt: name, side, parameters, whether a representation (then its
    feature_dim too); [] for a checkpoint without any."""
    if not ckpt.get("owned"):
        return []
    gen, disc, _ = build_from_checkpoint(ckpt, variant_file)
    objective = objective_from_checkpoint(ckpt, objective_file)
    owned = objective.own_modules(gen, disc)
    load_owned_modules(owned, ckpt)
    rows = []
    for name, item in owned.items():
        row = {"name": name, "side": item.side, "parameters": sum(p.numel() for p in item.module.parameters()),
               "representation": name in objective.representations}
        if row["representation"]:
            row["feature_dim"] = item.module.feature_dim()
        rows.append(row)
    return rows


def training_provenance(ckpt: dict[str, Any]) -> dict[str, Any]:
    """Where a checkpoint's weights came from: the provenance an importer wrote (e.g. the authors' Theano weights),
    else a ganbench training run described by its config."""
    prov = ckpt.get("provenance", {}) or {}
    cfg = ckpt.get("config", {}) or {}
    return dict(prov.get("training") or {"source": "ganbench train", "dataset": cfg.get("dataset"),
                                         "steps": ckpt.get("step"), "seed": cfg.get("seed")})
