"""firelink-fs."""
