"""Read alert batches (files, folders, globs, bytes, Kafka wire messages) into an AlertBatch.

How it works: every source becomes one or more Avro containers; their blocks
are indexed without decoding (so a truncated tail is found at once and a large
file can be cut into parts), then the kit's compiled columnar decoder
(:mod:`lsstuk_kit._decode`) decodes the parts straight to column buffers, one
thread per core, storing only the fields the caller wants. fastavro is used only
to name what is wrong with a block the decoder refuses and to hand back raw
alert dicts.

This is the public module; each stage lives in its own module, imported only downward:
:mod:`lsstuk_kit._sources` (find sources), :mod:`lsstuk_kit._reader` (frame containers into
parts, decode them with :mod:`lsstuk_kit._decode`), :mod:`lsstuk_kit._assemble` (validate and
assemble the AlertBatch). The
names other modules and tests use from here are re-exported.
"""

from __future__ import annotations

import gzip
import os
import warnings

import fastavro

from ._assemble import _assemble, _harmonise, _validate  # noqa: F401 - re-exported
from ._reader import (  # noqa: F401 - re-exported
    _PART_BYTES,
    _frames_result,
    _Part,
    _Reader,
    _run,
    _sweep_stale_tmp,
    _Unit,
)
from ._sources import (  # noqa: F401 - re-exported
    _AVRO_SUFFIXES,
    _GZIP_MAGIC,
    _IDENTIFIED,
    _SURVEYS,
    MAX_UNCOMPRESSED_BYTES,
    SourceRef,
    _expand,
    _find_files,
    _first_json,
    _gunzip_file,
    _gunzip_head,
    _gunzip_stream,
    _identify,
    _looks_json,
    _sniff,
    _suffix_of,
    _suffixes,
)

__all__ = ["read_alerts", "write_alerts", "iter_files", "DEFAULT_COLUMNS",
           "MAX_UNCOMPRESSED_BYTES"]

#: A typical projection: ids, position, time, band, flux, flux error, reliability.
DEFAULT_COLUMNS = (
    "diaSourceId", "diaObjectId", "ra", "dec", "midpointMjdTai", "band",
    "psfFlux", "psfFluxErr", "reliability",
)


def iter_files(path) -> list[str]:
    """List the Avro files a path names: a file, a folder (recursive, sorted, symlinks followed) or a glob.

    Paths that cannot be read are left out here; :func:`read_alerts` reports them.

    Examples
    --------
    >>> from lsstuk_kit.io import iter_files
    >>> from lsstuk_kit import sample_path
    >>> len(iter_files(sample_path())) > 0
    True
    """
    return _find_files(path)[0]


