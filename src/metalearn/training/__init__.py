"""metalearn.training."""
