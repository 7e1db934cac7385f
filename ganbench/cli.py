"""The `ganbench` command: a thin shell that parses options and calls one library function per command."""

from __future__ import annotations

import errno
import json
import math
import sys
from dataclasses import fields
from pathlib import Path

import click
from click.core import ParameterSource

from ganbench import __version__, choices
from ganbench.config import AMP_MODES, DEVICES, LR_DECAYS, SCHEDULES, TrainConfig, read_config
from ganbench.errors import ConfigError, GanbenchError


class GanbenchGroup(click.Group):
    """Every user error ends as one line on stderr and exit code 2, never a traceback."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except GanbenchError as exc:
            # under torchrun every rank stops; rank 0's error is printed once, not by each rank again
            if not getattr(exc, "mirrored", False):
                from ganbench import distributed

                where = f" (rank {distributed.rank()})" if distributed.rank() > 0 else ""
                click.echo(f"ganbench: error{where}: {exc}", err=True)
            sys.exit(2)
        except OSError as exc:
            message = _os_error_line(exc)
            if message is None:
                raise
            click.echo(f"ganbench: error: {message}", err=True)
            sys.exit(2)
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help() if exc.ctx else str(exc))
            sys.exit(0)
        except click.UsageError as exc:
            hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""
            click.echo(f"ganbench: error: {exc.format_message()}{hint}", err=True)
            sys.exit(2)
        except click.ClickException as exc:
            click.echo(f"ganbench: error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            click.echo("ganbench: aborted", err=True)
            sys.exit(130)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)


def _os_error_line(exc: OSError) -> str | None:
    """One line for the OS errors a user's machine causes (full disk, no permission, read-only); None for others."""
    where = f" {exc.filename}" if exc.filename else ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return (f"disk full while writing{where} ({exc.strerror or exc}); earlier checkpoints and records are "
                f"intact: free some space, or set GANBENCH_CACHE to a folder on a larger disk for the caches, and "
                f"rerun (`ganbench train --resume` continues from the last checkpoint)")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot access{where}: {exc.strerror or exc}; check its permissions or choose another path"
    return None


@click.group(cls=GanbenchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ganbench")
def cli() -> None:
    """GANs as representation learners: train DCGANs, probe their discriminators, score their samples."""


def main(argv: list[str] | None = None) -> None:
    cli.main(args=argv, prog_name="ganbench")


# ---------------------------------------------------------------------------------------------- models
@cli.command("models")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@click.option("--variant", "variant_file", help="Also load a model from path/to/file.py:NAME.")
def models_cmd(as_json: bool, variant_file: str | None) -> None:
    """List the registered models: image size, nz, parameters of G and D, feature dimension."""
    from ganbench.registry import describe_variants

    rows = describe_variants(variant_file)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    header = f"{'name':<16}{'size':>5}{'nz':>6}{'G params':>12}{'D params':>12}{'feature_dim':>13}  description"
    click.echo(header)
    for r in rows:
        click.echo(
            f"{r['name']:<16}{r['image_size']:>5}{r['nz']:>6}{r['g_params']:>12,}{r['d_params']:>12,}"
            f"{r['feature_dim']:>13,}  {r['description']}"
        )


# ------------------------------------------------------------------------------------------ objectives
@cli.command("objectives")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@click.option("--objective-file", help="Also load an objective from path/to/file.py:NAME.")
def objectives_cmd(as_json: bool, objective_file: str | None) -> None:
    """List the registered GAN objectives: D steps per G step, D output kind, paper defaults, paper, and the modules
    each owns (side, parameters on the default dcgan32)."""
    from ganbench.registry import available_objectives, load_objective_file, objective_origin, owned_modules_table

    if objective_file:
        load_objective_file(objective_file)
    classes = available_objectives()
    owned = owned_modules_table(classes)
    rows = [{**cls.describe(), "origin": objective_origin(cls.name), "owns": owned[cls.name]} for cls in classes]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'name':<18}{'D steps':>8}  {'D output':<9}{'lr':>8}  {'betas':<11}paper")
    for r in rows:
        lr = f"{r['lr']:g}" if r["lr"] else "model"
        betas = ",".join(f"{b:g}" for b in r["betas"]) if r["betas"] else "model"
        click.echo(f"{r['name']:<18}{r['d_steps']:>8}  {r['output_kind']:<9}{lr:>8}  {betas:<11}{r['paper']}")
        if r["options"]:
            click.echo(f"{'':<18}options: " + ", ".join(f"{k}={v}" for k, v in r["options"].items()))
        if r["owns"]:
            click.echo(f"{'':<18}owns (on dcgan32): " + ", ".join(_owned_text(m) for m in r["owns"]))


def _owned_text(module: dict) -> str:
    """'encoder (G side, 1,234,567 parameters, representation)'."""
    kind = ", representation" if module["representation"] else ""
    return f"{module['name']} ({module['side'].upper()} side, {module['parameters']:,} parameters{kind})"


# ----------------------------------------------------------------------------------------------- train
def _d(name: str) -> str:
    """"[default]" for --help, read from TrainConfig itself so the two never disagree."""
    return f"[{next(f.default for f in fields(TrainConfig) if f.name == name)}]"


