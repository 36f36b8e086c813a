"""metalearn.rl."""
