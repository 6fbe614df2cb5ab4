"""Copy a directory's files under an S3 prefix (what `aws s3 cp --recursive` does), with the
standard AWS settings (AWS_ENDPOINT_URL for a local S3 API server)."""

import sys
from pathlib import Path
from urllib.parse import urlsplit

import boto3

source, target = Path(sys.argv[1]), urlsplit(sys.argv[2])
s3 = boto3.client("s3")
for path in sorted(source.rglob("*")):
    if path.is_file():
        key = target.path.lstrip("/") + path.relative_to(source).as_posix()
        s3.upload_file(str(path), target.netloc, key)
        print(f"uploaded s3://{target.netloc}/{key}")
