"""metalearn.cli."""