def _train_options(func):
    opts = [
        click.option("--model", help=f"Registered model name (see `ganbench models`). {_d('model')}"),
        click.option("--variant", "variant_file", help="Load the model from path/to/file.py:NAME."),
        click.option("--nz", type=int, help="Latent size (model default)."),
        click.option("--ngf", type=int, help="Generator base width (model default)."),
        click.option("--ndf", type=int, help="Discriminator base width (model default)."),
        click.option("--channels", type=int, help="Image channels (default: the dataset's)."),
        click.option("--dataset", help=f"{', '.join(choices.DATASETS)}. {_d('dataset')}"),
        click.option("--data-root", help="Where the dataset lies (or goes, with --download)."),
        click.option("--split", help=f"Dataset split. {_d('split')}"),
        click.option("--download", is_flag=True, help="Fetch the dataset if a downloader exists."),
        click.option("--max-images", type=int, help="Use at most this many images."),
        click.option("--steps", type=int, help="Total optimisation steps (minibatches)."),
        click.option("--epochs", type=float, help="Total epochs (instead of --steps). [25]"),
        click.option("--batch-size", type=int, help=f"Minibatch size. {_d('batch_size')}"),
        click.option("--lr", type=float, help="Adam learning rate. [2e-4]"),
        click.option("--beta1", type=float, help="Adam beta1. [0.5]"),
        click.option("--beta2", type=float, help="Adam beta2. [0.999]"),
        click.option("--weight-decay", type=float, help="L2 weight decay (the authors used 1e-5). [0]"),
        click.option("--lr-decay", type=click.Choice(LR_DECAYS),
                     help="Learning rate of both sides: constant, or linear to 0 at the last step. [constant]"),
        click.option("--lr-decay-from", type=click.IntRange(min=0),
                     help="Step (as --steps counts) where the linear decay begins; a resume may add or move it. [0]"),
        click.option("--objective", help="GAN objective (see `ganbench objectives`). [the model's: ns]"),
        click.option("--loss", "objective", hidden=True, help="Old name of --objective."),
        click.option("--objective-file", help="Load the objective from path/to/file.py:NAME."),
        click.option("--objective-arg", "objective_args", multiple=True, metavar="KEY=VALUE",
                     help="Objective option, e.g. real_label=0.9 (one-sided label smoothing); repeatable."),
        click.option("--d-steps", type=int, help="D updates per G update. [the objective's: 1, wgan-gp 5]"),
        click.option("--model-arg", "model_args", multiple=True, metavar="KEY=VALUE",
                     help="Architecture option, e.g. d_norm=layer, minibatch_kernels=100, g_norm=vbn; repeatable."),
        click.option("--spectral-norm", is_flag=True, default=None,
                     help="Spectral normalisation of every conv and linear weight of D (Miyato et al. 2018)."),
        click.option("--schedule", type=click.Choice(SCHEDULES), help="D/G update schedule. [simultaneous]"),
        click.option("--seed", type=click.IntRange(min=0), help=f"Seed for init, data order and z. {_d('seed')}"),
        click.option("--deterministic", is_flag=True, help="Deterministic kernels only."),
        click.option("--device", type=click.Choice(DEVICES), help=_d("device")),
        click.option("--amp", type=click.Choice(AMP_MODES), help=f"Mixed precision. {_d('amp')}"),
        click.option("--channels-last", is_flag=True, help="NHWC memory layout."),
        click.option("--compile", is_flag=True, help="torch.compile G and D."),
        click.option("--log-every", type=int, help=f"Steps between metrics.jsonl rows. {_d('log_every')}"),
        click.option("--sample-every", type=int, help=f"Steps between sample grids. {_d('sample_every')}"),
        click.option("--checkpoint-every", type=int, help=f"Steps between checkpoints. {_d('checkpoint_every')}"),
        click.option("--n-samples", type=int, help=f"Images in each sample grid. {_d('n_samples')}"),
        click.option("--sync-bn", is_flag=True, default=None,
                     help="Under torchrun: BatchNorm statistics over the global batch (SyncBatchNorm), as one "
                          "process would compute them; no effect in a single process."),
        click.option("--tensorboard", is_flag=True, default=None,
                     help="Also write TensorBoard event files in --out (pip install 'ganbench[tensorboard]')."),
        click.option("--online-probe", is_flag=True, default=None,
                     help="Train a linear classifier on D's pooled features of each real batch (labels reach only "
                          "it) and log its accuracy (probe_acc) along training: a curve, not the offline probe."),
    ]
    for opt in reversed(opts):
        func = opt(func)
    return func


_CONFIG_FIELDS = {f.name for f in fields(TrainConfig)}


def _collect_config(ctx: click.Context, config_file: str | None) -> tuple[TrainConfig, set[str]]:
    """Dataclass defaults, then the --config file, then options given on the command line."""
    data = read_config(config_file) if config_file else {}
    cfg = TrainConfig.from_dict(data, where=config_file or "config")
    explicit = set(data)
    changes = {}
    for name in _CONFIG_FIELDS:
        if name in ctx.params and ctx.params[name] is not None:
            if ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT):
                changes[name] = ctx.params[name]
                explicit.add(name)
    for key, value in changes.items():
        if key in ("objective_args", "model_args"):
            value = {**getattr(cfg, key), **_parse_key_values(value, "--" + key[:-1].replace("_", "-"))}
        setattr(cfg, key, value)
    return cfg, explicit



@cli.command("train")
@_train_options
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Run directory.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML file of settings.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from checkpoints/last.pt.")
@click.option("--overwrite", is_flag=True, help="Delete an existing --out first.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--learner", help="Fit a learner that is not a GAN instead: kmeans (Coates et al. 2011) or pixels; "
                                "see `ganbench learners`.")
@click.option("--learner-arg", "learner_args", multiple=True, metavar="KEY=VALUE",
              help="Learner option, e.g. centroids=1600 (repeatable).")
@click.pass_context
def train_cmd(ctx: click.Context, out: str, config_file: str | None, resume: bool, overwrite: bool,
              quiet: bool, learner: str | None, learner_args: tuple[str, ...], **_: object) -> None:
    """Train a GAN; writes config.toml, metrics.jsonl, samples/, curves.png and checkpoints/ under --out.

    Under `torchrun --nproc-per-node N -m ganbench train ...` the run is data-parallel: --batch-size is the global
    batch, split across the N processes, and rank 0 writes the files.

    With --learner, fits that learner instead (config.toml, fit.json, checkpoints/last.pt, and for k-means
    centroids.png); `ganbench eval ... --checkpoint OUT/checkpoints/last.pt` probes it like a D.
    """
    from ganbench import distributed
    from ganbench.train.loop import train

    cfg, explicit = _collect_config(ctx, config_file)
    if learner is not None or learner_args:
        _fit_learner(learner, learner_args, cfg, explicit, out, resume, overwrite, quiet)
        return
    result = train(cfg, out, resume=resume, overwrite=overwrite, explicit=explicit, progress=not quiet)
    if not distributed.is_main():
        return
    m = result.final_metrics
    loss_d = f"loss_D {m['loss_d']:.4f}, " if "loss_d" in m else ""  # an autoencoder has no D update
    click.echo(
        f"trained {result.steps} steps: {loss_d}loss_G {m.get('loss_g', float('nan')):.4f}, "
        f"{result.images_per_second:.1f} images/s (last interval); checkpoint {result.last_checkpoint}"
    )


