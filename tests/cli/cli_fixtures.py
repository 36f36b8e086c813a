"""Arguments shared by the CLI tests."""

SMALL_SINUSOID_RUN = [
    "--preset",
    "maml-sinusoid",
    "--train.meta_batch_size=4",
    "--train.log_every=2",
    "--eval.episodes=10",
    "--eval.val_episodes=5",
]
"""A sinusoid run small enough for a test: `train` ARGS plus overrides."""
