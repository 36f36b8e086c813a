"""Applications on top of the learners: personalization (adapt to one user's examples)."""

from metalearn.applications.personalize import Personalized, load_support_folder, personalize

__all__ = ["Personalized", "load_support_folder", "personalize"]
