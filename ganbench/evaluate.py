"""Representation evaluation end to end: discriminator -> features -> protocol -> record (see ARCHITECTURE.md)."""

from __future__ import annotations

import datetime as dt
import functools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganbench import distributed
from ganbench.checkpoint import (
    build_from_checkpoint,
    file_sha256,
    load_checkpoint,
    model_record,
    training_provenance,
)
from ganbench.data import ImageStore, load_images
from ganbench.errors import ConfigError
from ganbench.features import (
    FeatureSpec,
    extract_features,
    extract_representation,
    feature_dim,
    parse_layers,
    train_batch_statistics,
)
from ganbench.models.base import Discriminator
from ganbench.probe.protocols import (
    SVHN_C_GRID,
    ProbeSettings,
    SelectedRows,
    authors_svhn_split,
    full_protocol,
    per_class_protocol,
    per_class_subsets,
    shuffled_split,
)
from ganbench.registry import get_variant


@dataclass(frozen=True)
class Protocol:
    """Which data a protocol reads and how it splits, fits and reports."""

    name: str
    dataset: str
    kind: str  # "full" or "per_class"
    validation: int | float  # images, or a fraction of the training images
    per_class: int = 0
    trials: int = 1
    test_trials: int | None = None
    split: str = "shuffled"  # "shuffled", "authors-svhn" or "stratified" (one set carved into train/test)
    report: str = "accuracy"
    C_grid: tuple[float, ...] | None = None
    calibrate_on: str = "train"  # "train" (all training images) or "pool" (training minus validation)
    resize_ok: bool = False  # images may be resized to the model's size without --allow-resize (tiny digit sets)

    @property
    def reads_subset_rows(self) -> bool:
        """Whether features of just the rows its trials and validation read suffice (needed_rows_only): a few-label
        protocol that tests its selection subsets on a test split of its own."""
        return self.kind == "per_class" and self.test_trials is None and self.split != "stratified"


PROTOCOLS = {
    p.name: p
    for p in (
        Protocol("cifar10-full", "cifar10", "full", 10000),
        Protocol("cifar10-400", "cifar10", "per_class", 10000, per_class=400, trials=10),
        Protocol("svhn-1000", "svhn", "per_class", 10000, per_class=100, trials=10, test_trials=100,
                 split="authors-svhn", report="error", C_grid=SVHN_C_GRID, calibrate_on="pool"),
        Protocol("mnist", "mnist", "per_class", 10000, per_class=100, trials=10, resize_ok=True),
        Protocol("digits", "digits", "full", 0.2, split="stratified", resize_ok=True),
        # all digits labels put every D near the ceiling (~99%); 10 labels per class is where Ds differ
        Protocol("digits-10", "digits", "per_class", 0.2, per_class=10, trials=20, split="stratified",
                 resize_ok=True),
    )
}


@dataclass
class Discriminatee:
    """A discriminator with what a record must say about where it came from."""

    disc: Discriminator
    identity: str
    model: dict[str, Any]
    checkpoint: dict[str, Any] | None
    training: dict[str, Any]
    partial: bool = False


@dataclass
class Learned:
    """A fitted representation of a learner that is not a GAN (ganbench.representations), with its provenance."""

    rep: Any
    identity: str
    model: dict[str, Any]
    checkpoint: dict[str, Any]
    training: dict[str, Any]
    partial: bool = False

    @property
    def image_size(self) -> int:
        return int(self.rep.image_size)


DEFAULT_REPRESENTATION = "d"


