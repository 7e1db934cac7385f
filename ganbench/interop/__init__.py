"""Tools that bring models trained elsewhere into ganbench checkpoints (they sit above models, checkpoint and
registry, and nothing below imports them)."""
