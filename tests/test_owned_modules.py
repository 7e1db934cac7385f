"""Objectives that own modules (SS-GAN's rotation head, BiGAN's encoder and joint head, a plug-in's head): their
losses against a direct computation on a tiny network, their training, checkpoints, resume and rebuilding."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from ganbench.checkpoint import build_owned_module, load_checkpoint, save_checkpoint
from ganbench.cli import cli
from ganbench.config import TrainConfig
from ganbench.errors import CheckpointError, ConfigError
from ganbench.models.base import Discriminator
from ganbench.objectives.ssgan import images_to_rotate, rotated_batch
from ganbench.registry import get_objective, get_variant
from ganbench.train.loop import train

HERE = Path(__file__).parent
BN_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")
PLUGIN = f"{HERE / 'objective_file_example.py'}:SquaredWithHead"


pytestmark = pytest.mark.usefixtures("isolated_cache")  # tests/conftest.py


def tiny(**kw) -> TrainConfig:
    base = TrainConfig(model="dcgan32", ngf=4, ndf=4, nz=8, dataset="fake", max_images=64, batch_size=16,
                       device="cpu", log_every=3, sample_every=100, checkpoint_every=3, n_samples=4,
                       deterministic=True, steps=6)
    return replace(base, **kw)


def tiny_networks(seed: int = 0):
    torch.manual_seed(seed)
    gen, disc = get_variant("dcgan32").build(ngf=4, ndf=4, nz=8)
    gen.eval()
    disc.eval()  # running statistics: each image's output depends on it alone, so it can be computed one at a time
    return gen, disc


def softplus(v: np.ndarray) -> np.ndarray:
    return np.log1p(np.exp(-np.abs(v))) + np.maximum(v, 0)


# --------------------------------------------------------------------------------------------------------- SS-GAN
def test_rotated_batch_turns_counter_clockwise_in_label_order():
    x = torch.arange(2 * 1 * 3 * 3, dtype=torch.float32).view(2, 1, 3, 3)
    turned, labels = rotated_batch(x)
    assert labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    for k in range(4):
        for i in range(2):
            np.testing.assert_array_equal(turned[2 * k + i, 0].numpy(), np.rot90(x[i, 0].numpy(), k))


def direct_rotation_ce(disc, head, images: torch.Tensor) -> float:
    """Mean over images and the four rotations of -log softmax(head(flatten(last map)))[rotation], one image at a
    time, rotations by numpy, the softmax written out in float64."""
    w, b = head.weight.detach().double().numpy(), head.bias.detach().double().numpy()
    terms = []
    for img in images:
        for k in range(4):
            turned = torch.from_numpy(np.ascontiguousarray(np.rot90(img.numpy(), k, axes=(1, 2))))
            with torch.no_grad():
                feats = disc.feature_maps(turned[None])[-1].flatten().double().numpy()
            logits = w @ feats + b
            terms.append(-(logits[k] - logits.max() - np.log(np.exp(logits - logits.max()).sum())))
    return float(np.mean(terms))


@pytest.mark.parametrize("base,rotate", [("ns", "quarter"), ("hinge", "quarter"), ("ns", "all")])
def test_ssgan_losses_equal_base_plus_weighted_rotation_cross_entropy(base, rotate):
    gen, disc = tiny_networks()
    objective = get_objective("ss-gan")(base=base, alpha=0.3, beta=1.7, rotate=rotate)
    owned = objective.own_modules(gen, disc)
    assert set(owned) == {"rotation"} and owned["rotation"].side == "d"
    head = owned["rotation"].module
    assert head.in_features == 16 * 4 * 4 and head.out_features == 4  # D's last map: 4 ndf x 4 x 4
    real, fake = torch.randn(8, 3, 32, 32), torch.randn(8, 3, 32, 32)
    with torch.no_grad():
        r, f = disc(real).double().numpy(), disc(fake).double().numpy()
    # "quarter": the last 2 of the 8 images in four rotations (compare_gan's layout); "all": every image
    rotated = slice(6, 8) if rotate == "quarter" else slice(0, 8)
    if base == "ns":
        gan_d, gan_g = softplus(-r).mean() + softplus(f).mean(), softplus(-f).mean()
    else:
        gan_d, gan_g = np.maximum(0, 1 - r).mean() + np.maximum(0, 1 + f).mean(), -f.mean()
    d_loss, d_logs = objective.d_loss(disc, real, fake)
    g_loss, g_logs = objective.g_loss(disc, real, fake)
    ce_real, ce_fake = direct_rotation_ce(disc, head, real[rotated]), direct_rotation_ce(disc, head, fake[rotated])
    assert d_loss.item() == pytest.approx(gan_d + 1.7 * ce_real, rel=1e-5)
    assert g_loss.item() == pytest.approx(gan_g + 0.3 * ce_fake, rel=1e-5)
    assert d_logs["rotation_real"].item() == pytest.approx(ce_real, rel=1e-5)
    assert objective.output_kind == ("logit" if base == "ns" else "critic")
    # the rotation loss trains the head and D's trunk
    d_loss.backward()
    assert head.weight.grad.abs().sum() > 0 and disc.blocks[0][0].weight.grad.abs().sum() > 0


def test_ssgan_refuses_an_unknown_base():
    with pytest.raises(ConfigError, match="base 'lsgan' is not one of ns, hinge"):
        get_objective("ss-gan")(base="lsgan")
    with pytest.raises(ConfigError, match="rotate 'half' is not one of quarter, all"):
        get_objective("ss-gan")(rotate="half")


def test_ssgan_quarter_rotates_at_least_one_image():
    x = torch.randn(3, 1, 4, 4)  # a batch smaller than 4 still gives the loss one image in four rotations
    turned, labels = rotated_batch(images_to_rotate(x, "quarter"))
    assert turned.shape == (4, 1, 4, 4) and labels.tolist() == [0, 1, 2, 3]
    torch.testing.assert_close(turned[0], x[2])
    assert images_to_rotate(x, "all") is x


# ---------------------------------------------------------------------------------------------------------- BiGAN
def direct_pair_logit(disc, joint, x: torch.Tensor, z: torch.Tensor) -> np.ndarray:
    """D(x) + joint(features, z), the joint MLP written out in float64 with LeakyReLU(0.2)."""
    def lin(layer, v):
        return layer.weight.detach().double().numpy() @ v + layer.bias.detach().double().numpy()

    def lrelu(v):
        return np.where(v > 0, v, 0.2 * v)

    out = []
    for i in range(len(x)):
        with torch.no_grad():
            d = float(disc(x[i:i + 1]).double())
            feats = disc.feature_maps(x[i:i + 1])[-1].flatten().double().numpy()
        e = lrelu(lin(joint.embed_z[2], lrelu(lin(joint.embed_z[0], z[i].double().numpy()))))
        h = lrelu(lin(joint.joint[0], np.concatenate([feats, e])))
        out.append(d + float(lin(joint.joint[2], h)[0]))
    return np.array(out)


def test_bigan_losses_equal_bce_of_the_pair_scores_and_train_the_right_modules():
    gen, disc = tiny_networks()
    objective = get_objective("bigan")(hidden=8)
    owned = objective.own_modules(gen, disc)
    assert {n: o.side for n, o in owned.items()} == {"encoder": "g", "joint": "d"}
    encoder, joint = owned["encoder"].module, owned["joint"].module
    encoder.eval()
    real, z = torch.randn(3, 3, 32, 32), gen.sample_z(3)
    with torch.no_grad():
        fake = gen(z)
        encoded = encoder(real)
    s_real = direct_pair_logit(disc, joint, real, encoded)
    s_fake = direct_pair_logit(disc, joint, fake, z)
    d_loss, logs = objective.d_loss(disc, real, fake, z=z)
    assert d_loss.item() == pytest.approx(softplus(-s_real).mean() + softplus(s_fake).mean(), rel=1e-5)
    assert logs["d_real"].item() == pytest.approx(float(np.mean(1 / (1 + np.exp(-s_real)))), rel=1e-5)
    d_loss.backward()
    # D's update reaches D and the joint head, never E (E(x) is computed without a graph in D's step)
    assert joint.joint[0].weight.grad.abs().sum() > 0 and disc.blocks[0][0].weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in encoder.parameters())
    disc.zero_grad(set_to_none=True)
    joint.zero_grad(set_to_none=True)
    fake = gen(z)
    g_loss, g_logs = objective.g_loss(disc, real, fake, z=z)
    assert g_loss.item() == pytest.approx(softplus(-s_fake).mean()
                                          + softplus(s_real).mean(), rel=1e-5)
    assert g_logs["loss_e"].item() == pytest.approx(softplus(s_real).mean(), rel=1e-5)
    g_loss.backward()
    # G's update reaches G and E
    assert encoder.to_z.weight.grad.abs().sum() > 0 and encoder.trunk.blocks[0][0].weight.grad.abs().sum() > 0
    assert next(gen.parameters()).grad.abs().sum() > 0


def test_bigan_runs_d_once_per_pair_and_matches_the_two_pass_scores_and_gradients():
    """The pair score reads D's last map from D's own forward pass (a hook on the layer D names), not a second
    pass: half of D's forwards, with the loss and every gradient of the two-pass path (a D that names no layers).
    In training mode, so BatchNorm's batch statistics are in the graph as they are when training."""
    results = []
    for one_pass in (True, False):
        gen, disc = tiny_networks()
        disc.train()
        objective = get_objective("bigan")(hidden=8)
        joint = objective.own_modules(gen, disc)["joint"].module
        if not one_pass:
            disc.feature_modules = lambda: None  # any D: the objective falls back to feature_maps(x)
        calls = []
        disc.blocks[0].register_forward_hook(lambda module, args, output, calls=calls: calls.append(1))
        real, z = torch.randn(4, 3, 32, 32), gen.sample_z(4)
        with torch.no_grad():
            fake = gen(z)
        loss, _ = objective.d_loss(disc, real, fake, z=z)
        loss.backward()
        grads = [p.grad.clone() for p in [*disc.parameters(), *joint.parameters()]]
        results.append((len(calls), loss.item(), grads))
    (calls_one, loss_one, grads_one), (calls_two, loss_two, grads_two) = results
    assert (calls_one, calls_two) == (2, 4)  # real and fake pairs: one D pass each, or two
    assert loss_one == pytest.approx(loss_two, rel=1e-6)
    for a, b in zip(grads_one, grads_two, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_bigan_encoder_keeps_the_discriminator_feature_contract_with_new_weights():
    gen, disc = tiny_networks()
    spectral = get_variant("dcgan32").build(ngf=4, ndf=4, nz=8, spectral_norm=True)[1]
    for d in (disc, spectral):
        encoder = get_objective("bigan")().build_modules(gen, d)["encoder"].module
        assert isinstance(encoder, Discriminator) and encoder.channels == 3 and encoder.image_size == 32
        assert encoder.layer_shapes() == d.layer_shapes() and encoder.feature_dim() == d.feature_dim()
        assert len(encoder.feature_maps(torch.randn(2, 3, 32, 32))) == 6
        assert encoder(torch.randn(2, 3, 32, 32)).shape == (2, 8)
        assert {f"trunk.{k}" for k in d.state_dict()} <= set(encoder.state_dict())  # D's stack, SN included
        first = next(k for k in d.state_dict() if k.startswith("blocks.0.0.") and "bias" not in k)
        assert not torch.equal(encoder.trunk.state_dict()[first], d.state_dict()[first])  # new weights
        assert encoder.trunk.state_dict()[first].std() == pytest.approx(0.02, rel=0.3)  # DCGAN init


# ------------------------------------------------------------------------------------------------------- training
@pytest.mark.slow
@pytest.mark.parametrize("objective,options", [("ss-gan", {}), ("ss-gan", {"base": "hinge"}), ("bigan", {}),
                                               ("autoencoder", {}), ("denoising-autoencoder", {}), ("vae", {})])
def test_owning_objectives_train_twenty_steps_on_digits_without_nan(tmp_path, objective, options):
    cfg = TrainConfig(model="dcgan-svhn32", ngf=8, ndf=8, nz=16, dataset="digits", split="all", steps=20,
                      batch_size=32, device="cpu", log_every=10, sample_every=100, checkpoint_every=20, n_samples=4,
                      objective=objective, objective_args=options)
    train(cfg, tmp_path / "r", progress=False)
    rows = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [10, 20]
    assert all(math.isfinite(v) for r in rows for v in r.values())
    ckpt = load_checkpoint(tmp_path / "r" / "checkpoints" / "last.pt")
    for item in ckpt["owned"].values():
        assert all(torch.isfinite(v).all() for v in item["state"].values() if v.is_floating_point())
    if objective == "ss-gan":  # D learns the rotation task on real digits: above the 25% of chance
        assert rows[-1]["rotation_acc_real"] > 0.4


def owned_states(run: Path, name: str) -> dict:
    return {k: v["state"] for k, v in load_checkpoint(run / "checkpoints" / name)["owned"].items()}


@pytest.mark.parametrize("objective", ["ss-gan", "bigan", "squared-head-file", "vae", "denoising-autoencoder"])
def test_owned_modules_train_and_resume_bit_exact(tmp_path, objective):
    cfg = tiny(objective=objective, objective_file=PLUGIN if objective.endswith("file") else None)
    train(cfg, tmp_path / "once", progress=False)
    train(replace(cfg, steps=3), tmp_path / "twice", progress=False)
    train(cfg, tmp_path / "twice", resume=True, explicit={"steps"}, progress=False)
    mid, a, b = (owned_states(tmp_path / r, f) for r, f in
                 (("once", "step_0000003.pt"), ("once", "last.pt"), ("twice", "last.pt")))
    for name in a:
        assert any(not torch.equal(mid[name][k], a[name][k]) for k in a[name]), f"{name} did not train"
        for key in a[name]:
            assert torch.equal(a[name][key], b[name][key]), (name, key)
    ca, cb = (load_checkpoint(tmp_path / r / "checkpoints" / "last.pt") for r in ("once", "twice"))
    for net in ("G", "D"):
        assert all(torch.equal(ca[net][k], cb[net][k]) for k in ca[net])
    # the owned parameters are extra groups of their side's Adam, whose state resumed too
    for opt in ("opt_G", "opt_D") if get_objective(objective.replace("squared-head-file", "ns")).adversarial \
            else ("opt_G",):
        assert ca[opt]["state"].keys() == cb[opt]["state"].keys()
        for i in ca[opt]["state"]:
            assert torch.equal(ca[opt]["state"][i]["exp_avg"], cb[opt]["state"][i]["exp_avg"])


def test_each_update_steps_only_its_side_of_owned_modules(tmp_path):
    """Alternating schedule, a checkpoint after every step: step 1 updates G (and E) only, step 2 D (and the joint
    head) only."""
    train(tiny(objective="bigan", schedule="alternating", steps=3, checkpoint_every=1), tmp_path / "r",
          progress=False)
    s1, s2, s3 = (owned_states(tmp_path / "r", f"step_000000{i}.pt") for i in (1, 2, 3))

    def moved(a, b, name):  # weights only: E's BatchNorm statistics also follow E(x) in D's step
        return any(not torch.equal(a[name][k], b[name][k]) for k in a[name] if not k.endswith(BN_BUFFERS))

    assert not moved(s1, s2, "encoder") and moved(s1, s2, "joint")  # step 2: D's update
    assert moved(s2, s3, "encoder") and not moved(s2, s3, "joint")  # step 3: G's update


# ---------------------------------------------------------------------------------------------------- checkpoints
@pytest.fixture(scope="module")
def bigan_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("bigan")
    import os

    old = os.environ.get("GANBENCH_CACHE")
    os.environ["GANBENCH_CACHE"] = str(root / "cache")
    try:
        train(tiny(objective="bigan", steps=2, checkpoint_every=2), root / "run", progress=False)
    finally:
        if old is None:
            os.environ.pop("GANBENCH_CACHE")
        else:
            os.environ["GANBENCH_CACHE"] = old
    return root / "run"


def test_build_owned_module_rebuilds_the_trained_encoder(bigan_run):
    ckpt = load_checkpoint(bigan_run / "checkpoints" / "last.pt")
    encoder = build_owned_module(ckpt, "encoder")
    assert isinstance(encoder, Discriminator)
    for key, value in ckpt["owned"]["encoder"]["state"].items():
        assert torch.equal(encoder.state_dict()[key], value)
    assert encoder.feature_dim(grid=4) == (4 + 4 + 8 + 8 + 16 + 16) * 16
    with pytest.raises(CheckpointError, match="has no owned module 'rotation'; it has encoder, joint"):
        build_owned_module(ckpt, "rotation")


def test_a_checkpoint_whose_owned_modules_do_not_fit_is_refused_in_one_line(bigan_run, tmp_path):
    ckpt = load_checkpoint(bigan_run / "checkpoints" / "last.pt")
    missing = {**ckpt, "owned": {"encoder": ckpt["owned"]["encoder"]}}
    bad_shape = {**ckpt, "owned": {**ckpt["owned"], "joint": {"side": "d", "state": {
        **ckpt["owned"]["joint"]["state"], "joint.2.weight": torch.zeros(1, 3)}}}}
    for payload, message in ((missing, "owned modules (encoder) do not match those objective 'bigan' builds "
                                       "(encoder, joint)"),
                             (bad_shape, "weights of owned module 'joint' do not fit objective 'bigan'")):
        run = tmp_path / "run"
        if run.exists():
            import shutil

            shutil.rmtree(run)
        save_checkpoint(payload, run / "checkpoints" / "last.pt")
        result = CliRunner().invoke(cli, ["train", "--out", str(run), "--resume", "--steps", "4", "--quiet"])
        assert result.exit_code == 2, result.output
        lines = [ln for ln in result.output.splitlines() if ln.strip()]
        assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.output


def test_checkpoints_without_owned_modules_still_load_and_resume(tmp_path):
    """A checkpoint of an objective that owns nothing has no "owned" key, as every checkpoint before owned modules."""
    train(tiny(objective="ns", steps=2, checkpoint_every=2), tmp_path / "r", progress=False)
    ckpt = load_checkpoint(tmp_path / "r" / "checkpoints" / "last.pt")
    assert "owned" not in ckpt
    train(tiny(objective="ns", steps=3), tmp_path / "r", resume=True, explicit={"steps"}, progress=False)
    with pytest.raises(CheckpointError, match="none \\(its objective owns no modules\\)"):
        build_owned_module(ckpt, "encoder")


# ------------------------------------------------------------------------------------------------------------ CLI
def test_objectives_and_inspect_show_owned_modules(bigan_run):
    result = CliRunner().invoke(cli, ["objectives", "--json", "--objective-file", PLUGIN])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.output)}
    # dcgan32 defaults: D's last map is 512 x 4 x 4, nz 256
    assert rows["ss-gan"]["owns"] == [{"name": "rotation", "side": "d", "parameters": 8192 * 4 + 4,
                                       "representation": False}]
    joint = (256 * 256 + 256) + (256 * 256 + 256) + ((8192 + 256) * 256 + 256) + (256 + 1)
    assert {m["name"]: m["parameters"] for m in rows["bigan"]["owns"]}["joint"] == joint
    assert [m["name"] for m in rows["bigan"]["owns"] if m["representation"]] == ["encoder"]
    assert rows["squared-head-file"]["owns"] == [{"name": "head", "side": "d", "parameters": 8193,
                                                  "representation": False}]
    assert rows["ns"]["owns"] == []
    result = CliRunner().invoke(cli, ["inspect", str(bigan_run / "checkpoints" / "last.pt"), "--json"])
    assert result.exit_code == 0, result.output
    owned = {m["name"]: m for m in json.loads(result.output)["owned"]}
    assert owned["encoder"]["side"] == "g" and owned["encoder"]["feature_dim"] == (4 + 4 + 8 + 8 + 16 + 16) * 16
    assert owned["joint"]["side"] == "d" and "feature_dim" not in owned["joint"]


