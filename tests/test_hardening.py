"""Issue 11, reading side: no hang, no raw exception, no silent loss on hostile or damaged input.

Each test names the item of the issue it covers. Accounting, used throughout: in skip mode
alerts read + records reported == records in the sources.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import fastavro
import numpy as np
import pytest

import lsstuk_kit as lk
from lsstuk_kit import AlertFormatError, _container
from lsstuk_kit._container import MAGIC, _read_long, _write_long, index_container
from lsstuk_kit.schema import pack_wire, schema_id

from .conftest import write

SAMPLE = sorted((lk.sample_path() / "alerts").glob("*.avro"))


def n_records(path_or_bytes) -> int:
    data = Path(path_or_bytes).read_bytes() if not isinstance(path_or_bytes, bytes) else path_or_bytes
    return sum(1 for _ in fastavro.reader(io.BytesIO(data)))


def accounted(batch, expected):
    """Alerts read + records reported == records in the sources (whole-source rows excluded)."""
    reported = int(batch.errors["record"].notna().sum())
    return len(batch) + reported == expected


def header(meta_bytes: bytes) -> bytes:
    return MAGIC + meta_bytes + b"\x00" * 16


# ----------------------------------------------------------------- 1: bounded header parsing
HOSTILE_HEADERS = {
    "never-ending varint": MAGIC + b"\x80" * 31,
    "negative key length": MAGIC + _write_long(1) + _write_long(-3) + b"\x00" * 28,
    "negative value length": MAGIC + _write_long(1) + _write_long(1) + b"a" + _write_long(-20) + b"\x00" * 26,
    "huge entry count": MAGIC + _write_long(2**62) + b"\x00" * 27,
    "negative huge block count": MAGIC + _write_long(-(2**62)) + _write_long(5) + b"\x00" * 20,
    "huge value length": MAGIC + _write_long(1) + _write_long(1) + b"a" + _write_long(2**40) + b"\x00" * 20,
}


@pytest.mark.parametrize("name", sorted(HOSTILE_HEADERS))
def test_hostile_header_fails_at_once_in_api(name):
    data = HOSTILE_HEADERS[name]
    assert len(data) <= 48
    with pytest.raises(AlertFormatError) as exc:
        lk.read_alerts(data)
    assert exc.value.file == "<bytes>"
    batch = lk.read_alerts(data, errors="skip")
    assert len(batch) == 0 and len(batch.errors) == 1


def test_hostile_header_fails_at_once_in_cli(tmp_path):
    for k, data in enumerate(HOSTILE_HEADERS.values()):
        (tmp_path / f"h{k}.avro").write_bytes(data)
    res = subprocess.run([sys.executable, "-m", "lsstuk_kit.cli", "summary", str(tmp_path)], capture_output=True,
                         text=True, timeout=120)
    assert "Traceback" not in res.stderr
    assert res.returncode not in (0, 1)  # records were skipped: never 'all fine', never the crash code
    assert f"skipped        {len(HOSTILE_HEADERS)} records" in res.stdout


# ----------------------------------------------------------------- 2: only AlertFormatError
def _container_with_schema(schema_text: str, codec: bytes = b"null", extra=None) -> bytes:
    meta = {b"avro.schema": schema_text.encode(), b"avro.codec": codec, **(extra or {})}
    out = bytearray(MAGIC) + _write_long(len(meta))
    for k, v in meta.items():
        out += _write_long(len(k)) + k + _write_long(len(v)) + v
    return bytes(out + _write_long(0) + b"S" * 16)


@pytest.mark.parametrize("schema_text, match", [
    ('{"type": "record", "name": "a", "fields": 7}', "fields"),
    ('{"type": "record", "name": "a", "fields": ["diaSource"]}', "field"),
    ('[1, 2, 3]', "record"),
    ('{"type": "record", "name": "a", "fields": [{"name": "x", "type": {"type": "array", "items": "null"}}]}',
     "zero bytes"),
    ('{"type": "record", "name": "n", "fields": [{"name": "x", "type": ["null", "n"]}]}', "recursive"),
    ('{"type": "record", "name": "a"' + ', "x": [' * 5000, "JSON"),
])
def test_malformed_schema_is_an_alert_format_error(schema_text, match):
    with pytest.raises(AlertFormatError, match=match):
        lk.read_alerts(_container_with_schema(schema_text))


def test_non_utf8_header_key_and_codec():
    good = json.dumps({"type": "record", "name": "a", "fields": [{"name": "diaSource", "type": "long"}]})
    with pytest.raises(AlertFormatError, match="not UTF-8"):
        lk.read_alerts(_container_with_schema(good, extra={b"\xff\xfe": b"x"}))
    with pytest.raises(AlertFormatError, match="not UTF-8"):
        lk.read_alerts(_container_with_schema(good, codec=b"\xffdeflate"))
    with pytest.raises(AlertFormatError, match="codec"):
        lk.read_alerts(_container_with_schema(good, codec=b"zstandard-ish"))


def test_schema_field_renamed_by_a_bit_flip(tmp_path, sim):
    """A flipped bit in a field name the mapping needs: AlertFormatError naming the field, not KeyError."""
    schema, alerts = sim
    data = write(tmp_path / "a.avro", schema, alerts).read_bytes()
    pos = data.index(b'"midpointMjdTai"')
    flipped = data[:pos + 1] + bytes([data[pos + 1] ^ 0x20]) + data[pos + 2:]  # midpoint -> Midpoint
    try:
        batch = lk.read_alerts(flipped, errors="skip")
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"skip mode raised {type(exc).__name__}: {exc}")
    assert accounted(batch, len(alerts))
    with pytest.raises(AlertFormatError):
        lk.read_alerts(flipped) if len(batch.errors) else (_ for _ in ()).throw(AlertFormatError("read"))


def _without_root_powers(code: str, timeout=120):
    """Run Python code with file permissions enforced (root reads every file unless its powers are dropped)."""
    cmd = [sys.executable, "-c", code]
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv (util-linux): cannot enforce file permissions")
        drop = "-dac_override,-dac_read_search"
        cmd = ["setpriv", "--inh-caps", drop, "--bounding-set", drop, *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def world_tmp():
    d = Path(tempfile.mkdtemp(prefix="lsstuk_test_perm_"))
    d.chmod(0o755)
    yield d
    for p in d.rglob("*"):
        if p.is_dir() and not p.is_symlink():
            p.chmod(0o755)
    shutil.rmtree(d, ignore_errors=True)


def test_unreadable_file_and_folder_are_reported(world_tmp):
    """PermissionError (item 2) and unreadable subfolders (item 4) become error rows, never lost silently."""
    good = world_tmp / "good.avro"
    shutil.copy(SAMPLE[0], good)
    locked = world_tmp / "locked.avro"
    shutil.copy(SAMPLE[1], locked)
    sub = world_tmp / "sub"
    sub.mkdir()
    shutil.copy(SAMPLE[2], sub / "c.avro")
    for p in (good, sub / "c.avro"):
        p.chmod(0o644)
    locked.chmod(0o000)
    sub.chmod(0o000)
    code = (
        "import lsstuk_kit as lk, sys\n"
        f"b = lk.read_alerts({str(world_tmp)!r}, errors='skip')\n"
        "print(len(b)); print(b.errors.to_json(orient='records'))\n"
        "try:\n"
        f"    lk.read_alerts({str(world_tmp)!r})\n"
        "except lk.AlertFormatError as e:\n"
        "    print('RAISED', e.file)\n"
    )
    res = _without_root_powers(code)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert int(lines[0]) == n_records(SAMPLE[0])
    rows = json.loads(lines[1])
    files = {r["file"] for r in rows}
    assert str(locked) in files and str(sub) in files
    assert any("Permission denied" in r["reason"] for r in rows)
    assert lines[2].startswith("RAISED")


def test_iteration_to_avro_and_cutouts_of_a_truncated_source(tmp_path):
    """The source shrank after reading: AlertFormatError from iteration, to_avro and cutouts()."""
    path = tmp_path / "a.avro"
    shutil.copy(SAMPLE[0], path)
    batch = lk.read_alerts(path, cutouts=False)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(AlertFormatError, match="changed since it was read"):
        list(batch)
    with pytest.raises(AlertFormatError, match="changed since it was read"):
        batch.to_avro(tmp_path / "out.avro")
    with pytest.raises(AlertFormatError, match="changed since it was read"):
        batch.cutouts(batch.sources.index[-1])


# ----------------------------------------------------------------- 3: skip mode never aborts a folder
BAD_FILES = {
    "hang.avro": HOSTILE_HEADERS["negative key length"],
    "utf8.avro": None,  # filled below
    "text.avro": b"not an alert at all\n",
    "empty.avro": b"",
    "gzip-junk.avro.gz": gzip.compress(b"junk" * 100),
    "cut.avro.gz": None,
}


def test_skip_mode_reads_every_good_file_of_a_folder(tmp_path):
    good_total = 0
    for f in SAMPLE[:3]:
        shutil.copy(f, tmp_path / f.name)
        good_total += n_records(f)
    schema_json = json.dumps({"type": "record", "name": "a", "fields": [{"name": "diaSource", "type": "long"}]})
    bad = dict(BAD_FILES)
    bad["utf8.avro"] = _container_with_schema(schema_json, extra={b"\xff": b"x"})
    bad["cut.avro.gz"] = gzip.compress(SAMPLE[3].read_bytes())[:5000]
    for name, data in bad.items():
        (tmp_path / name).write_bytes(data)
    batch = lk.read_alerts(tmp_path, errors="skip")
    assert len(batch) == good_total
    assert {Path(f).name for f in batch.errors["file"]} == set(bad)
    res = subprocess.run([sys.executable, "-m", "lsstuk_kit.cli", "summary", str(tmp_path)], capture_output=True,
                         text=True, timeout=120)
    assert "Traceback" not in res.stderr and f"alerts         {good_total}" in res.stdout


# ----------------------------------------------------------------- 4: folders
def test_symlinked_folders_are_followed_once_and_dangling_links_reported(tmp_path):
    night = tmp_path / "nights"
    night.mkdir()
    (night / "night1").symlink_to(lk.sample_path() / "alerts")
    (night / "again").symlink_to(night)  # a loop
    (night / "gone.avro").symlink_to(tmp_path / "nothing.avro")
    batch = lk.read_alerts(night, errors="skip")
    assert len(batch) == len(lk.read_alerts(lk.sample_path() / "alerts")) > 0
    reasons = dict(zip(batch.errors["file"], batch.errors["reason"]))
    assert "dangling symlink" in reasons[str(night / "gone.avro")]
    assert "loop" in reasons[str(night / "again")]
    with pytest.raises(AlertFormatError, match="symlink"):
        lk.read_alerts(night)
    assert len(lk.io.iter_files(night)) == len(SAMPLE)


# ----------------------------------------------------------------- 5: wire messages decode to their length
def test_wire_message_with_trailing_bytes_is_an_error(sim):
    schema, alerts = sim
    msgs = []
    for a in alerts[:5]:
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, fastavro.parse_schema(schema), a)
        msgs.append(pack_wire(buf.getvalue(), schema_id(*lk.schema.latest_schema_version())))
    msgs[2] = msgs[2] + msgs[3][5:]  # a second alert glued after the first
    with pytest.raises(AlertFormatError, match="bytes after its alert") as exc:
        lk.read_alerts(msgs)
    assert exc.value.record == 2
    batch = lk.read_alerts(msgs, errors="skip")
    assert len(batch) == 4 and list(batch.errors["record"]) == [2]
    assert alerts[2]["diaSource"]["diaSourceId"] not in batch.sources.index


# ----------------------------------------------------------------- 6: block counts
def _set_count(data: bytes, block: int, count: int) -> bytes:
    idx = index_container(data)
    s = int(idx.block_start[block])
    _, p = _read_long(data, s)
    return data[:s] + _write_long(count) + data[p:]


@pytest.mark.parametrize("codec", ["null", "deflate", "snappy"])
@pytest.mark.parametrize("delta", [-2, -4, +1, +3])
def test_block_count_must_match_its_bytes(tmp_path, sim, codec, delta):
    schema, alerts = sim
    data = write(tmp_path / "a.avro", schema, alerts, codec=codec, sync_interval=10**9).read_bytes()
    idx = index_container(data)
    assert list(idx.block_count) == [len(alerts)]
    changed = _set_count(data, 0, len(alerts) + delta)
    with pytest.raises(AlertFormatError, match="declares"):
        lk.read_alerts(changed)
    batch = lk.read_alerts(changed, errors="skip")
    assert len(batch) == 0 and accounted(batch, len(alerts))  # every record reported, none invented


def test_block_count_of_zero_and_later_blocks_still_read(tmp_path, sim):
    schema, alerts = sim
    data = write(tmp_path / "a.avro", schema, alerts, sync_interval=1).read_bytes()
    changed = _set_count(data, 3, 0)
    batch = lk.read_alerts(changed, errors="skip")
    assert accounted(batch, len(alerts)) and len(batch) == len(alerts) - 1
    assert list(batch.errors["record"]) == [3]


def test_damaged_sync_marker_costs_only_its_block(tmp_path, sim):
    schema, alerts = sim
    data = bytearray(write(tmp_path / "a.avro", schema, alerts, sync_interval=1).read_bytes())
    idx = index_container(bytes(data))
    data[int(idx.block_end[2]) - 3] ^= 0x01
    batch = lk.read_alerts(bytes(data), errors="skip")
    assert len(batch) == len(alerts) - 1 and list(batch.errors["record"]) == [2]


def test_truncated_file_reports_the_rest_as_unknown(tmp_path, sim):
    schema, alerts = sim
    data = write(tmp_path / "a.avro", schema, alerts, sync_interval=1).read_bytes()
    batch = lk.read_alerts(data[: len(data) * 2 // 3], errors="skip")
    assert len(batch.errors) == 1 and "unknown number of records" in batch.errors["reason"].iloc[0]
    assert batch.errors["record"].iloc[0] == len(batch)


# ----------------------------------------------------------------- 7: stale sources
def test_replaced_source_is_detected_not_misattributed(tmp_path):
    path = tmp_path / "a.avro"
    shutil.copy(SAMPLE[0], path)
    batch = lk.read_alerts(path, cutouts=False)
    first = batch.sources.index[0]
    assert batch.cutouts(first).science is not None
    shutil.copy(SAMPLE[1], path)  # other alerts under the same name
    for call in (lambda: batch.cutouts(first), lambda: list(batch), lambda: batch.to_avro(tmp_path / "o.avro")):
        with pytest.raises(AlertFormatError, match="changed since it was read"):
            call()
    # same size and time restored, other bytes: the sync marker tells
    shutil.copy(SAMPLE[0], path)
    st = path.stat()
    data = bytearray(path.read_bytes())
    idx = index_container(bytes(data))
    data[idx.header_size - 1] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    fresh = lk.read_alerts(SAMPLE[0], cutouts=False)
    fresh._store.refs[0].path = str(path)
    fresh._store.refs[0].stat = (st.st_size, st.st_mtime_ns)
    with pytest.raises(AlertFormatError, match="sync marker"):
        list(fresh)


def test_records_of_a_file_with_a_damaged_block_read_back_exactly(tmp_path, sim):
    """Raw records are found through the verified block index, past a damaged block."""
    schema, alerts = sim
    data = bytearray(write(tmp_path / "a.avro", schema, alerts, sync_interval=1).read_bytes())
    idx = index_container(bytes(data))
    data[int(idx.block_end[1]) - 2] ^= 0x01  # block 1's sync marker
    path = tmp_path / "d.avro"
    path.write_bytes(bytes(data))
    batch = lk.read_alerts(path, errors="skip", cutouts=False)
    raw = list(batch)
    assert [r["diaSource"]["diaSourceId"] for r in raw] == list(batch.sources.index)
    assert len(raw) == len(alerts) - 1
    assert batch.cutouts(batch.sources.index[-1]).difference is not None


# ----------------------------------------------------------------- 8: compression bombs
def _bomb(n_mib=64) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9) as fh:
        fh.write(MAGIC)
        zero = bytes(2**20)
        for _ in range(n_mib):
            fh.write(zero)
    return buf.getvalue()


def test_gzip_bomb_stops_at_the_limit(tmp_path):
    bomb = _bomb()
    assert len(bomb) < 100_000
    path = tmp_path / "bomb.avro.gz"
    path.write_bytes(bomb)
    for source in (path, bomb):
        with pytest.raises(AlertFormatError, match="max_uncompressed_bytes=16,777,216"):
            lk.read_alerts(source, max_uncompressed_bytes=2**24)
    assert not list(Path(tempfile.gettempdir()).glob(f"lsstuk_read_{os.getpid()}_*"))


def test_gzip_magic_checked_before_writing(tmp_path):
    path = tmp_path / "x.avro.gz"
    path.write_bytes(gzip.compress(b"PAR1" + bytes(2**20)))
    with pytest.raises(AlertFormatError, match="does not hold an Avro container"):
        lk.read_alerts(path)


def test_deflate_block_bomb(tmp_path):
    schema = {"type": "record", "name": "a", "fields": [{"name": "diaSource", "type": "bytes"}]}
    good = io.BytesIO()
    fastavro.writer(good, fastavro.parse_schema(schema), [{"diaSource": b"x"}], codec="deflate")
    data = good.getvalue()
    idx = index_container(data)
    big = _container.compress_block(b"\x00" * 2**22, "deflate")
    s = int(idx.block_start[0])
    bomb = data[:s] + _write_long(1) + _write_long(len(big)) + big + idx.sync
    with pytest.raises(AlertFormatError, match="max_uncompressed_bytes"):
        lk.read_alerts(bomb, max_uncompressed_bytes=2**20)


# ----------------------------------------------------------------- 9: duplicates are reported
def test_duplicates_are_listed_in_errors():
    batch = lk.read_alerts([SAMPLE[0], SAMPLE[1], SAMPLE[0]], errors="skip")
    n0 = n_records(SAMPLE[0])
    assert len(batch) == n0 + n_records(SAMPLE[1])
    assert len(batch.errors) == n0 and set(batch.errors["field"]) == {"diaSourceId"}
    assert batch.errors["reason"].str.contains("already read from").all()
    assert accounted(batch, 2 * n0 + n_records(SAMPLE[1]))


# ----------------------------------------------------------------- 10: the small ones
def test_snappy_bad_crc_is_named(tmp_path, sim):
    schema, alerts = sim
    data = bytearray(write(tmp_path / "a.avro", schema, alerts, codec="snappy", sync_interval=1).read_bytes())
    idx = index_container(bytes(data))
    data[int(idx.block_end[4]) - 17] ^= 0x01  # the last byte of block 4's CRC
    with pytest.raises(AlertFormatError, match="CRC") as exc:
        lk.read_alerts(bytes(data))
    assert exc.value.record == 4 and "cramjam" not in str(exc.value)
    batch = lk.read_alerts(bytes(data), errors="skip")
    assert len(batch) == len(alerts) - 1


def test_temporary_folders_of_killed_reads_are_removed():
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = Path(tempfile.gettempdir()) / f"lsstuk_read_{dead}_abc"
    stale.mkdir(exist_ok=True)
    (stale / "part000001.avro").write_bytes(b"x")
    code = "import lsstuk_kit as lk; lk.read_alerts(lk.sample_path() / 'alerts')"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    assert not stale.exists()


# ----------------------------------------------------------------- 11: mapping failures are the records'
def test_a_mapping_failure_is_reported_per_record(tmp_path, sim, monkeypatch):
    """Decoded records that the survey mapping cannot turn into tables are reported, one by one."""
    schema, alerts = sim
    path = write(tmp_path / "a.avro", schema, [dict(a) for a in alerts])
    from lsstuk_kit.surveys import lsst

    def broken(table, version):
        raise KeyError("psfFlux")

    monkeypatch.setattr(lsst, "to_frames", broken)
    batch = lk.read_alerts(path, errors="skip")
    assert len(batch) == 0 and sorted(batch.errors["record"]) == list(range(len(alerts)))
    assert set(batch.errors["field"]) == {"psfFlux"}
    assert batch.errors["reason"].str.contains("does not fit the lsst mapping").all()


def _rss_mib():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux's /proc to read the resident size")
def test_reading_many_bad_files_keeps_memory_bounded(tmp_path):
    """300 error-heavy reads (each salvaging a damaged block): the process does not grow with them."""
    data = bytearray(SAMPLE[0].read_bytes())
    idx = index_container(bytes(data))
    data[int(idx.block_data_start[0]) + 50] ^= 0xFF
    for _ in range(50):
        lk.read_alerts(bytes(data), errors="skip", workers=1)
    before = _rss_mib()
    for _ in range(250):
        batch = lk.read_alerts(bytes(data), errors="skip", workers=1)
    assert len(batch.errors) >= 1
    assert _rss_mib() - before < 40, "memory grew with error-heavy reads"


def test_accounting_on_every_real_file_truncated_at_every_block(real_alerts):
    """Truncation inside each block of the real files: the rest is reported, nothing silently lost.

    A cut exactly at a block boundary leaves a valid, shorter container: Avro keeps no record
    count in its header, so that loss cannot be detected by any reader (the fuzz README says so).
    """
    for path in sorted(real_alerts.glob("*/*.avro")):
        data = path.read_bytes()
        idx = index_container(data)
        first = np.concatenate([idx.first_record(), [idx.n_records]])
        for k in range(min(len(idx.block_start), 8)):
            for cut, expected, open_ended in ((int(idx.block_start[k]) + 7, int(first[k]), True),
                                              (int(idx.block_end[k]), int(first[k + 1]), False)):
                batch = lk.read_alerts(data[:cut], errors="skip")
                assert len(batch) == expected, (path.name, cut)
                if open_ended and cut < len(data):
                    assert len(batch.errors) == 1, (path.name, cut)
                    assert "unknown number of records" in batch.errors["reason"].iloc[0]
                    assert batch.errors["record"].iloc[0] == expected
                else:
                    assert len(batch.errors) == 0


def test_zlib_is_enough_for_deflate_blocks():
    """The block decoder's own deflate round trip (the compress side is used to repair blocks)."""
    data = os.urandom(1000) + bytes(5000)
    idx = _container.ContainerIndex(schema={}, codec="deflate", header_size=0, sync=b"S" * 16)
    comp = _container.compress_block(data, "deflate")
    idx.block_data_start = np.array([0])
    idx.block_end = np.array([len(comp) + 16])
    assert _container.block_data(comp + b"S" * 16, idx, 0, 10**6) == data
    assert zlib.decompress(comp, -15) == data


