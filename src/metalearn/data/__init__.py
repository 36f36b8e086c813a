"""metalearn.data."""
