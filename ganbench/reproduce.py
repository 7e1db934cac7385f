"""`ganbench reproduce paper`: the DCGAN paper's tables 1 and 2 from the authors' released checkpoints."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ganbench.errors import GanbenchError
from ganbench.evaluate import evaluate_representation, load_discriminator
from ganbench.interop.dcgan_code import import_dcgan_code
from ganbench.report.records import append_record
from ganbench.report.tables import write_tables

IMAGENET_DIR = "imagenet_gan_pretrain_128f_relu_lrelu_7l_3x3_256z"
SVHN_DIR = "svhn_unsup_all_conv_dcgan_100z_gaussian_lr_0.0005_64mb"
PAPER = {"cifar10-full": "82.8% accuracy", "cifar10-400": "73.8% (±0.4%) accuracy", "svhn-1000": "22.48% error"}


def _find(root: Path, *names: str) -> Path | None:
    for name in names:
        for candidate in (root / name, root / "models" / name, root / "dcgan_code" / name):
            if candidate.exists():
                return candidate
    return None


def reproduce_paper(data_root: Path, models: Path, *, svm_backend: str = "torch", device: str = "auto",
                    records_dir: Path = Path("results/records"), progress: bool = True) -> Iterator[str]:
    """Run what the available models and data allow, yield a line per step (skips say why), rewrite tables."""
    jobs = [("cifar10-full", IMAGENET_DIR, ("cifar10", "cifar-10-batches-py", "cifar10-jpg")),
            ("cifar10-400", IMAGENET_DIR, ("cifar10", "cifar-10-batches-py", "cifar10-jpg")),
            ("svhn-1000", SVHN_DIR, ("svhn",))]
    ckpt_dir = Path("runs") / "dcgan_code"
    for protocol, model_dir, data_names in jobs:
        src = _find(models, model_dir)
        if src is None:
            yield f"{protocol}: SKIPPED: {model_dir} not found under {models}"
            continue
        data = _find(data_root, *data_names) or data_root
        ckpt = ckpt_dir / f"{model_dir}.pt"
        try:
            summary = import_dcgan_code(src, ckpt, allow_partial=True)
            d = load_discriminator(str(ckpt), device=device)
            notes = []
            if summary.get("partial"):
                notes.append(f"authors' checkpoint incomplete (missing {', '.join(summary['missing'])}); "
                             "only the complete leading D layers were used")
            record = evaluate_representation(protocol, d, str(data), svm_backend=svm_backend, device=device,
                                             notes=notes, progress=progress)
        except GanbenchError as exc:
            yield f"{protocol}: SKIPPED: {exc}"
            continue
        append_record(record, records_dir / f"{protocol}.jsonl")
        r = record["results"]
        ours = (f"{r['test_error_mean']:.2f}% error (±{r['test_error_ci95']:.2f})" if "test_error_mean" in r
                else f"{r['test_accuracy_mean']:.2f}% (±{r['test_accuracy_std']:.2f}%) accuracy")
        partial = " [PARTIAL model]" if summary.get("partial") else ""
        yield f"{protocol}: ganbench {ours}{partial}; paper {PAPER[protocol]}; C={record['svm']['chosen_C']:g}"
    for path in write_tables(records_dir, records_dir.parent / "tables"):
        if path.suffix == ".md":
            yield f"table: {path}"
