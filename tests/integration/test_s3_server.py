"""The test S3 server enforces credentials and speaks the S3 protocol, multipart included."""

from __future__ import annotations

import os

import botocore.exceptions
import pytest

from tests.cluster.s3 import S3Endpoint, s3_client

pytestmark = pytest.mark.s3

MIN_PART_BYTES = 5 * 1024 * 1024  # S3's minimum size of every part but the last


@pytest.mark.parametrize(
    ("wrong", "error_code"),
    [
        ({"access_key_id": "not-the-test-key"}, "InvalidAccessKeyId"),
        ({"secret_access_key": "not-the-test-secret"}, "SignatureDoesNotMatch"),
    ],
)
def test_wrong_credentials_are_rejected(
    s3_server: S3Endpoint, wrong: dict[str, str], error_code: str
) -> None:
    intruder = s3_client(s3_server, **wrong)

    with pytest.raises(botocore.exceptions.ClientError) as denied:
        intruder.list_objects_v2(Bucket=s3_server.bucket)

    assert denied.value.response["Error"]["Code"] == error_code


def test_multipart_upload_round_trips(s3_server: S3Endpoint) -> None:
    client = s3_client(s3_server)
    parts = [os.urandom(MIN_PART_BYTES), os.urandom(1024)]
    key = "round-trip/checkpoint.bin"
    upload = client.create_multipart_upload(Bucket=s3_server.bucket, Key=key)
    etags = [
        client.upload_part(
            Bucket=s3_server.bucket,
            Key=key,
            UploadId=upload["UploadId"],
            PartNumber=number,
            Body=body,
        )["ETag"]
        for number, body in enumerate(parts, start=1)
    ]
    client.complete_multipart_upload(
        Bucket=s3_server.bucket,
        Key=key,
        UploadId=upload["UploadId"],
        MultipartUpload={
            "Parts": [{"ETag": etag, "PartNumber": n} for n, etag in enumerate(etags, start=1)]
        },
    )

    stored = client.get_object(Bucket=s3_server.bucket, Key=key)
    assert stored["Body"].read() == b"".join(parts)
    assert stored["ETag"].strip('"').endswith(f"-{len(parts)}")