LEARNER_SETTINGS = {"dataset", "data_root", "split", "download", "max_images", "seed", "device"}


def _fit_learner(learner: str | None, learner_args: tuple[str, ...], cfg: TrainConfig, explicit: set[str], out: str,
                 resume: bool, overwrite: bool, quiet: bool) -> None:
    from ganbench.train.learner import fit_learner

    if learner is None:
        raise ConfigError("--learner-arg needs --learner NAME (kmeans or pixels)")
    gan_only = sorted(explicit - LEARNER_SETTINGS)
    if gan_only:
        flags = ", ".join("--" + k.replace("_", "-") for k in gan_only)
        raise ConfigError(f"--learner {learner} is fitted, not trained as a GAN: {flags} do not apply; give its "
                          "options as --learner-arg KEY=VALUE (see `ganbench learners`)")
    if resume:
        raise ConfigError(f"--learner {learner} is fitted in one go and cannot be resumed; fit it again with "
                          "--overwrite")
    result = fit_learner(learner, _parse_key_values(learner_args, "--learner-arg"), out, dataset=cfg.dataset,
                         data_root=cfg.data_root, split=cfg.split, download=cfg.download, max_images=cfg.max_images,
                         seed=cfg.seed, device=cfg.device, overwrite=overwrite, progress=not quiet)
    rec = result.record
    click.echo(f"fitted {learner} on {rec['dataset'].get('n', '?')} images: {rec['features']} features, "
               f"{rec['wall_time_s']['fit']:.0f} s, peak memory {rec['peak_rss_gib']:.1f} GiB; "
               f"checkpoint {result.checkpoint}")


@cli.command("learners")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def learners_cmd(as_json: bool) -> None:
    """List the learners that are not GANs (`ganbench train --learner NAME`), with their options."""
    from ganbench.representations import LEARNERS

    rows = [{"name": n, "paper": c.paper, "description": c.description, "options": dict(c.options)}
            for n, c in sorted(LEARNERS.items())]
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    for row in rows:
        opts = ", ".join(f"{k}={v}" for k, v in row["options"].items()) or "no options"
        click.echo(f"{row['name']:<8} {row['description']}\n{'':<8} {row['paper']}; {opts}")


# ---------------------------------------------------------------------------------------------- sample
@cli.command("sample")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--n", "n", type=click.IntRange(min=1), default=64, show_default=True,
              help="Images (or walks with --interpolate).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="PNG file for the grid.")
@click.option("--interpolate", is_flag=True, help="Rows of linear walks between random points of z.")
@click.option("--walk-steps", type=click.IntRange(min=1), default=10, show_default=True, help="Images per walk.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--bn", type=click.Choice(["batch", "running"]), default="batch", show_default=True,
              help="BatchNorm statistics: of the generated batch (as in training) or the running averages.")
@click.option("--variant", "variant_file", help="path/to/file.py:NAME, for models from a file.")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@click.option("--save-z", type=click.Path(dir_okay=False),
              help="Also save the images' z as .npy and number each image on the grid (for `ganbench arithmetic`).")
def sample_cmd(checkpoint: str, n: int, out: str, interpolate: bool, walk_steps: int, seed: int, bn: str,
               variant_file: str | None, device: str, save_z: str | None) -> None:
    """Save a grid of generated images, or of walks in z (paper, figure 4)."""
    from ganbench.sampling import sample_grid

    path = sample_grid(checkpoint, out, n=n, interpolate=interpolate, walk_steps=walk_steps, seed=seed,
                       bn=bn, variant_file=variant_file, device=device, save_z=save_z)
    click.echo(f"wrote {path}" + (f" and {save_z} (z of each numbered image)" if save_z else ""))


# ------------------------------------------------------------------------------------------ arithmetic
@cli.command("arithmetic")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--z", "z_path", required=True, type=click.Path(dir_okay=False),
              help="The .npy of `ganbench sample CKPT --save-z`: pick images by their numbers on that grid.")
@click.option("--expr", required=True,
              help='Groups of image numbers joined by + and -, e.g. "3,7,12 - 5,9,20 + 1,2,4"; each group\'s z '
                   "is averaged (the paper averaged three).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="PNG file for the picture.")
@click.option("--noise", type=float, default=0.25, show_default=True,
              help="Scale of the uniform noise added to the result for its 8 neighbours (the paper's 0.25).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of that noise.")
@click.option("--bn", type=click.Choice(["batch", "running"]), default="batch", show_default=True,
              help="BatchNorm statistics; batch: generated together with the whole z file, as on its grid.")
@click.option("--variant", "variant_file", help="path/to/file.py:NAME, for models from a file.")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
def arithmetic_cmd(checkpoint: str, z_path: str, expr: str, out: str, noise: float, seed: int, bn: str,
                   variant_file: str | None, device: str) -> None:
    """Vector arithmetic on z (paper, figure 7): each group's images and mean, the result and 8 neighbours."""
    from ganbench.arithmetic import vector_arithmetic

    summary = vector_arithmetic(checkpoint, z_path, expr, out, noise=noise, seed=seed, bn=bn,
                                variant_file=variant_file, device=device)
    click.echo(f"wrote {summary['out']}: Y = {summary['expression']} ({summary['groups']} group means, "
               f"|Y| = {summary['result_norm']:.3g}, noise {summary['noise']:g})")


# --------------------------------------------------------------------------------------------- compare
@cli.command("compare")
@click.argument("spec", required=False, type=click.Path(dir_okay=False))
@click.option("--preset", help="A packaged SPEC instead of a file: digits (offline, minutes on a CPU).")
@click.option("--out", type=click.Path(file_okay=False), help="Folder of the comparison. [runs/compare/NAME]")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True, help="Trainings run at once.")
@click.option("--devices", help="Comma-separated devices the jobs are spread over, e.g. cuda:0,cuda:1. [cpu]")
@click.option("--check", "check_dir", type=click.Path(file_okay=False),
              help="Then compare the table with a committed one (wall times aside); exit 1 when they differ.")