def load_representation(checkpoint: str | None = None, random_init: str | None = None, *, seed: int = 0,
                        variant_file: str | None = None, device: str = "cpu",
                        model_kwargs: dict[str, Any] | None = None, representation: str = DEFAULT_REPRESENTATION,
                        objective: str | None = None, objective_file: str | None = None) -> Discriminatee | Learned:
    """What a probe reads: a GAN's D (from a checkpoint, or randomly initialised: load_discriminator), a module
    its objective owns and declares a representation (BiGAN's "encoder"), or the fitted representation of a
    `ganbench train --learner` checkpoint.

    representation: "d", or the name of an owned representation module.
    objective: with random_init and a representation other than "d", the objective that builds that module (its
        freshly initialised weights are the baseline); objective_file loads a plug-in objective.
    """
    if checkpoint is not None and random_init is None:
        ckpt = load_checkpoint(checkpoint, learner_ok=True)
        if "learner" in ckpt:
            if model_kwargs:
                raise ConfigError("--model-arg applies to --random-init only; a checkpoint carries its own settings")
            if representation != DEFAULT_REPRESENTATION:
                raise ConfigError(f"--representation {representation} reads a module of a GAN checkpoint; "
                                  f"{checkpoint} holds a fitted {ckpt['learner'].get('name')} learner: leave it out")
            return _learned(ckpt, checkpoint)
    if representation == DEFAULT_REPRESENTATION:
        if objective is not None or objective_file is not None:
            raise ConfigError("--objective builds an owned representation of a random init; give --representation "
                              "NAME with it (D needs no objective)")
        return load_discriminator(checkpoint, random_init, seed=seed, variant_file=variant_file, device=device,
                                  model_kwargs=model_kwargs)
    return _owned_representation(checkpoint, random_init, representation, seed=seed, variant_file=variant_file,
                                 device=device, model_kwargs=model_kwargs, objective=objective,
                                 objective_file=objective_file)


def _owned_representation(checkpoint: str | None, random_init: str | None, name: str, *, seed: int,
                          variant_file: str | None, device: str, model_kwargs: dict[str, Any] | None,
                          objective: str | None, objective_file: str | None) -> Discriminatee:
    """An owned representation module (trained, or freshly built under seed) as the network a probe reads."""
    from ganbench.checkpoint import build_owned_module, objective_from_checkpoint
    from ganbench.registry import get_objective, load_objective_file

    if (checkpoint is None) == (random_init is None):
        raise ConfigError("give --checkpoint CKPT or --random-init MODEL (exactly one)")
    if checkpoint is not None:
        if model_kwargs:
            raise ConfigError("--model-arg applies to --random-init only; a checkpoint carries its own model arguments")
        if objective is not None:
            raise ConfigError("--objective applies to --random-init; a checkpoint names its own objective")
        ckpt = load_checkpoint(checkpoint)
        owner = objective_from_checkpoint(ckpt, objective_file)
        _check_representation(name, owner, f"checkpoint {checkpoint} (objective {owner.name})")
        module = build_owned_module(ckpt, name, variant_file, objective_file, device=device)
        sha = file_sha256(checkpoint)
        return Discriminatee(module, f"{sha}:{name}",
                             dict(ckpt["model"], partial=False, representation=name, objective=owner.name),
                             {"path": str(Path(checkpoint).resolve()), "sha256": sha}, training_provenance(ckpt))
    if objective_file:
        load_objective_file(objective_file)
    if objective is None:
        raise ConfigError(f"--representation {name} of a random init needs the objective that builds it: pass "
                          "--objective NAME (e.g. bigan for its encoder)")
    owner = get_objective(objective)()
    _check_representation(name, owner, f"objective {owner.name}")
    variant = get_variant(random_init)
    torch.manual_seed(seed)
    gen, disc = variant.build(**(model_kwargs or {}))
    module = owner.own_modules(gen, disc)[name].module
    kwargs = variant.model_kwargs(**(model_kwargs or {}))
    identity = f"random-init:{variant.name}:{sorted(kwargs.items())}:seed={seed}:{owner.name}:{name}"
    model = dict(model_record(variant, kwargs), partial=False, representation=name, objective=owner.name)
    return Discriminatee(module.to(device), identity, model, None,
                         {"source": "random init", "dataset": None, "steps": 0, "seed": seed})


def _check_representation(name: str, owner: Any, where: str) -> None:
    if name not in owner.representations:
        have = ", ".join(("d", *owner.representations))
        raise ConfigError(f"--representation {name}: {where} has no representation {name!r}; it has {have}")


