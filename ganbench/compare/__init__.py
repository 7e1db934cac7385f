"""`ganbench compare`: GAN variants side by side on equal terms (same data, same budget, several seeds).

A SPEC names the variants, seeds, one budget, evaluation points, the probe protocol and the sample metrics. Each
(variant, seed) is trained as an ordinary run directory, its checkpoints at the evaluation points are probed and
scored as ordinary records, and the comparison table and curves are made from those records alone. This package only
orchestrates train.loop, evaluate and the metrics; it adds no training or metric code of its own. Fairness follows
Lucic et al. 2018 ("Are GANs Created Equal?"): one budget for all, several seeds, the spread reported.

Modules, each importing only those before it: spec (parse, validate, fingerprint the SPEC; check records against
it), units (plan: each (variant, seed) run with its settings resolved once), report (the table and curves from the
records), run (train, evaluate, record, then the report). The public names of all four are importable from here.
"""

from ganbench.compare.report import (
    WALL_COLUMN,
    check_comparison,
    comparison_table,
    plot_comparison,
    render_comparison,
    stale_comparisons,
    summarize,
    write_comparison,
)
from ganbench.compare.run import (
    collect_samples,
    evaluate_baseline,
    evaluate_unit,
    inception_available,
    portable,
    record_training,
    run_compare,
    train_unit,
)
from ganbench.compare.spec import (
    BASELINE,
    BUDGET_UNITS,
    CURVE_CALIBRATION_IMAGES,
    DEFAULT_REPRESENTATION,
    METRICS,
    OWNED,
    PRESETS,
    VARIANT_PROBE_KEYS,
    CompareSpec,
    cell_fingerprint,
    check_records,
    comparison_records,
    preset_path,
    probe_representation,
    read_spec,
    same_comparison,
    select_slice,
    spec_from_dict,
    spec_json,
    spec_of_folder,
    training_overrides,
)
from ganbench.compare.units import Unit, folder_name, plan

__all__ = [
    "BASELINE", "BUDGET_UNITS", "CURVE_CALIBRATION_IMAGES", "DEFAULT_REPRESENTATION", "METRICS", "OWNED", "PRESETS",
    "VARIANT_PROBE_KEYS", "WALL_COLUMN", "CompareSpec", "Unit", "cell_fingerprint", "check_comparison",
    "check_records", "collect_samples", "comparison_records", "comparison_table", "evaluate_baseline",
    "evaluate_unit", "folder_name", "inception_available", "plan", "plot_comparison", "portable", "preset_path",
    "probe_representation", "read_spec", "record_training", "render_comparison", "run_compare", "same_comparison",
    "select_slice", "spec_from_dict", "spec_json", "spec_of_folder", "stale_comparisons", "summarize",
    "train_unit", "training_overrides", "write_comparison",
]