@click.option("--tolerant", is_flag=True,
              help=f"With --check: accept probe accuracies within {choices.ACCURACY_TOLERANCE:g} point(s) and "
                   f"FID/KID/IS within {choices.QUALITY_TOLERANCE:.0%} of the committed means, what a rerun on "
                   "another CPU kind moves them by (counts and settings stay exact).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--tensorboard", is_flag=True,
              help="TensorBoard event files per (variant, seed) in OUT/runs/VARIANT/seedN; view with "
                   "`tensorboard --logdir OUT/runs` (pip install 'ganbench[tensorboard]').")
@click.option("--only", help="Run a slice: these variants (comma-separated; random-init for the random-init D "
                             "row). Cells with records are never rerun; the table marks cells not yet run.")
@click.option("--seeds", "seed_list", help="Run a slice: these of the SPEC's seeds, e.g. 0,1.")
def compare_cmd(spec: str | None, preset: str | None, out: str | None, jobs: int, devices: str | None,
                check_dir: str | None, tolerant: bool, quiet: bool, tensorboard: bool, only: str | None,
                seed_list: str | None) -> None:
    """Train GAN variants on equal terms and compare probe accuracy and sample quality along training."""
    from ganbench.compare import check_comparison, preset_path, read_spec, run_compare

    if (spec is None) == (preset is None):
        raise click.UsageError("give a SPEC file or --preset NAME (exactly one)")
    if tolerant and not check_dir:
        raise click.UsageError("--tolerant applies to --check DIR; pass the committed comparison folder too")
    parsed = read_spec(spec or preset_path(preset))
    folder = Path(out or Path("runs") / "compare" / (preset or Path(spec).stem))
    device_list = [d.strip() for d in devices.split(",") if d.strip()] if devices else None
    only_list = [v.strip() for v in only.split(",") if v.strip()] if only is not None else None
    try:
        seeds = [int(v) for v in seed_list.split(",") if v.strip()] if seed_list is not None else None
    except ValueError:
        raise click.BadParameter(f"{seed_list!r} is not a list of integers like 0,1", param_hint="--seeds") from None
    for line in run_compare(parsed, folder, jobs=jobs, devices=device_list, progress=not quiet,
                            tensorboard=tensorboard, only=only_list, seeds=seeds):
        click.echo(line)
    if check_dir:
        problems = check_comparison(folder, Path(check_dir), tolerant=tolerant)
        within = " within the cross-CPU tolerances" if tolerant else ""
        if problems:
            click.echo(f"comparison differs from {check_dir}{within}:", err=True)
            for p in problems:
                click.echo(f"  {p}", err=True)
            sys.exit(1)
        click.echo(f"comparison matches {check_dir}{within} (wall times aside)")


# ------------------------------------------------------------------------------------------------ demo
@cli.command("demo")
@click.option("--out", default="runs/demo", show_default=True, type=click.Path(file_okay=False))
@click.option("--steps", type=int, default=None, help="Training steps (default: the demo's calibrated count).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def demo_cmd(out: str, steps: int | None, quiet: bool) -> None:
    """Offline, CPU, a few minutes: train a narrow DCGAN on scikit-learn's digits and show what it made."""
    from ganbench.demo import run_demo

    for line in run_demo(Path(out), steps=steps, progress=not quiet):
        click.echo(line)



# ------------------------------------------------------------------------------------------------ eval
def _parse_floats(text: str | None) -> list[float] | None:
    if not text:
        return None
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of numbers", param_hint="--C-grid") from None
    bad = [v for v in values if not (math.isfinite(v) and v > 0)]
    if bad or not values:
        raise click.BadParameter(f"every C must be a positive finite number, got {text!r}; e.g. 0.01,0.1,1",
                                 param_hint="--C-grid")
    return values


_FID_DIMS = [str(d) for d in choices.FID_DIMS]
_INCEPTION_INPUT_HELP = ("Inception input pipeline: pytorch-fid's, or tf1 = the original TF code's resize and scaling "
                         "as torch-fidelity (use it to set IS beside published scores).")


def _check_metrics(ctx, param, value: str) -> str:
    names = [m.strip() for m in value.split(",") if m.strip()]
    unknown = [m for m in names if m not in choices.QUALITY_METRICS]
    if unknown or not names:
        raise click.BadParameter(f"unknown metric(s) {','.join(unknown) or '(none)'}; choose from "
                                 f"{','.join(choices.QUALITY_METRICS)}")
    return ",".join(names)


def _parse_key_values(items: tuple[str, ...], option: str = "--model-arg") -> dict[str, object]:
    """KEY=VALUE pairs; values become int, float or bool when they read as one (the model checks names)."""
    out: dict[str, object] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint=option)
        value: object = text
        if text.lower() in ("true", "false"):
            value = text.lower() == "true"
        else:
            for cast in (int, float):
                try:
                    value = cast(text)
                    break
                except ValueError:
                    pass
        out[key.strip()] = value
    return out


