"""metalearn.algorithms."""
