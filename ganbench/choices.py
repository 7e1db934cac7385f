"""The one table of option choices and defaults shared by the library and the CLI (as torch-fidelity's
defaults.py): the CLI builds its --help and its checks from here, the library validates against the same names.
Only plain constants: importing this costs nothing (no torch)."""

from __future__ import annotations

# training (TrainConfig's field defaults are the training defaults; see ganbench.config)
SCHEDULES = ("simultaneous", "alternating")
LR_DECAYS = ("constant", "linear")  # linear: from lr at --lr-decay-from to 0 at the run's last step
AMP_MODES = ("off", "bf16", "fp16")
FEATURE_AMP = ("off", "bf16")  # feature passes: float32, or bfloat16 autocast (float16 has too little range)
DEVICES = ("auto", "cpu", "cuda")
DATASETS = ("cifar10", "svhn", "imagenet", "folder", "lsun", "mnist", "digits", "fake")

# discriminator features
BN_STATS = ("train-batches", "running", "batch")  # train-batches: the authors' (Radford et al.'s released code)
BN_STATS_DEFAULT = "train-batches"
FEATURE_DTYPES = ("float16", "float32")
FEATURE_DTYPE_PROBE = "float16"  # what the probes keep in memory: half the bytes, accuracy equal (tests)
FEATURE_DTYPE_EXPORT = "float32"  # `ganbench features`: exact values for the user's own analysis
FEATURE_BATCH = 256

# the L2-SVM probe
SVM_BACKENDS = ("torch", "sklearn")
SVM_BACKEND_DEFAULT = "torch"
CIFAR10_PROTOCOLS = ("full", "400", "both")

# sample quality (Inception)
QUALITY_METRICS = ("fid", "is", "kid", "pr", "dc")
INCEPTION_INPUTS = ("pytorch-fid", "tf1")  # pytorch-fid's resize and scaling, or the original TF code's
INCEPTION_INPUT_DEFAULT = "pytorch-fid"
FID_DIMS = (64, 192, 768, 2048)  # pytorch-fid's InceptionV3 blocks
FID_DIMS_DEFAULT = 2048
QUALITY_BATCH = 50
IS_SPLITS = 10
QUALITY_SAMPLES = 50000

# `compare --check --tolerant`: how far a rerun on another CPU kind may move a committed comparison (measured and
# explained in ganbench/compare/report.py)
ACCURACY_TOLERANCE = 1.0  # points, between the means of a "%" column
QUALITY_TOLERANCE = 0.25  # relative, between the means of a FID, KID or IS column
