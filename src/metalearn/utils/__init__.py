"""Small helpers with no metalearn dependencies: seeding, atomic files, reporting statistics."""

from metalearn.utils.io import atomic_save, atomic_write_text
from metalearn.utils.seeding import get_rng_state, seed_everything, set_rng_state
from metalearn.utils.stats import accuracy, mean_ci95

__all__ = [
    "accuracy",
    "atomic_save",
    "atomic_write_text",
    "get_rng_state",
    "mean_ci95",
    "seed_everything",
    "set_rng_state",
]
