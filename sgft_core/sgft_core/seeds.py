"""Seeds of evaluation episodes, in one place: episode i of an evaluation is reset with seed `base + i`.

Both bases are far from the training episodes' seeds, and from each other: a checkpoint selected on one set of
scenes is reported on another.
"""

# Fine-tuning evaluations (the benchmark, the ROS session, the oracle) and pretraining's periodic evaluations, which
# select the checkpoint: the same scenes at every evaluation point.
EVAL_SEED = 2_000_000
# Held-out scenes: pretraining's final evaluation and `python -m sgft_sim.evaluate`.
HELD_OUT_EVAL_SEED = 1_000_000