def _probe_options(func):
    opts = [
        click.option("--checkpoint", type=click.Path(dir_okay=False), help="A ganbench checkpoint (.pt)."),
        click.option("--random-init", "random_init", help="Evaluate a randomly initialised D of this model."),
        click.option("--model-arg", "model_args", multiple=True, metavar="KEY=VALUE",
                     help="Constructor argument of the --random-init model, e.g. ndf=32 (repeatable)."),
        click.option("--variant", "variant_file", help="path/to/file.py:NAME, for models from a file."),
        click.option("--data-root", help="Where the dataset lies."),
        click.option("--download", is_flag=True, help="Fetch the dataset if a downloader exists."),
        click.option("--layers", help="D layers to use, e.g. 1-4 or 1,3,5 (default: all)."),
        click.option("--representation", default="d", show_default=True,
                     help="What to probe: d (the discriminator) or an owned module the objective declares a "
                          "representation, e.g. encoder (BiGAN's E); see `ganbench inspect CKPT`."),
        click.option("--objective", help="With --random-init and --representation NAME: the objective that builds "
                                         "that module (e.g. bigan)."),
        click.option("--objective-file", help="path/to/file.py:NAME, for a plug-in objective's representation."),
        click.option("--bn-stats", type=click.Choice(choices.BN_STATS), default=choices.BN_STATS_DEFAULT,
                     show_default=True, help="BatchNorm statistics at extraction (train-batches: the authors')."),
        click.option("--feature-dtype", type=click.Choice(choices.FEATURE_DTYPES), default=choices.FEATURE_DTYPE_PROBE,
                     show_default=True),
        click.option("--amp", type=click.Choice(choices.FEATURE_AMP), default="off", show_default=True,
                     help="Feature passes under bf16 autocast: about 2x faster where bf16 is native; the features "
                          "move by up to about 1% of their scale, so accuracies can differ slightly from float32's."),
        click.option("--C-grid", "c_grid", help="Comma-separated C values (default: the protocol's grid)."),
        click.option("--svm-backend", type=click.Choice(choices.SVM_BACKENDS), default=choices.SVM_BACKEND_DEFAULT,
              show_default=True),
        click.option("--trials", type=int, help="Trials of the few-label protocols (default: the protocol's)."),
        click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True),
        click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True),
        click.option("--batch-size", type=click.IntRange(min=1), default=choices.FEATURE_BATCH, show_default=True,
                     help="Feature extraction batch."),
        click.option("--allow-resize", is_flag=True,
                     help="Evaluate a model whose image size differs from the dataset's by resizing the images."),
        click.option("--records", type=click.Path(dir_okay=False),
                     help="JSONL file to append to (default results/records/<protocol>.jsonl)."),
        click.option("--no-record", is_flag=True, help="Do not append a record."),
        click.option("--label", help="Row label in the tables."),
        click.option("--note", "notes", multiple=True, help="A caveat carried into the record and the tables."),
        click.option("--json", "as_json", is_flag=True, help="Print the record as JSON."),
        click.option("--quiet", is_flag=True, help="No progress bars."),
    ]
    for opt in reversed(opts):
        func = opt(func)
    return func


def _run_probe(protocols: list[str], **kw) -> None:
    from ganbench.evaluate import evaluate_representation, load_representation, portable_record
    from ganbench.report.records import append_record

    if kw["trials"] is not None and kw["trials"] < 1:
        raise click.BadParameter("must be at least 1", param_hint="--trials")
    from ganbench import distributed

    device = str(distributed.setup(kw["device"]))  # under torchrun: this rank's device, the process group up
    d = load_representation(kw["checkpoint"], kw["random_init"], seed=kw["seed"], variant_file=kw["variant_file"],
                            device=device, model_kwargs=_parse_key_values(kw["model_args"]),
                            representation=kw["representation"], objective=kw["objective"],
                            objective_file=kw["objective_file"])
    for name in protocols:
        record = evaluate_representation(
            name, d, kw["data_root"], layers=kw["layers"], bn_stats=kw["bn_stats"],
            feature_dtype=kw["feature_dtype"], C_grid=_parse_floats(kw["c_grid"]), svm_backend=kw["svm_backend"],
            device=device, batch_size=kw["batch_size"], seed=kw["seed"], trials=kw["trials"],
            download=kw["download"], label=kw["label"], notes=list(kw["notes"]), progress=not kw["quiet"],
            allow_resize=kw["allow_resize"], amp=kw["amp"])
        if record is None:  # a rank other than 0 under torchrun: rank 0 fits the SVM and writes the record
            continue
        record = portable_record(record, kw["data_root"])  # committed records are read on other machines
        if not kw["no_record"]:
            path = Path(kw["records"] or Path("results") / "records" / f"{name}.jsonl")
            append_record(record, path)
        if kw["as_json"]:
            click.echo(json.dumps(record, indent=1, default=str))
        else:
            r = record["results"]
            if "test_error_mean" in r:
                score = f"test error {r['test_error_mean']:.2f}% ± {r['test_error_ci95']:.2f} (1.96 std)"
            else:
                score = f"test accuracy {r['test_accuracy_mean']:.2f}% (std {r['test_accuracy_std']:.2f})"
            click.echo(f"{name}: {score}; C={record['svm']['chosen_C']:g}; features {record['features']['dim']}; "
                       f"{record['wall_time_s']['total']:.0f} s" + ("" if kw["no_record"] else f"; record -> {path}"))


@cli.group("eval")
def eval_group() -> None:
    """Score a discriminator's features with the paper's L2-SVM protocols, score samples, check memorisation."""


@eval_group.command("cifar10")
@click.option("--protocol", type=click.Choice(choices.CIFAR10_PROTOCOLS), default="both", show_default=True)
@_probe_options
def eval_cifar10(protocol: str, **kw) -> None:
    """CIFAR-10: full training set and/or 400 labels per class (paper, table 1)."""
    names = {"full": ["cifar10-full"], "400": ["cifar10-400"], "both": ["cifar10-full", "cifar10-400"]}[protocol]
    _run_probe(names, **kw)


@eval_group.command("svhn")
@_probe_options
def eval_svhn(**kw) -> None:
    """SVHN with 1,000 labels, as the authors' released script (paper, table 2)."""
    _run_probe(["svhn-1000"], **kw)


@eval_group.command("mnist")
@_probe_options
def eval_mnist(**kw) -> None:
    """MNIST with 100 labels per class."""
    _run_probe(["mnist"], **kw)


@eval_group.command("digits")
@_probe_options
def eval_digits(**kw) -> None:
    """scikit-learn's digits (offline), stratified splits."""
    _run_probe(["digits"], **kw)


def _quality_options(func):
    opts = [
        click.option("--ref",
                     help="Reference: dataset:split (cifar10:train), a folder, or a stats .npz; needed by every "
                          "metric but is (the Inception Score reads the samples alone)."),
        click.option("--data-root", help="Dataset root for a dataset:split reference."),
        click.option("--metrics", default=",".join(choices.QUALITY_METRICS), show_default=True,
                     callback=_check_metrics, help=f"Comma-separated subset of {','.join(choices.QUALITY_METRICS)}."),
        click.option("--inception-weights", type=click.Path(dir_okay=False),
                     help="pt_inception-2015-12-05-6726825d.pth (else $GANBENCH_INCEPTION_WEIGHTS, torch hub cache)."),
        click.option("--fid-dims", type=click.Choice(_FID_DIMS), default=str(choices.FID_DIMS_DEFAULT),
                     show_default=True),
        click.option("--inception-input", type=click.Choice(choices.INCEPTION_INPUTS),
                     default=choices.INCEPTION_INPUT_DEFAULT, show_default=True, help=_INCEPTION_INPUT_HELP),
        click.option("--is-splits", type=click.IntRange(min=1), default=choices.IS_SPLITS, show_default=True),
        click.option("--batch-size", type=click.IntRange(min=1), default=choices.QUALITY_BATCH, show_default=True),
        click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True),
        click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True),
        click.option("--records", type=click.Path(dir_okay=False),
                     help="JSONL (default results/records/quality.jsonl)."),
        click.option("--no-record", is_flag=True),
        click.option("--label"),
        click.option("--json", "as_json", is_flag=True),
        click.option("--quiet", is_flag=True),
    ]
    for opt in reversed(opts):
        func = opt(func)
    return func