def _learned(ckpt: dict[str, Any], path: str) -> Learned:
    from ganbench.errors import CheckpointError
    from ganbench.representations import build_learner

    info = ckpt["learner"]
    settings = dict(info.get("settings") or {})
    try:
        rep = build_learner(str(info.get("name")), int(settings.pop("image_size")), int(settings.pop("channels")),
                            settings)
        rep.load_state_dict(ckpt["state"])
    except (ConfigError, KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path} holds a {info.get('name')!r} learner this ganbench cannot rebuild "
                              f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); refit it with "
                              "`ganbench train --learner`") from None
    sha = file_sha256(path)
    cfg = ckpt.get("config") or {}
    training = {"source": f"ganbench train --learner {info['name']}", "dataset": cfg.get("dataset"), "steps": None,
                "seed": cfg.get("seed"), "fit": ckpt.get("fit")}
    model = {"name": info["name"], "learner": info["name"], "settings": dict(info.get("settings") or {}),
             "partial": False}
    return Learned(rep, sha, model, {"path": str(path), "sha256": sha}, training)


def load_discriminator(checkpoint: str | None = None, random_init: str | None = None, *, seed: int = 0,
                       variant_file: str | None = None, device: str = "cpu",
                       model_kwargs: dict[str, Any] | None = None) -> Discriminatee:
    """D from a checkpoint, or a randomly initialised one of a registered model (the paper's baseline).

    model_kwargs: constructor arguments of the random-init model (e.g. ndf, channels); refused with a checkpoint,
    whose own arguments are used.
    """
    if (checkpoint is None) == (random_init is None):
        raise ConfigError("give --checkpoint CKPT or --random-init MODEL (exactly one)")
    if checkpoint is not None and model_kwargs:
        raise ConfigError("--model-arg applies to --random-init only; a checkpoint carries its own model arguments")
    if checkpoint is not None:
        ckpt = load_checkpoint(checkpoint)
        _, disc, variant = build_from_checkpoint(ckpt, variant_file, device=device)
        prov = ckpt.get("provenance", {}) or {}
        training = training_provenance(ckpt)
        sha = file_sha256(checkpoint)
        partial = bool(prov.get("partial") or ckpt["model"].get("partial"))
        model = dict(ckpt["model"], partial=partial)
        return Discriminatee(disc, sha, model, {"path": str(Path(checkpoint).resolve()), "sha256": sha}, training,
                             partial)
    variant = get_variant(random_init)
    torch.manual_seed(seed)
    _, disc = variant.build(**(model_kwargs or {}))
    kwargs = variant.model_kwargs(**(model_kwargs or {}))
    identity = f"random-init:{variant.name}:{sorted(kwargs.items())}:seed={seed}"
    return Discriminatee(disc.to(device), identity, dict(model_record(variant, kwargs), partial=False), None,
                         {"source": "random init", "dataset": None, "steps": 0, "seed": seed})