# --------------------------------------------------------------------------- API
def read_alerts(source, *, format=None, columns=None, errors="raise", cutouts=True, progress=None, workers=None,  # noqa: A002 - astropy's name
                engine="pandas", partition_size="64MB", max_uncompressed_bytes=MAX_UNCOMPRESSED_BYTES, verify="auto",
                **format_options):
    """Read alerts (Rubin, ZTF, ATLAS; raw or from a broker) into an :class:`~lsstuk_kit.AlertBatch`.

    Parameters
    ----------
    source : str, path, bytes, JSON, or list
        An Avro container file (one or many alerts), a ``.avro.gz`` file, a file
        of another format the kit knows (Fink Parquet, Lasair / ALeRCE / ANTARES
        JSON, ATLAS ``.ddc``: :func:`~lsstuk_kit.formats.list_formats`), a folder
        (searched recursively, in sorted order, for the files those formats
        claim; other files are left alone), a glob, raw bytes, JSON text, a dict,
        a list of any of these, a list of JSON messages (bytes or dicts, as a
        Kafka consumer of a broker's stream hands them over), or a list of Kafka
        messages in the Confluent wire format (magic byte 0, 4-byte big-endian
        schema id ``major * 100 + minor``, schemaless Avro body), decoded with the
        official schema of that version from ``lsst-alert-packet``.
    format : str, optional
        The input's format, e.g. ``"fink-parquet"`` or ``"lasair-json"``
        (:func:`~lsstuk_kit.formats.list_formats` lists them). ``None`` (default)
        identifies each source: Avro by its writer schema, others by their
        content. An input no format claims raises
        :class:`~lsstuk_kit.formats.UnknownFormatError` listing the formats.
    columns : list of str, optional
        Column projection for ``sources`` and ``history`` (Rubin names, e.g.
        :data:`DEFAULT_COLUMNS`). The ids, position, time, band and flux are always
        kept. ``None`` (default) reads every field.
    errors : {"raise", "skip"}
        ``"raise"`` stops at the first bad record with an
        :class:`~lsstuk_kit.AlertFormatError` naming the file, record and field;
        ``"skip"`` loads the good records and lists every skipped one in
        ``batch.errors`` (a bad file, folder or message never costs the others):
        alerts read + records reported = records in the sources. A row with no
        record stands for a whole source (an unreadable file, folder or dangling
        symlink); a row whose reason says "an unknown number of records" stands
        for every record from that index on (the file's framing was lost there).
        Alerts that appear more than once (same ``diaSourceId``) are kept once
        and the repeats listed in ``batch.errors`` in either mode.
    cutouts : bool
        Keep the cutout bytes (decoded only when ``batch.cutouts(id)`` asks). With
        ``False`` they are not read, and ``cutouts()`` reads them back from the
        source on demand (raising :class:`~lsstuk_kit.AlertFormatError` if the
        file changed since it was read).
    progress : bool, optional
        Show a progress bar; by default shown when there are many parts.
    workers : int, optional
        Decoding threads (default: one per core, at most 4).
    engine : {"pandas", "dask"}
        ``"pandas"`` reads everything now into an AlertBatch. ``"dask"`` returns a
        :class:`~lsstuk_kit.scale.DaskAlerts` over files, folders or globs larger
        than memory: Dask DataFrames read partition by partition when computed
        (needs ``pip install "lsstuk_kit[dask]"``).
    partition_size : int or str
        With ``engine="dask"``: bytes of Avro per partition (files are grouped up to it).
    max_uncompressed_bytes : int
        Refuse a gzip source or an Avro block that expands past this many bytes
        (default 1 GiB, :data:`MAX_UNCOMPRESSED_BYTES`): a small file cannot make
        the reader fill the disk or the memory. The gzip stream is checked for
        the Avro magic before anything is written.
    verify : {"auto", True, False}
        Kept for compatibility; every value now gives the same, strictest check.
        The compiled decoder checks every block as it decodes it: every read
        within the block's bytes, the declared record count against the bytes
        (a block holding more or fewer records than it declares, or junk after
        them, is reported record by record), and the codec data (deflate,
        snappy CRC). Checking costs nothing extra, so there is nothing left to
        trade for speed.

    **format_options
        Passed to the format's reader (see its module in :mod:`lsstuk_kit.formats`).

    Returns
    -------
    AlertBatch or DaskAlerts
        ``sources`` has ``survey`` and ``broker`` (None for a survey's own
        stream) per row; brokers' additions (classifications, cross-matches,
        features) are further columns.

    Raises
    ------
    AlertFormatError
        On unreadable input when ``errors="raise"``: the only exception bad bytes
        can cause. It names the file (or message), the record and the field.
    FileNotFoundError
        If a path names nothing.

    Examples
    --------
    >>> from lsstuk_kit import read_alerts, sample_path
    >>> batch = read_alerts(sample_path())
    >>> bool(batch.sources[["ra", "dec", "band", "psfFlux"]].notna().all().all())
    True
    >>> small = read_alerts(sample_path(), columns=["ra", "dec", "psfFlux"])
    >>> "psfFlux" in small.history.columns
    True
    """
    if errors not in ("raise", "skip"):
        raise ValueError(f"errors must be 'raise' or 'skip', not {errors!r}")
    if verify not in ("auto", True, False):
        raise ValueError(f"verify must be 'auto', True or False, not {verify!r}")
    from . import formats

    spec = formats.get(format) if format is not None else None
    if engine == "dask":
        from .scale import read_alerts_dask

        if spec is not None and spec.read is not None:
            raise ValueError(f"engine='dask' reads Avro alerts; read {format!r} with engine='pandas'")
        return read_alerts_dask(source, partition_size=partition_size, columns=columns, errors=errors,
                                cutouts=cutouts, max_uncompressed_bytes=max_uncompressed_bytes, verify=verify)
    if engine != "pandas":
        raise ValueError(f"engine must be 'pandas' or 'dask', not {engine!r}")

    refs, problems = _expand(source, max_uncompressed_bytes)
    if not refs and not problems and isinstance(source, (str, os.PathLike)):  # a folder or glob of nothing
        warnings.warn(f"no alerts found in {source}: no alert files there", UserWarning, stacklevel=2)
    reader = _Reader(columns, cutouts, errors, progress, workers, max_uncompressed_bytes, verify)
    reader.format = format
    reader.options = format_options
    if spec is not None and spec.read is None and spec.name != "kafka-wire":
        from .formats.avro import AVRO_SURVEYS

        reader.expect_survey = AVRO_SURVEYS[spec.name]
    try:
        for path, reason in problems:
            reader.fail(reason, path)
        avro, tables = [], []
        for ref in refs:
            k = len(reader.refs)
            reader.refs.append(ref)
            route = reader.route(ref, spec)
            if route is None:
                continue
            if route[0] == "avro":
                avro.append((k, ref))
            else:
                ref.fmt = route[1].name
                if ref.kind == "file":
                    st = os.stat(ref.path)
                    ref.stat = (st.st_size, st.st_mtime_ns)
                tables.append((k, ref, route[1]))
        units = reader.make_units([r for _, r in avro], keys=[k for k, _ in avro])
        parts = reader.make_parts(units)
        show = progress if progress is not None else len(parts) >= 50
        results = [r for got in _run(reader, parts, show) for r in got if r is not None]
        results = reader.renumber(results)
        for k, ref, tspec in tables:
            results.extend(reader.read_table(k, ref, tspec))
        if tables and avro:
            results.sort(key=lambda r: int(r[4][0]) if len(r[4]) else 0)
        batch = _assemble(results, reader, columns)
    finally:
        reader.close()
    return batch