def _report_quality(record: dict | None, records: str | None, no_record: bool, as_json: bool) -> None:
    from ganbench.report.records import append_record

    if record is None:  # a rank other than 0 under torchrun; rank 0 reports
        return
    if not no_record:
        append_record(record, Path(records or Path("results") / "records" / "quality.jsonl"))
    if as_json:
        click.echo(json.dumps({**record["results"], "record": record}, indent=1, default=str))
        return
    r = record["results"]
    parts = [f"{k} {r[k]:.4g}" for k in ("fid", "is_mean", "kid_mean", "precision", "recall", "density", "coverage")
             if k in r]
    click.echo(f"{record['label']}: " + ", ".join(parts) + f" (Inception input {record.get('inception_input')})")


@eval_group.command("quality")
@click.option("--checkpoint", required=True, type=click.Path(dir_okay=False))
@click.option("--n", "n", type=click.IntRange(min=1), default=choices.QUALITY_SAMPLES, show_default=True,
              help="Samples to generate.")
@click.option("--variant", "variant_file")
@_quality_options
def eval_quality(checkpoint, n, variant_file, ref, data_root, metrics, inception_weights, fid_dims, inception_input,
                 is_splits, batch_size, device, seed, records, no_record, label, as_json, quiet) -> None:
    """FID, IS, KID, precision/recall, density/coverage of a generator's samples, from one Inception pass."""
    from ganbench.quality import evaluate_quality

    record = evaluate_quality(checkpoint=checkpoint, ref=ref, n=n, metrics=tuple(metrics.split(",")),
                              inception_weights=inception_weights, fid_dims=int(fid_dims), is_splits=is_splits,
                              batch_size=batch_size, device=device, seed=seed, data_root=data_root,
                              variant_file=variant_file, label=label, progress=not quiet,
                              inception_input=inception_input)
    _report_quality(record, records, no_record, as_json)


@eval_group.command("samples")
@click.argument("folder")
@_quality_options
def eval_samples(folder, ref, data_root, metrics, inception_weights, fid_dims, inception_input, is_splits, batch_size,
                 device, seed, records, no_record, label, as_json, quiet) -> None:
    """Score any folder (or .npz) of generated images, e.g. another GAN's samples."""
    from ganbench.quality import evaluate_quality

    record = evaluate_quality(samples=folder, ref=ref, metrics=tuple(metrics.split(",")),
                              inception_weights=inception_weights, fid_dims=int(fid_dims), is_splits=is_splits,
                              batch_size=batch_size, device=device, seed=seed, data_root=data_root, label=label,
                              progress=not quiet, inception_input=inception_input)
    _report_quality(record, records, no_record, as_json)


@eval_group.command("memorization")
@click.option("--checkpoint", required=True, type=click.Path(dir_okay=False))
@click.option("--dataset", required=True, help="The training data: cifar10, svhn, mnist, digits, ... (see README).")
@click.option("--data-root", help="Where the dataset lies (digits needs none).")
@click.option("--n", "n", type=click.IntRange(min=2), default=10000, show_default=True, help="Samples to generate.")
@click.option("--features", type=click.Choice(["auto", "inception", "discriminator", "pixels"]), default="auto",
              show_default=True,
              help="Feature space of the distances; auto: Inception pool3 when its weights are here, else D's own "
                   "pooled features.")
@click.option("--cells", type=click.IntRange(min=1), help="k-means cells of the test. [about 50 test images per cell]")
@click.option("--min-cell-samples", type=click.IntRange(min=1), default=20, show_default=True,
              help="A cell counts when it holds this many generated samples (the paper's tau).")
@click.option("--train-split", default="train", show_default=True)
@click.option("--test-split", default="test", show_default=True,
              help="Held-out images G never saw (digits: its stratified 80/20 split).")
@click.option("--out", type=click.Path(file_okay=False), help="Folder for the pictures. [RUN/memorization]")
@click.option("--inception-weights", type=click.Path(dir_okay=False))
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@click.option("--variant", "variant_file")
@click.option("--records", type=click.Path(dir_okay=False), help="JSONL (default results/records/memorization.jsonl).")
@click.option("--no-record", is_flag=True)
@click.option("--label")
@click.option("--json", "as_json", is_flag=True)
@click.option("--quiet", is_flag=True)
def eval_memorization(checkpoint, dataset, data_root, n, features, cells, min_cell_samples, train_split, test_split,
                      out, inception_weights, seed, device, variant_file, records, no_record, label, as_json,
                      quiet) -> None:
    """Does G copy its training data? Nearest training images of samples and the data-copying test C_T.

    C_T (Meehan, Chaudhuri & Dasgupta 2020) compares generated-to-train with held-out-to-train nearest-neighbour
    distances per k-means cell: C_T << 0 (e.g. < -3) means data-copying, C_T > 0 under-fitting, about 0 neither."""
    from ganbench.memorization import evaluate_memorization
    from ganbench.report.records import append_record

    record = evaluate_memorization(checkpoint=checkpoint, dataset=dataset, data_root=data_root, n=n,
                                   features=features, cells=cells, min_cell_samples=min_cell_samples,
                                   train_split=train_split, test_split=test_split, out=out,
                                   inception_weights=inception_weights, seed=seed, device=device,
                                   variant_file=variant_file, label=label, progress=not quiet)
    path = Path(records or Path("results") / "records" / "memorization.jsonl")
    if not no_record:
        append_record(record, path)
    if as_json:
        click.echo(json.dumps(record, indent=1, default=str))
        return
    r = record["results"]
    click.echo(f"{record['label']}: C_T = {r['C_T']:.3f} over {r['cells_kept']} of {r['n_cells']} cells "
               f"({record['features']}); median nearest training distance: samples {r['gen_nn_median']:.4g}, "
               f"held-out {r['test_nn_median']:.4g}; {r['share_below_test_p1']:.1%} of samples closer than 99% of "
               f"held-out images")
    click.echo(f"  sign: {record['sign_convention']}")
    if record.get("heldout_note"):
        click.echo(f"  note: {record['heldout_note']}")
    click.echo(f"  pictures: {record['outputs']['neighbours']}, {record['outputs']['distances']}"
               + ("" if no_record else f"; record -> {path}"))


