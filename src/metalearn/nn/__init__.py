"""metalearn.nn."""
