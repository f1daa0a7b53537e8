"""The database layer: typed mappings, repositories and the unit of work."""
