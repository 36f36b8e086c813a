"""metalearn.applications."""
