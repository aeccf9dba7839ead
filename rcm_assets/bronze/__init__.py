"""Bronze layer: raw extracts from sources, appended with lineage columns."""