def _split(protocol: Protocol, labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    n = len(labels)
    size = int(round(protocol.validation * n)) if isinstance(protocol.validation, float) else protocol.validation
    if size >= n:
        raise ConfigError(
            f"{protocol.name} holds out {size} training images for validation, but this {protocol.dataset} training "
            f"set has only {n}; point --data-root at the complete dataset"
        )
    if protocol.split == "authors-svhn":
        return authors_svhn_split(n, size)
    if protocol.split == "stratified":
        from sklearn.model_selection import train_test_split

        pool, val = train_test_split(np.arange(n), test_size=size, stratify=labels, random_state=seed)
        return np.sort(val), np.sort(pool)
    return shuffled_split(n, size, seed)


def _stores(protocol: Protocol, data_root: str | None, image_size: int, seed: int, download: bool,
            progress: bool) -> tuple[ImageStore, ImageStore, np.ndarray | None, np.ndarray | None]:
    if protocol.split == "stratified":  # one set, carved into train and test (digits)
        from sklearn.model_selection import train_test_split

        store = load_images(protocol.dataset, data_root, "all", image_size=image_size, progress=progress)
        tr, te = train_test_split(np.arange(len(store)), test_size=0.3, stratify=store.labels, random_state=seed)
        return store, store, np.sort(tr), np.sort(te)
    train = load_images(protocol.dataset, data_root, "train", image_size=image_size, download=download,
                        progress=progress)
    test = load_images(protocol.dataset, data_root, "test", image_size=image_size, download=download,
                       progress=progress)
    return train, test, None, None


def evaluate_representation(
    protocol_name: str, d: Discriminatee, data_root: str | None, *, layers: str | None = None,
    bn_stats: str = "train-batches", feature_dtype: str = "float16", C_grid: list[float] | None = None,
    svm_backend: str = "torch", device: str = "auto", batch_size: int = 256, seed: int = 0,
    trials: int | None = None, download: bool = False, label: str | None = None, notes: list[str] | None = None,
    progress: bool = True, allow_resize: bool = False, amp: str = "off", calibration_images: int | None = None,
    needed_rows_only: bool = False,
) -> dict[str, Any] | None:
    """Run one protocol on one discriminator and return its record (not yet written).

    Under torchrun the feature extraction is shared out among the ranks and gathered on rank 0, which fits the
    L2-SVM (on its device) and returns the record; the other ranks return None.

    allow_resize: evaluate a model whose image size differs from the dataset's (the images are resized to it);
    refused otherwise for CIFAR-10 and SVHN, whose protocols are defined on their 32x32 images.
    amp: "bf16" runs both feature passes under bfloat16 autocast (FeatureSpec.amp); the record says so.
    calibration_images: the train-batches BN statistics from this many calibration images (a seeded sample, in
        file order) instead of all of them: a cheaper point of a curve along training; the record says so.
    needed_rows_only: for a few-label protocol that reuses its subsets for the test (CIFAR-10 400/class), compute
        the features of the rows its trials and validation read and of the test images, nothing else and
        uncached: with one trial 24,000 of CIFAR-10's 60,000 images. The same numbers as the whole matrix gives.
    """
    if protocol_name not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol_name!r}; choose one of {', '.join(PROTOCOLS)}")
    protocol = PROTOCOLS[protocol_name]
    learned = isinstance(d, Learned)
    image_size = d.image_size if learned else d.disc.image_size
    if learned:
        _check_learner_options(d, layers, amp)
    resized = _check_image_size(protocol, image_size, allow_resize)
    dev = distributed.setup(device)
    t_start = time.perf_counter()
    # rank 0 decodes the stores once; the other ranks then map them
    train, test, tr_idx, te_idx = distributed.main_first(
        lambda: _stores(protocol, data_root, image_size, seed, download, progress))
    y_all = np.asarray(train.labels)
    y_train = y_all if tr_idx is None else y_all[tr_idx]
    validation, pool = _split(protocol, y_train, seed)
    t_data = time.perf_counter()

    calib_rows = np.arange(len(y_train)) if protocol.calibrate_on == "train" else np.sort(pool)
    if calibration_images is not None:
        if calibration_images < 2:
            raise ConfigError(f"calibration_images must be at least 2, got {calibration_images}")
        if calibration_images < len(calib_rows):
            calib_rows = np.sort(np.random.RandomState(seed).choice(calib_rows, calibration_images, replace=False))
    n_trials = trials or (protocol.test_trials if protocol.test_trials is not None else protocol.trials)
    needed = None
    if needed_rows_only:
        if not protocol.reads_subset_rows:
            raise ConfigError(f"{protocol.name}: computing only the rows a protocol reads applies to few-label "
                              "protocols that test their selection subsets (cifar10-400, mnist)")
        subsets = per_class_subsets(y_train, pool, protocol.per_class, n_trials, seed)
        needed = np.unique(np.concatenate([validation, *subsets]))
    stages: dict[str, float] = {}  # the part of "features" spent on BN statistics, when they were computed
    rows_store = None if needed is None else ImageStore(
        np.asarray(train.images[needed]), np.asarray(train.labels)[needed], train.classes,
        {**train.meta, "rows": int(len(needed))})
    if learned:
        feats_train, feats_test, feature_info = _learned_features(
            d, train if rows_store is None else rows_store, test, feature_dtype, batch_size, dev, progress,
            use_cache=needed is None)
    else:
        calib_global = calib_rows if tr_idx is None else tr_idx[calib_rows]
        calibration = (f"{train.meta.get('fingerprint')}:{protocol.calibrate_on}:{protocol.split}:"
                       f"{seed}:{len(calib_rows)}")
        feats_train, feats_test, feature_info = _network_features(
            d.disc.to(dev), d.identity, train, test, rows_store, layers, bn_stats, feature_dtype, amp, batch_size,
            dev, progress, calib_global, calibration, stages)
        feature_info["calibration"] = protocol.calibrate_on if bn_stats == "train-batches" else None
    if calibration_images is not None and not learned and bn_stats == "train-batches":
        feature_info["calibration_images"] = int(len(calib_rows))
    if needed is not None:
        feature_info["train_rows_extracted"] = int(len(needed))
    if not distributed.is_main():
        return None
    if needed is not None:
        X, X_test, y_test = SelectedRows(feats_train, needed, len(y_train)), feats_test, np.asarray(test.labels)
    elif tr_idx is not None:
        X, X_test, y_test = np.asarray(feats_train[tr_idx]), np.asarray(feats_train[te_idx]), y_all[te_idx]
    else:
        X, X_test, y_test = feats_train, feats_test, np.asarray(test.labels)
    t_feat = time.perf_counter()

    settings = ProbeSettings(Cs=tuple(C_grid or protocol.C_grid or ProbeSettings.Cs), backend=svm_backend,
                             device=str(dev), seed=seed, progress=progress)
    if protocol.kind == "full":
        outcome = full_protocol(X, y_train, X_test, y_test, validation=validation, pool=pool, settings=settings)
    else:
        outcome = per_class_protocol(
            X, y_train, X_test, y_test, validation=validation, pool=pool, per_class=protocol.per_class,
            trials=protocol.trials if protocol.test_trials is not None else n_trials, settings=settings,
            test_trials=n_trials if protocol.test_trials is not None else None, report=protocol.report)
    t_end = time.perf_counter()

    from ganbench.report.records import environment_versions

    record_notes = list(notes or [])
    if resized:
        record_notes.append(resized)
    if d.partial:
        chosen = feature_info["layers"]
        record_notes.append(f"partial discriminator: layers {chosen[0]}-{chosen[-1]} only")
    if amp != "off":
        record_notes.append(f"features computed under {amp} autocast")
    if calibration_images is not None and bn_stats == "train-batches" and not learned:
        record_notes.append(f"BN statistics from {len(calib_rows)} calibration images (a seeded sample)")
    if needed is not None:
        record_notes.append(f"features of the {len(needed)} training images the {n_trials} trial(s) and the "
                            "validation read, and of the test images")
    return {
        "kind": "probe",
        "protocol": protocol.name,
        "label": label or _default_label(d, feature_info.get("layers")),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "model": d.model,
        "checkpoint": d.checkpoint,
        "training": d.training,
        "data": {"train": train.meta, "test": test.meta, "data_root": data_root},
        "features": feature_info if not d.model.get("representation") else {
            **feature_info, "representation": d.model["representation"]},
        "svm": outcome["svm"],
        "settings": {**outcome["settings"], "protocol": protocol.name, "split": protocol.split},
        "results": outcome["results"],
        "notes": record_notes,
        "versions": environment_versions(),
        "device": str(dev),
        "peak_rss_gib": _peak_rss_gib(),
        "wall_time_s": {"data": round(t_data - t_start, 2), "features": round(t_feat - t_data, 2), **stages,
                        **outcome["wall_time_s"], "total": round(t_end - t_start, 2)},
    }