def test_impossible_block_count_fails_fast(tmp_path, sim):
    """A count of 2**40 records in a few KB: refused at once, never looped over or allocated."""
    schema, alerts = sim
    data = write(tmp_path / "a.avro", schema, alerts, sync_interval=1).read_bytes()
    changed = _set_count(data, 2, 2**40)
    with pytest.raises(AlertFormatError, match="more than they can hold"):
        lk.read_alerts(changed)
    batch = lk.read_alerts(changed, errors="skip")
    assert len(batch) == 2 and len(batch.errors) == 1
    assert "unknown number of records" in batch.errors["reason"].iloc[0]


def test_verify_false_still_checks_framing(tmp_path, sim):
    schema, alerts = sim
    data = bytearray(write(tmp_path / "a.avro", schema, alerts, sync_interval=1).read_bytes())
    idx = index_container(bytes(data))
    data[int(idx.block_end[2]) - 3] ^= 0x01
    batch = lk.read_alerts(bytes(data), errors="skip", verify=False)
    assert len(batch) == len(alerts) - 1 and list(batch.errors["record"]) == [2]
    assert len(lk.read_alerts(SAMPLE[0], verify=False)) == n_records(SAMPLE[0])


def test_cli_summary_reports_unreadable_paths_under_a_folder(tmp_path):
    shutil.copy(SAMPLE[0], tmp_path / "a.avro")
    (tmp_path / "gone.avro").symlink_to(tmp_path / "nowhere.avro")
    res = subprocess.run([sys.executable, "-m", "lsstuk_kit.cli", "summary", str(tmp_path)], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 3 and "dangling symlink" in res.stdout and "Traceback" not in res.stderr


def test_dask_engine_reports_unreadable_paths_too(tmp_path):
    pytest.importorskip("dask")
    for f in SAMPLE[:2]:
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / "gone.avro").symlink_to(tmp_path / "nowhere.avro")
    with pytest.raises(AlertFormatError, match="dangling symlink"):
        lk.read_alerts(tmp_path, engine="dask")
    night = lk.read_alerts(tmp_path, engine="dask", errors="skip", partition_size=1)
    errors = night.errors.compute()
    assert list(errors["file"]) == [str(tmp_path / "gone.avro")]
    assert len(night.sources.compute()) == sum(n_records(f) for f in SAMPLE[:2])