# ------------------------------------------------------------------------------------------- --representation
@pytest.mark.slow
def test_features_of_the_encoder_are_its_pooled_maps(bigan_run, tmp_path):
    """`ganbench features --representation encoder` gives the encoder's feature maps max-pooled to 4x4, computed
    here directly from the rebuilt module, and not D's."""
    from ganbench.data import load_images
    from ganbench.features import pool_maps

    ckpt = bigan_run / "checkpoints" / "last.pt"
    out = tmp_path / "enc.npy"
    common = ["--dataset", "digits", "--split", "all", "--bn-stats", "running", "--feature-dtype", "float32",
              "--device", "cpu", "--quiet"]
    result = CliRunner().invoke(cli, ["features", str(ckpt), "--representation", "encoder", "--out", str(out),
                                      *common])
    assert result.exit_code == 0, result.output
    got = np.load(out)
    encoder = build_owned_module(load_checkpoint(ckpt), "encoder").eval()
    store = load_images("digits", None, "all", image_size=32, progress=False)
    x = torch.from_numpy(np.array(store.images[:50])).float() / 127.5 - 1
    with torch.no_grad():
        direct = pool_maps(encoder.feature_maps(x.repeat(1, 3, 1, 1))).numpy()
    assert got.shape == (len(store), encoder.feature_dim())
    np.testing.assert_allclose(got[:50], direct, rtol=1e-4, atol=1e-5)
    d_out = tmp_path / "d.npy"
    assert CliRunner().invoke(cli, ["features", str(ckpt), "--out", str(d_out), *common]).exit_code == 0
    assert np.load(d_out).shape == got.shape and not np.allclose(np.load(d_out), got)


