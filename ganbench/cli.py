"""The `ganbench` command: a thin shell that parses options and calls one library function per command."""

from __future__ import annotations

import json
import sys
from dataclasses import fields
from pathlib import Path

import click
from click.core import ParameterSource

from ganbench import __version__
from ganbench.config import AMP_MODES, DEVICES, SCHEDULES, TrainConfig, read_config
from ganbench.errors import GanbenchError


class GanbenchGroup(click.Group):
    """Every user error ends as one line on stderr and exit code 2, never a traceback."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except GanbenchError as exc:
            click.echo(f"ganbench: error: {exc}", err=True)
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
    from ganbench.models.summary import describe_variants

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


# ----------------------------------------------------------------------------------------------- train
def _train_options(func):
    opts = [
        click.option("--model", help="Registered model name (see `ganbench models`). [dcgan32]"),
        click.option("--variant", "variant_file", help="Load the model from path/to/file.py:NAME."),
        click.option("--nz", type=int, help="Latent size (model default)."),
        click.option("--ngf", type=int, help="Generator base width (model default)."),
        click.option("--ndf", type=int, help="Discriminator base width (model default)."),
        click.option("--channels", type=int, help="Image channels (default: the dataset's)."),
        click.option("--dataset", help="cifar10, svhn, imagenet, folder, lsun, mnist, digits, fake. [cifar10]"),
        click.option("--data-root", help="Where the dataset lies (or goes, with --download)."),
        click.option("--split", help="Dataset split. [train]"),
        click.option("--download", is_flag=True, help="Fetch the dataset if a downloader exists."),
        click.option("--max-images", type=int, help="Use at most this many images."),
        click.option("--steps", type=int, help="Total optimisation steps (minibatches)."),
        click.option("--epochs", type=float, help="Total epochs (instead of --steps). [25]"),
        click.option("--batch-size", type=int, help="Minibatch size. [128]"),
        click.option("--lr", type=float, help="Adam learning rate. [2e-4]"),
        click.option("--beta1", type=float, help="Adam beta1. [0.5]"),
        click.option("--beta2", type=float, help="Adam beta2. [0.999]"),
        click.option("--weight-decay", type=float, help="L2 weight decay (the authors used 1e-5). [0]"),
        click.option("--loss", help="bce (non-saturating, the paper's), hinge or lsgan."),
        click.option("--schedule", type=click.Choice(SCHEDULES), help="D/G update schedule. [simultaneous]"),
        click.option("--seed", type=int, help="Seed for init, data order and z. [0]"),
        click.option("--deterministic", is_flag=True, help="Deterministic kernels only."),
        click.option("--device", type=click.Choice(DEVICES), help="[auto]"),
        click.option("--amp", type=click.Choice(AMP_MODES), help="Mixed precision. [off]"),
        click.option("--channels-last", is_flag=True, help="NHWC memory layout."),
        click.option("--compile", is_flag=True, help="torch.compile G and D."),
        click.option("--log-every", type=int, help="Steps between metrics.jsonl rows. [50]"),
        click.option("--sample-every", type=int, help="Steps between sample grids. [500]"),
        click.option("--checkpoint-every", type=int, help="Steps between checkpoints. [1000]"),
        click.option("--n-samples", type=int, help="Images in each sample grid. [64]"),
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
        setattr(cfg, key, value)
    return cfg, explicit


@cli.command("train")
@_train_options
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Run directory.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML file of settings.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from checkpoints/last.pt.")
@click.option("--overwrite", is_flag=True, help="Delete an existing --out first.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
def train_cmd(ctx: click.Context, out: str, config_file: str | None, resume: bool, overwrite: bool,
              quiet: bool, **_: object) -> None:
    """Train a GAN; writes config.toml, metrics.jsonl, samples/, curves.png and checkpoints/ under --out."""
    from ganbench.train.loop import train

    cfg, explicit = _collect_config(ctx, config_file)
    result = train(cfg, out, resume=resume, overwrite=overwrite, explicit=explicit, progress=not quiet)
    m = result.final_metrics
    click.echo(
        f"trained {result.steps} steps: loss_D {m.get('loss_d', float('nan')):.4f}, "
        f"loss_G {m.get('loss_g', float('nan')):.4f}, {result.images_per_second:.1f} images/s "
        f"(last interval); checkpoint {result.last_checkpoint}"
    )


# ---------------------------------------------------------------------------------------------- sample
@cli.command("sample")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--n", "n", type=int, default=64, show_default=True, help="Images (or walks with --interpolate).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="PNG file for the grid.")
@click.option("--interpolate", is_flag=True, help="Rows of linear walks between random points of z.")
@click.option("--walk-steps", type=int, default=10, show_default=True, help="Images per walk.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--bn", type=click.Choice(["batch", "running"]), default="batch", show_default=True,
              help="BatchNorm statistics: of the generated batch (as in training) or the running averages.")
@click.option("--variant", "variant_file", help="path/to/file.py:NAME, for models from a file.")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
def sample_cmd(checkpoint: str, n: int, out: str, interpolate: bool, walk_steps: int, seed: int, bn: str,
               variant_file: str | None, device: str) -> None:
    """Save a grid of generated images, or of walks in z (paper, figure 4)."""
    from ganbench.sampling import sample_grid

    path = sample_grid(checkpoint, out, n=n, interpolate=interpolate, walk_steps=walk_steps, seed=seed,
                       bn=bn, variant_file=variant_file, device=device)
    click.echo(f"wrote {path}")


# ------------------------------------------------------------------------------------------------ demo
@cli.command("demo")
@click.option("--out", default="runs/demo", show_default=True, type=click.Path(file_okay=False))
@click.option("--steps", type=int, default=None, help="Training steps (default: the demo's calibrated count).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def demo_cmd(out: str, steps: int | None, quiet: bool) -> None:
    """Offline, CPU, a few minutes: train a narrow dcgan32 on scikit-learn's digits and show what it made."""
    from ganbench.demo import run_demo

    for line in run_demo(Path(out), steps=steps, progress=not quiet):
        click.echo(line)


if __name__ == "__main__":  # pragma: no cover
    main()