@cli.command("stats")
@click.argument("source")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="pytorch-fid .npz (mu, sigma).")
@click.option("--data-root")
@click.option("--inception-weights", type=click.Path(dir_okay=False))
@click.option("--fid-dims", type=click.Choice(_FID_DIMS), default=str(choices.FID_DIMS_DEFAULT),
              show_default=True)
@click.option("--inception-input", type=click.Choice(choices.INCEPTION_INPUTS),
              default=choices.INCEPTION_INPUT_DEFAULT, show_default=True, help=_INCEPTION_INPUT_HELP)
@click.option("--batch-size", type=click.IntRange(min=1), default=choices.QUALITY_BATCH, show_default=True)
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@click.option("--quiet", is_flag=True)
def stats_cmd(source, out, data_root, inception_weights, fid_dims, inception_input, batch_size, device, quiet) -> None:
    """Reference statistics of a folder, .npz or dataset:split, interoperable with pytorch-fid's --save-stats.

    The Inception input mode is written into the .npz; evaluations refuse statistics of another mode."""
    from ganbench.quality import write_reference_statistics

    path = write_reference_statistics(source, out, inception_weights=inception_weights, data_root=data_root,
                                      fid_dims=int(fid_dims), batch_size=batch_size, device=device,
                                      progress=not quiet, inception_input=inception_input)
    if path is not None:  # None on ranks other than 0 under torchrun
        click.echo(f"wrote {path}")


# ------------------------------------------------------------------------------------- features, inspect
@cli.command("features")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--dataset", required=True)
@click.option("--data-root")
@click.option("--split", default="train", show_default=True)
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The .npy file to write.")
@click.option("--layers")
@click.option("--bn-stats", type=click.Choice(choices.BN_STATS), default=choices.BN_STATS_DEFAULT,
              show_default=True, help="train-batches calibrates on the dataset's train split.")
@click.option("--feature-dtype", type=click.Choice(choices.FEATURE_DTYPES), default=choices.FEATURE_DTYPE_EXPORT,
              show_default=True)
@click.option("--variant", "variant_file")
@click.option("--representation", default="d", show_default=True,
              help="d (the discriminator) or an owned representation module, e.g. encoder (BiGAN's E).")
@click.option("--objective-file", help="path/to/file.py:NAME, for a plug-in objective's representation.")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=choices.FEATURE_BATCH, show_default=True)
@click.option("--quiet", is_flag=True)
def features_cmd(checkpoint, dataset, data_root, split, out, layers, bn_stats, feature_dtype, variant_file,
                 representation, objective_file, device, batch_size, quiet) -> None:
    """Export discriminator features (every layer max-pooled to 4x4, concatenated) as an .npy for other tools."""
    import numpy as np

    from ganbench import distributed
    from ganbench.data import load_images
    from ganbench.evaluate import Learned, load_representation
    from ganbench.features import FeatureSpec, extract_features, parse_layers, train_batch_statistics

    dev = distributed.setup(device)  # under torchrun the batches are shared out and gathered on rank 0
    d = load_representation(checkpoint, variant_file=variant_file, device=str(dev), representation=representation,
                            objective_file=objective_file)
    if isinstance(d, Learned):
        _export_learned(d, dataset, data_root, split, out, feature_dtype, layers, dev, batch_size, quiet)
        return
    store = distributed.main_first(
        lambda: load_images(dataset, data_root, split, image_size=d.disc.image_size, progress=not quiet))
    chosen = parse_layers(layers, len(d.disc.layer_shapes()))
    stats = None
    if bn_stats == "train-batches":
        calib = store if split == "train" else distributed.main_first(lambda: load_images(
            dataset, data_root, "train", image_size=d.disc.image_size, progress=not quiet))
        stats = train_batch_statistics(d.disc, np.asarray(calib.images), 128, dev, progress=not quiet)
    spec = FeatureSpec(d.identity, chosen, bn_stats, feature_dtype)
    matrix = extract_features(d.disc, store, spec, bn_stats_values=stats, batch_size=batch_size, device=dev,
                              out=out, progress=not quiet)
    if matrix is None:  # another rank than 0: rank 0 has written the file
        return
    np.save(Path(out).with_suffix(".labels.npy"), np.asarray(store.labels))
    click.echo(f"wrote {out}: {matrix.shape[0]} x {matrix.shape[1]} {feature_dtype} (labels beside it)")


def _export_learned(d, dataset, data_root, split, out, feature_dtype, layers, dev, batch_size, quiet) -> None:
    """`ganbench features` of a fitted learner (k-means, pixels): its transform of the split."""
    import numpy as np

    from ganbench.data import load_images
    from ganbench.features import extract_representation

    if layers:
        raise ConfigError(f"--layers picks a network's layers; the {d.model['name']} representation has none")
    store = load_images(dataset, data_root, split, image_size=d.image_size, progress=not quiet)
    matrix = extract_representation(d.rep, d.identity, store, dtype=feature_dtype, batch_size=batch_size,
                                    device=dev, progress=not quiet, out=out)
    np.save(Path(out).with_suffix(".labels.npy"), np.asarray(store.labels))
    click.echo(f"wrote {out}: {matrix.shape[0]} x {matrix.shape[1]} {feature_dtype} (labels beside it)")