@pytest.mark.slow
def test_eval_records_say_which_representation_they_read(bigan_run, tmp_path):
    ckpt = str(bigan_run / "checkpoints" / "last.pt")
    records = tmp_path / "r.jsonl"
    common = ["--bn-stats", "running", "--C-grid", "0.01", "--records", str(records), "--quiet", "--device", "cpu"]
    for extra in (["--checkpoint", ckpt], ["--checkpoint", ckpt, "--representation", "encoder"],
                  ["--random-init", "dcgan32", "--model-arg", "ngf=4", "--model-arg", "ndf=4", "--model-arg", "nz=8",
                   "--representation", "encoder", "--objective", "bigan"]):
        result = CliRunner().invoke(cli, ["eval", "digits", *extra, *common])
        assert result.exit_code == 0, result.output
    d_rec, enc_rec, rand_rec = (json.loads(line) for line in records.read_text().splitlines())
    assert "representation" not in d_rec["features"]  # D's records keep their old shape
    assert enc_rec["features"]["representation"] == "encoder" and enc_rec["model"]["objective"] == "bigan"
    assert "encoder" in enc_rec["label"] and enc_rec["checkpoint"]["sha256"] == d_rec["checkpoint"]["sha256"]
    assert rand_rec["training"]["source"] == "random init" and rand_rec["features"]["representation"] == "encoder"
    assert enc_rec["results"] != d_rec["results"] or enc_rec["svm"] != d_rec["svm"]
    from ganbench.report.tables import _probe_key

    assert _probe_key(d_rec) != _probe_key(enc_rec)  # one table row each


