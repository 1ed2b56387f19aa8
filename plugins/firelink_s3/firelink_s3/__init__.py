"""firelink-s3: the S3 bucket watch trigger for firelink."""
