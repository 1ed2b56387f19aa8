"""firelink-s3."""