def _network_features(disc: Discriminator, identity: str, train: ImageStore, test: ImageStore,
                      rows_store: ImageStore | None, layers: str | None, bn_stats: str, feature_dtype: str, amp: str,
                      batch_size: int, dev: torch.device, progress: bool, calib_rows: np.ndarray, calibration: str,
                      stages: dict[str, float]) -> tuple[Any, Any, dict[str, Any]]:
    """D's pooled feature maps of the training images (or of rows_store, the rows a curve point reads, uncached)
    and of the test images, with the train-batches BN statistics of train.images[calib_rows] when asked."""
    chosen = parse_layers(layers, len(disc.layer_shapes()))
    stats = None
    if bn_stats == "train-batches":
        # computed at most once, and only when the features are not cached (the other protocol of
        # `--protocol both` finds them cached: same images, split and calibration)
        def compute_stats():
            t0 = time.perf_counter()
            values = train_batch_statistics(disc, np.asarray(train.images[np.sort(calib_rows)]), 128, dev,
                                            progress=progress, amp=amp)
            stages["bn_statistics"] = round(time.perf_counter() - t0, 2)
            return values

        stats = functools.cache(compute_stats)
    else:
        calibration = None
    spec = FeatureSpec(identity, chosen, bn_stats, feature_dtype, 4, calibration, amp)
    common = {"bn_stats_values": stats, "batch_size": batch_size, "device": dev, "progress": progress}
    feats_train = extract_features(disc, rows_store or train, spec, use_cache=rows_store is None, **common)
    feats_test = feats_train if test is train else extract_features(disc, test, spec, use_cache=rows_store is None,
                                                                    **common)
    info = {"dim": feature_dim(disc, chosen), "layers": chosen, "bn_stats": bn_stats, "dtype": feature_dtype,
            "grid": 4, "amp": amp, "calibration": None}
    return feats_train, feats_test, info