def write_alerts(alerts, path, schema, *, codec="null"):
    """Write alert dicts to an Avro container file.

    Parameters
    ----------
    alerts : iterable of dict
        Alert records.
    path : str or path
        Output file; a name ending ``.gz`` is gzip-compressed. An fsspec URL
        (``s3://bucket/night/out.avro``) writes to object storage.
    schema : dict
        Writer schema (e.g. :func:`lsstuk_kit.schema.load_rubin_schema`).
    codec : str
        Avro block codec (``"null"`` or ``"deflate"``).

    Returns
    -------
    int
        Number of alerts written.

    Examples
    --------
    >>> import tempfile
    >>> from lsstuk_kit import read_alerts
    >>> from lsstuk_kit.io import write_alerts
    >>> from lsstuk_kit.simulate import simulate_packets
    >>> schema, alerts = simulate_packets(4, n_history=2, seed=1, cutouts=False)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     n = write_alerts(alerts, f"{folder}/night.avro.gz", schema, codec="deflate")
    ...     batch = read_alerts(f"{folder}/night.avro.gz")
    >>> n, len(batch)
    (4, 4)
    >>> batch.sources.index.tolist() == [a["diaSourceId"] for a in alerts]
    True
    """
    from . import _remote

    parsed = fastavro.parse_schema(schema)
    alerts = list(alerts)
    path = str(path)
    if _remote.is_url(path):
        with _remote.open_output(path) as fh:
            fastavro.writer(fh, parsed, alerts, codec=codec)
        return len(alerts)
    path = _remote.local_path(path)
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "wb") as fh:
        fastavro.writer(fh, parsed, alerts, codec=codec)
    return len(alerts)