def test_bad_representations_end_in_one_line(bigan_run, tmp_path):
    ns_run = tmp_path / "ns"
    train(tiny(objective="ns", steps=2, checkpoint_every=2), ns_run, progress=False)
    cases = [
        (["--checkpoint", str(ns_run / "checkpoints" / "last.pt"), "--representation", "encoder"],
         "has no representation 'encoder'; it has d"),
        (["--checkpoint", str(bigan_run / "checkpoints" / "last.pt"), "--representation", "joint"],
         "has no representation 'joint'; it has d, encoder"),
        (["--random-init", "dcgan32", "--representation", "encoder"], "needs the objective that builds it"),
        (["--random-init", "dcgan32", "--objective", "bigan"], "give --representation NAME"),
    ]
    for extra, words in cases:
        result = CliRunner().invoke(cli, ["eval", "digits", *extra, "--no-record", "--quiet"])
        assert result.exit_code == 2 and words in result.output, (extra, result.output)
        assert "Traceback" not in result.output


# ---------------------------------------------------------------------------------------------- autoencoders
def test_gaussian_kl_is_the_closed_form_per_dimension_summed():
    from ganbench.objectives.autoencoder import gaussian_kl

    mu = torch.tensor([[0.0, 1.0], [-2.0, 0.5]], dtype=torch.float64)
    logvar = torch.tensor([[0.0, np.log(4.0)], [np.log(0.25), 0.0]], dtype=torch.float64)
    s2 = logvar.exp().numpy()
    # KL(N(m, s^2) || N(0, 1)) = log(1/s) + (s^2 + m^2) / 2 - 1/2, written per dimension
    direct = (np.log(1 / np.sqrt(s2)) + (s2 + mu.numpy() ** 2) / 2 - 0.5).sum(1)
    np.testing.assert_allclose(gaussian_kl(mu, logvar).numpy(), direct, rtol=1e-12)
    assert gaussian_kl(torch.zeros(1, 3), torch.zeros(1, 3)).item() == 0.0