def _check_learner_options(d: Learned, layers: str | None, amp: str) -> None:
    """Options that shape a network's features mean nothing for a fitted learner: refused, not ignored."""
    name = d.model["name"]
    if layers not in (None, "", "all"):
        raise ConfigError(f"--layers picks a network's layers; the {name} representation has none: leave it out")
    if amp != "off":
        raise ConfigError(f"--amp applies to a network's feature passes; the {name} representation computes in "
                          "float32: leave it out")


def _learned_features(d: Learned, train: ImageStore, test: ImageStore, feature_dtype: str, batch_size: int,
                      dev: torch.device, progress: bool, use_cache: bool) -> tuple[Any, Any, dict[str, Any]]:
    """A fitted learner's features of the training images (or the rows a curve point reads) and the test images."""
    common = {"dtype": feature_dtype, "batch_size": batch_size, "device": dev, "progress": progress,
              "use_cache": use_cache}
    feats_train = extract_representation(d.rep, d.identity, train, **common)
    feats_test = feats_train if test is train else extract_representation(d.rep, d.identity, test, **common)
    info = {"dim": int(d.rep.dim), "representation": d.model["name"], "settings": d.model["settings"],
            "dtype": feature_dtype}
    return feats_train, feats_test, info


def portable_record(record: dict[str, Any], data_root: str | None) -> dict[str, Any]:
    """The record with paths as a user gives them, not this machine's: the data root as given, caches under
    $GANBENCH_CACHE, paths under the working folder relative to it (committed records are read elsewhere)."""
    import os

    from ganbench.data import cache_dir
    from ganbench.report.records import portable

    swaps = [(str(cache_dir().resolve()) + os.sep, "$GANBENCH_CACHE/")]
    if data_root is not None:
        swaps.insert(0, (str(Path(data_root).expanduser().resolve()), data_root))
    swaps.append((str(Path.cwd().resolve()) + os.sep, ""))
    return portable(record, swaps)


def _check_image_size(protocol: Protocol, size: int, allow_resize: bool) -> str | None:
    """None when the model's image size is the dataset's; else the record's note, or ConfigError if not allowed."""
    from ganbench.data.store import SOURCES

    native = getattr(SOURCES.get(protocol.dataset), "native_size", None)
    if native is None or native == size:
        return None
    if not (allow_resize or protocol.resize_ok):
        raise ConfigError(
            f"the discriminator takes {size}x{size} images but {protocol.dataset} images are {native}x{native}; "
            f"evaluate a {native}x{native} model (the paper used its 32x32 models on CIFAR-10 and SVHN), or pass "
            f"--allow-resize to resize the images to {size}x{size} (the record will say so)"
        )
    return f"images resized from {native}x{native} to {size}x{size} for the model"


def _peak_rss_gib() -> float:
    """This process's peak resident memory so far (GiB): what the evaluation needed, data and caches included."""
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)  # ru_maxrss is KiB on Linux


def _default_label(d: Discriminatee | Learned, layers: list[int] | None) -> str:
    src = d.training.get("source", "")
    if isinstance(d, Learned):
        return f"{d.model['name']} ({d.rep.dim} features) fitted on {d.training.get('dataset')}"
    name = d.model.get("name", "?")
    rep = d.model.get("representation")
    if rep:  # an owned module: BiGAN's encoder, ...
        where = "random init" if src == "random init" else f"trained on {d.training.get('dataset')} " \
                                                            f"{d.training.get('steps')} steps"
        return f"{name} {rep} ({d.model.get('objective') or 'owned module'}), {where} (layers {layers[0]}-{layers[-1]})"
    if src == "random init":
        return f"{name} random init (D layers {layers[0]}-{layers[-1]})"
    if src == "dcgan_code import":
        return f"{name} authors' weights (D layers {layers[0]}-{layers[-1]})"
    return f"{name} trained on {d.training.get('dataset')} {d.training.get('steps')} steps"
