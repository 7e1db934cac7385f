"""`ganbench demo`: the offline end-to-end run on the embedded digits, sized for minutes on 2 CPU cores."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

from ganbench.config import TrainConfig
from ganbench.quality import digits_quality
from ganbench.train.loop import train

# The authors' released SVHN architecture (dcgan-svhn32) at half width on 1-channel digits. The narrow dcgan32 was
# the first choice, but its six-layer discriminator overpowers any generator on these smooth, upscaled 8x8 digits
# within ~50 steps (D(G(z)) -> 0, samples stay noise; tried: simultaneous and alternating schedules, ndf=8, BCE,
# LSGAN and hinge losses, lr 1e-4), while dcgan-svhn32 learns digit strokes within a few hundred steps.
DEMO_MODEL = "dcgan-svhn32"
DEMO_WIDTH = 32
DEMO_STEPS = 1200
DEMO_BATCH = 64


def demo_config(steps: int | None = None) -> TrainConfig:
    """The demo's training settings."""
    n = steps or DEMO_STEPS
    return TrainConfig(
        model=DEMO_MODEL, ngf=DEMO_WIDTH, ndf=DEMO_WIDTH, dataset="digits", split="all", steps=n,
        batch_size=DEMO_BATCH, seed=0, device="cpu", log_every=20, sample_every=max(n // 6, 1),
        checkpoint_every=n, n_samples=64,
    )


DEMO_QUALITY_SAMPLES = 1000
REAL_DIGITS_IS = "9.74"  # the 1,797 real digits, 10 splits (see ganbench/metrics/train_digits_classifier.py)


def demo_representation(checkpoint: Path, out: Path, progress: bool = False) -> dict:
    """The digits protocol on the trained D and on a randomly initialised D of the same architecture and width.

    Appends both records to out/records/digits.jsonl and writes out/representation.md; returns the two test
    accuracies and which one won (reported as it falls: the random-features baseline is strong on tiny data).
    """
    from ganbench.evaluate import evaluate_representation, load_discriminator
    from ganbench.report.records import append_record

    trained = load_discriminator(str(checkpoint))  # reads the checkpoint once: its model arguments and step too
    rows = {}
    for key, d in (("trained", trained),
                   ("random", load_discriminator(random_init=DEMO_MODEL, model_kwargs=trained.model["kwargs"]))):
        record = evaluate_representation("digits", d, None, device="cpu", progress=progress,
                                         notes=["ganbench demo"], label=f"demo D ({key})")
        append_record(record, out / "records" / "digits.jsonl")
        rows[key] = record
    acc = {k: r["results"]["test_accuracy_mean"] for k, r in rows.items()}
    diff = acc["trained"] - acc["random"]
    verdict = (f"the trained D is better by {diff:.2f} points" if diff > 0 else
               f"the random D is better by {-diff:.2f} points" if diff < 0 else "a tie")
    lines = [
        "# Demo: representation on the digits protocol",
        "",
        "L2-SVM (one-vs-rest, squared hinge) on the discriminator's features, every layer max-pooled to 4x4 "
        "and concatenated; C chosen on a validation split of the training part; "
        "scikit-learn digits, 70/30 stratified train/test split (seed 0).",
        "",
        "| discriminator | feature dim | chosen C | test accuracy % |",
        "|---|---:|---:|---:|",
    ]
    names = {"trained": f"{DEMO_MODEL} after {trained.training.get('steps')} demo steps",
             "random": f"{DEMO_MODEL}, same width, random init (seed 0)"}
    for key, r in rows.items():
        lines.append(f"| {names[key]} | {r['features']['dim']} | {r['svm']['chosen_C']:g} | "
                     f"{r['results']['test_accuracy_mean']:.2f} |")
    lines += ["", f"Result: {verdict}.", ""]
    (out / "representation.md").write_text("\n".join(lines))
    return {"trained": acc["trained"], "random": acc["random"], "verdict": verdict,
            "dim": rows["trained"]["features"]["dim"]}


def run_demo(out: Path, steps: int | None = None, progress: bool = True) -> Iterator[str]:
    """Train the demo model into out (replacing an earlier demo there) and yield lines describing the results."""
    t0 = time.perf_counter()
    result = train(demo_config(steps), out, overwrite=True, progress=progress)
    m = result.final_metrics
    grids = sorted((out / "samples").glob("step_*.png"))
    yield f"demo: trained {DEMO_MODEL} (ngf=ndf={DEMO_WIDTH}) on scikit-learn digits for {result.steps} steps " \
          f"in {time.perf_counter() - t0:.0f} s on the CPU"
    yield f"  final losses: D {m['loss_d']:.3f}, G {m['loss_g']:.3f}; D(x) {m['d_real']:.2f}, " \
          f"D(G(z)) {m['d_fake']:.2f}; {m['images_per_s']:.0f} images/s"
    quality = digits_quality(str(result.last_checkpoint), DEMO_QUALITY_SAMPLES)["results"]
    yield f"  sample quality (digits classifier features, NOT Inception; not comparable with FID/IS): " \
          f"digits-FID {quality['digits_fid']:.1f}, digits-IS {quality['digits_is_mean']:.2f} " \
          f"± {quality['digits_is_std']:.2f} ({quality['n_fake']} samples vs {quality['n_real']} real digits; " \
          f"real digits score digits-IS {REAL_DIGITS_IS})"
    probe = demo_representation(result.last_checkpoint, out, progress=progress)
    yield f"  representation (digits protocol: L2-SVM on D's 4x4-pooled features, {probe['dim']} dims, " \
          f"test accuracy): trained D {probe['trained']:.2f}%, randomly initialised D {probe['random']:.2f}% " \
          f"-> {probe['verdict']}"
    yield f"  run directory:  {out}"
    yield f"  representation: {out / 'representation.md'}"
    yield f"  sample grids:   {out / 'samples'} (latest: {grids[-1].name if grids else 'none'})"
    yield f"  loss curves:    {out / 'curves.png'}"
    yield f"  checkpoint:     {result.last_checkpoint}"
    yield f"  next: ganbench sample {result.last_checkpoint} --interpolate --n 8 --out walks.png"