def autoencoder_parts(objective_name: str, **options):
    gen, disc = tiny_networks()
    objective = get_objective(objective_name)(**options)
    owned = objective.own_modules(gen, disc)
    owned["encoder"].module.eval()
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    return objective, gen, disc, owned["encoder"].module, x


def test_autoencoder_losses_against_direct_computations():
    objective, gen, disc, enc, x = autoencoder_parts("autoencoder")
    loss, logs = objective.g_loss(disc, x, None, G=gen)
    recon = gen(enc(x)).detach().double().numpy()
    assert loss.item() == pytest.approx(((recon - x.double().numpy()) ** 2).mean(), rel=1e-5)
    # the denoising one with no noise is the plain one; with noise the encoder sees x + noise
    dae, gen2, disc2, enc2, _ = autoencoder_parts("denoising-autoencoder", noise_std=0.0)
    assert dae.g_loss(disc2, x, None, G=gen2)[0].item() == pytest.approx(loss.item(), rel=1e-6)
    dae, gen3, disc3, enc3, _ = autoencoder_parts("denoising-autoencoder", noise_std=0.5)
    torch.manual_seed(7)
    noisy = dae.g_loss(disc3, x, None, G=gen3)[0].item()
    torch.manual_seed(7)
    xn = x + 0.5 * torch.randn_like(x)
    assert noisy == pytest.approx(((gen3(enc3(xn)) - x) ** 2).mean().item(), rel=1e-5)