def test_cutouts_that_do_not_decode_raise_alert_format_error(tmp_path):
    """FITS that starts right but is broken, and a gzip bomb in a stamp: AlertFormatError naming the cutout."""
    batch = lk.read_alerts(SAMPLE[0])
    sid = batch.sources.index[3]
    pos = batch._pos[3]
    store = batch._store
    import pyarrow as pa

    for bad in (b"SIMPLE  =                    T" + b"\xff" * 500, gzip.compress(b"SIMPLE" + bytes(2**27))):
        col = store.cutouts["template"].to_pylist()
        col[pos] = bad
        store.cutouts["template"] = pa.array(col, pa.binary())
        with pytest.raises(AlertFormatError) as exc:
            batch.cutouts(sid)
        assert exc.value.field == "cutoutTemplate" and exc.value.record == int(store.rec_ids[pos])


def test_every_verify_mode_finds_a_block_crafted_to_hide_a_record(tmp_path, sim):
    """A block declaring 1 record but holding 2: the compiled decoder checks that a block's
    records fill it exactly, whatever ``verify`` says, and every single-bit change of such a
    count is found."""
    schema, alerts = sim
    data = write(tmp_path / "a.avro", schema, alerts[:2], sync_interval=10**9).read_bytes()
    crafted = _set_count(data, 0, 1)
    for verify in ("auto", True, False):
        with pytest.raises(AlertFormatError, match="declares 1 records but its bytes hold 2"):
            lk.read_alerts(crafted, verify=verify)
        batch = lk.read_alerts(crafted, verify=verify, errors="skip")
        assert len(batch) == 0 and sorted(batch.errors["record"]) == [0, 1]
    one = write(tmp_path / "b.avro", schema, alerts[:1], sync_interval=10**9).read_bytes()
    idx = index_container(one)
    pos = int(idx.block_start[0])
    assert one[pos] == 2  # zig-zag 1
    for bit in range(8):
        flipped = one[:pos] + bytes([one[pos] ^ (1 << bit)]) + one[pos + 1:]
        for verify in ("auto", True):
            batch = lk.read_alerts(flipped, errors="skip", verify=verify)
            assert len(batch.errors) >= 1 and len(batch) == 0, (bit, verify)


def test_verify_must_be_one_of_three():
    with pytest.raises(ValueError, match="verify must be"):
        lk.read_alerts(SAMPLE[0], verify="yes")
