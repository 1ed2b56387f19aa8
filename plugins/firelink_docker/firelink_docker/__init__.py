"""firelink-docker."""