def test_vae_loss_is_the_negative_elbo_with_the_reparametrised_sample():
    objective, gen, disc, enc, x = autoencoder_parts("vae", sigma=0.5, beta=2.0)
    enc.train()  # batch statistics: at their initial running statistics the maps of a fresh D are tiny
    with torch.no_grad():
        enc.to_z.weight.mul_(30)  # a freshly initialised head gives mu, log-variance near 0: make the KL count
    torch.manual_seed(3)
    loss, logs = objective.g_loss(disc, x, None, G=gen)
    out = enc(x).detach().double()
    mu, logvar = out[:, :8], out[:, 8:]
    torch.manual_seed(3)
    z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, dtype=torch.float32).double()
    recon = gen(z.float()).detach().double()
    sq = ((recon - x.double()) ** 2).flatten(1).sum(1)
    kl = 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum(1)
    assert loss.item() == pytest.approx((sq / (2 * 0.25) + 2.0 * kl).mean().item(), rel=1e-4)
    assert logs["kl"].item() == pytest.approx(kl.mean().item(), rel=1e-4) and kl.mean().item() > 0.1


def test_an_autoencoder_never_updates_d_and_trains_its_encoder_and_g(tmp_path):
    train(tiny(objective="autoencoder", steps=4, checkpoint_every=2), tmp_path / "r", progress=False)
    first, last = (load_checkpoint(tmp_path / "r" / "checkpoints" / f"step_{s:07d}.pt") for s in (2, 4))
    assert all(torch.equal(first["D"][k], last["D"][k]) for k in first["D"])
    assert not last["opt_D"]["state"]  # D's Adam never stepped
    assert any(not torch.equal(first["G"][k], last["G"][k]) for k in first["G"])
    enc_a, enc_b = first["owned"]["encoder"]["state"], last["owned"]["encoder"]["state"]
    assert any(not torch.equal(enc_a[k], enc_b[k]) for k in enc_a)
    rows = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert all("loss_d" not in r and r["recon_mse"] > 0 for r in rows)
