"""Nights in object storage: read_alerts and to_avro on s3:// URLs, against a local S3 server.

The server is moto's (an S3-compatible server in a thread on 127.0.0.1); credentials come from
the usual environment variables, as they would for AWS or any S3-compatible store, and must
never appear in a message.
"""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

import lsstuk_kit as lk
from lsstuk_kit import AlertFormatError
from lsstuk_kit import filters as F
from lsstuk_kit.io import iter_files

pytest.importorskip("s3fs", reason='s3fs absent: pip install "lsstuk_kit[cloud]"')
moto_server = pytest.importorskip("moto.server", reason="moto's S3 server absent (a test dependency)")
boto3 = pytest.importorskip("boto3")

SECRET = "lsstuk-test-secret-do-not-print"  # noqa: S105 - a fake credential for the local server


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A local S3 server with a bucket holding the sample night (alerts/, plus a README)."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ACCESS_KEY_ID": "lsstuk-test-key", "AWS_SECRET_ACCESS_KEY": SECRET,
           "AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_DEFAULT_REGION": "us-east-1"}
    mp = pytest.MonkeyPatch()
    for k, v in env.items():
        mp.setenv(k, v)
    client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"])
    client.create_bucket(Bucket="night")
    for f in iter_files(lk.sample_path()):
        client.upload_file(f, "night", f"2026-02-28/alerts/{f.rsplit('/', 1)[-1]}")
    client.put_object(Bucket="night", Key="2026-02-28/alerts/README.txt", Body=b"not alerts")
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    yield client
    mp.undo()
    server.stop()


def sorted_rows(df):
    return df.sort_index(kind="stable")


def test_read_a_night_from_s3_equals_the_local_read(s3, batch):
    night = lk.read_alerts("s3://night/2026-02-28/alerts/")
    pd.testing.assert_frame_equal(night.sources, batch.sources)
    pd.testing.assert_frame_equal(night.history, batch.history)
    pd.testing.assert_frame_equal(night.objects, batch.objects)
    sid = batch.sources.index[3]
    assert (night.cutouts(sid).difference == batch.cutouts(sid).difference).all()
    files = iter_files("s3://night/2026-02-28/")  # recursive listing, sorted, alerts only
    assert [f.rsplit("/", 1)[-1] for f in files] == [f.rsplit("/", 1)[-1] for f in iter_files(lk.sample_path())]
    assert all(f.startswith("s3://night/2026-02-28/alerts/visit_") for f in files)
    one = lk.read_alerts(files[0])  # a single object
    assert 0 < len(one) < len(batch)
    a, b = (f.rsplit("/", 1)[-1][:-len(".avro")] for f in files[:2])  # e.g. visit_..080, visit_..081
    assert a[:-1] == b[:-1]
    globbed = lk.read_alerts(f"s3://night/2026-02-28/alerts/visit_*{a[-2]}[{a[-1]}{b[-1]}].avro")
    assert len(globbed) == sum(len(lk.read_alerts(f)) for f in files[:2]) > 0


def test_dask_engine_partitions_s3_like_a_folder(s3, batch, tmp_path):
    night = lk.read_alerts("s3://night/2026-02-28/alerts/", engine="dask", partition_size="1MB")
    local = lk.read_alerts(lk.sample_path(), engine="dask", partition_size="1MB")
    assert night.npartitions == local.npartitions > 1
    assert [len(g) for g in night.files] == [len(g) for g in local.files]
    keep = night.filter(F.observable(night, max_mag=22), F.quality(night))
    ref = batch.filter(F.observable(batch, max_mag=22), F.quality(batch))
    pd.testing.assert_frame_equal(sorted_rows(keep.sources.compute()), sorted_rows(ref.sources))
    # written back to the bucket by the partitions, then read again
    n = keep.to_avro("s3://night/survivors/")
    assert n == len(ref) > 0
    back = lk.read_alerts("s3://night/survivors/")
    pd.testing.assert_frame_equal(sorted_rows(back.sources), sorted_rows(ref.sources))
    # and one batch to one object
    assert ref.to_avro("s3://night/one/survivors.avro") == len(ref)
    assert len(lk.read_alerts("s3://night/one/survivors.avro")) == len(ref)


def test_bad_objects_are_named_and_skip_mode_keeps_the_rest(s3, batch, tmp_path):
    files = iter_files(lk.sample_path())
    data = open(files[0], "rb").read()
    s3.put_object(Bucket="night", Key="broken/a_truncated.avro", Body=data[: len(data) // 2])
    shutil.copy(files[1], tmp_path / "b.avro")
    s3.upload_file(str(tmp_path / "b.avro"), "night", "broken/b_good.avro")
    with pytest.raises(AlertFormatError, match="a_truncated.avro"):
        lk.read_alerts("s3://night/broken/")
    got = lk.read_alerts("s3://night/broken/", errors="skip")
    good = lk.read_alerts(files[1])
    assert set(good.sources.index) <= set(got.sources.index)  # nothing good lost
    assert len(got.errors) > 0 and got.errors["file"].str.contains("a_truncated.avro").all()


def test_missing_objects_are_clear_and_credentials_never_printed(s3):
    with pytest.raises(FileNotFoundError, match="s3://night/nothing-here"):
        lk.read_alerts("s3://night/nothing-here/")
    with pytest.raises(FileNotFoundError, match="no-such-bucket"):
        lk.read_alerts("s3://no-such-bucket/x/")
    # a URL with credentials in it (not how S3 takes them): refused, and the message never shows them
    with pytest.raises(OSError) as info:
        lk.read_alerts(f"s3://key:{SECRET}@night/nothing-here/")
    assert SECRET not in str(info.value)
    for bad in ("s3://no-such-bucket/x/", "s3://night/nothing-here/"):
        with pytest.raises(OSError) as info:
            lk.read_alerts(bad)
        assert SECRET not in str(info.value) and "lsstuk-test-key" not in str(info.value)