@cli.command("inspect")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--variant", "variant_file")
@click.option("--objective-file", help="The objective file of a checkpoint trained with one (path.py:NAME).")
@click.option("--json", "as_json", is_flag=True)
def inspect_cmd(checkpoint: str, variant_file: str | None, objective_file: str | None, as_json: bool) -> None:
    """Model name, nz, image size, layers (channels, spatial size) and feature_dim of a checkpoint, and the modules
    its objective owns."""
    from ganbench.checkpoint import build_from_checkpoint, load_checkpoint, owned_modules_info

    ckpt = load_checkpoint(checkpoint, learner_ok=True)
    if "learner" in ckpt:  # a fitted k-means or pixels learner: its settings and how the fit went
        info = {"learner": ckpt["learner"].get("name"), "settings": ckpt["learner"].get("settings"),
                "fit": ckpt.get("fit"), "dataset": (ckpt.get("config") or {}).get("dataset")}
        if as_json:
            click.echo(json.dumps(info, indent=1, default=str))
            return
        settings = ", ".join(f"{k}={v}" for k, v in (info["settings"] or {}).items())
        click.echo(f"{info['learner']} learner fitted on {info['dataset']}: {settings}")
        for key, value in (info["fit"] or {}).items():
            click.echo(f"  {key}: {value}")
        return
    gen, disc, variant = build_from_checkpoint(ckpt, variant_file)
    prov = ckpt.get("provenance", {}) or {}
    info = {
        "model": variant.name, "kwargs": ckpt["model"].get("kwargs", {}),
        "nz": getattr(gen, "nz", None), "image_size": disc.image_size,
        "layers": [{"layer": i, "channels": c, "height": h, "width": w}
                   for i, (c, h, w) in enumerate(disc.layer_shapes(), 1)],
        "feature_dim": disc.feature_dim(), "step": ckpt.get("step"),
        "partial": bool(prov.get("partial") or ckpt["model"].get("partial")),
        "generator": ckpt.get("G") is not None,
        "source": prov.get("source", "ganbench train"),
        "owned": owned_modules_info(ckpt, variant_file, objective_file),
    }
    if as_json:
        click.echo(json.dumps(info, indent=1))
        return
    partial = ", PARTIAL" if info["partial"] else ""
    click.echo(f"{info['model']} ({info['source']}{partial}): image {info['image_size']}, "
               f"nz {info['nz']}, step {info['step']}, feature_dim {info['feature_dim']:,}")
    for layer in info["layers"]:
        click.echo(f"  layer {layer['layer']}: {layer['channels']} x {layer['height']} x {layer['width']}")
    for module in info["owned"]:
        dim = f", feature_dim {module['feature_dim']:,}" if "feature_dim" in module else ""
        click.echo(f"  owned by {ckpt['config'].get('objective')}: {_owned_text(module)}{dim}")


# ------------------------------------------------------------------------------------------------ tables
@cli.command("tables")
@click.option("--records", "records_dir", default="results/records", show_default=True)
@click.option("--out", "tables_dir", default="results/tables", show_default=True)
@click.option("--compare-root", default="results/compare", show_default=True,
              help="Folder of comparisons (one folder per `ganbench compare` run) whose tables are regenerated too.")
@click.option("--check", is_flag=True, help="Exit 1 if the committed tables differ from what the records give.")
def tables_cmd(records_dir: str, tables_dir: str, compare_root: str, check: bool) -> None:
    """Regenerate the paper-style tables and the comparison tables (Markdown, CSV, LaTeX) from the records."""
    from ganbench.compare import spec_of_folder, stale_comparisons, write_comparison
    from ganbench.report.tables import check_tables, write_tables

    if check:
        stale = check_tables(records_dir, tables_dir) + stale_comparisons(Path(compare_root))
        if stale:
            click.echo(f"ganbench: tables out of date: {', '.join(stale)}; run `ganbench tables` and commit",
                       err=True)
            sys.exit(1)
        click.echo("tables match the records")
        return
    for path in write_tables(records_dir, tables_dir):
        click.echo(f"wrote {path}")
    for saved in sorted(Path(compare_root).glob("*/spec.json")):
        for path in write_comparison(saved.parent, spec_of_folder(saved.parent)):
            click.echo(f"wrote {path}")


# ------------------------------------------------------------------------------------------- reproduce
@cli.group("reproduce")
def reproduce_group() -> None:
    """Reproduce published tables end to end."""


@reproduce_group.command("paper")
@click.option("--data-root", required=True,
              help="Folder holding cifar10/ and svhn/ (or cifar-10-batches-py, *_32x32.mat).")
@click.option("--models", "models_dir", required=True, help="Folder of the authors' checkpoints (dcgan_code/models).")
@click.option("--svm-backend", type=click.Choice(choices.SVM_BACKENDS), default=choices.SVM_BACKEND_DEFAULT,
              show_default=True)
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@click.option("--records", "records_dir", default="results/records", show_default=True)
@click.option("--quiet", is_flag=True)
def reproduce_paper(data_root: str, models_dir: str, svm_backend: str, device: str, records_dir: str,
                    quiet: bool) -> None:
    """Tables 1 and 2 of the DCGAN paper with the authors' released weights; says plainly what it had to skip."""
    from ganbench.reproduce import reproduce_paper as run

    for line in run(Path(data_root), Path(models_dir), svm_backend=svm_backend, device=device,
                    records_dir=Path(records_dir), progress=not quiet):
        click.echo(line)


# ---------------------------------------------------------------------------------------------- import
@cli.group("import")
def import_group() -> None:
    """Convert other projects' checkpoints into ganbench checkpoints."""


@import_group.command("dcgan-code")
@click.argument("src", type=click.Path(file_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The ganbench checkpoint to write.")
@click.option("--allow-partial", is_flag=True, help="Keep the complete leading D layers when files are missing.")
@click.option("--epoch", type=int, default=None, help="Which epoch, if the folder holds several.")
def import_dcgan_code_cmd(src: str, out: str, allow_partial: bool, epoch: int | None) -> None:
    """The DCGAN authors' released Theano checkpoints (Newmu/dcgan_code), read without Theano or unpickling."""
    from ganbench.interop.dcgan_code import format_import_summary, import_dcgan_code

    click.echo(format_import_summary(import_dcgan_code(src, out, allow_partial=allow_partial, epoch=epoch)))


if __name__ == "__main__":  # pragma: no cover
    main()
