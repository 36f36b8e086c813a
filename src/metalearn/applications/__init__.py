"""Applications on top of the learners: personalization and "none of these" rejection."""

from metalearn.applications.personalize import Personalized, load_support_folder, personalize
from metalearn.applications.rejection import (
    UNKNOWN,
    Rejection,
    auroc,
    calibrate_on_classes,
    calibrate_rejection,
)

__all__ = [
    "Personalized",
    "load_support_folder",
    "personalize",
    "UNKNOWN",
    "Rejection",
    "auroc",
    "calibrate_on_classes",
    "calibrate_rejection",
]
