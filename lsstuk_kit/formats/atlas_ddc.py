"""ATLAS difference-detection tables (``.ddc``): one plain-text table per exposure.

A ``.ddc`` file (e.g. ``02a58764o0104c.ddc``) starts with ``#`` header lines of
``KEY = value`` (``OBS`` exposure name, ``OBJ`` footprint, ``FILT``, ``MJD``, ``TEXP``,
``MAGZPT``, ``MAG5SIG``, ...), then a ``#`` line naming the columns
(``RA Dec mag dmag x y major minor phi det chi/N Pvr Ptr Pmv Pkn Pno Pbn Pcr Pxt Psc Dup
WPflx dflx``), then one whitespace-separated row per detection. Magnitudes are AB; a
negative ``mag`` marks a negative difference (as in ALeRCE's ATLAS stream, which makes its
``isdiffpos`` and flux sign from it).

:func:`read_ddc` gives the header (numbers parsed) and the detections (columns renamed to
the lower-case names of ATLAS's Avro candidate, :data:`COLUMNS`). Read through
``read_alerts("x.ddc")`` each detection becomes an alert row of survey ``"atlas"``:

=====================  ==========================================================
``diaSourceId``        :func:`~lsstuk_kit.surveys.atlas.detection_id` of the exposure
                       name (``OBS``, else the file name) and the detection's row,
                       counted from 1 among the data rows (as ALeRCE's ``candid``
                       ``<exposure>_<row>`` counts them): stable across reads
``diaObjectId``        missing (None): one exposure cannot associate detections into
                       objects; :func:`lsstuk_kit.convert.from_ddc` does that across
                       exposures
``midpointMjdTai``     the header's ``MJD`` as given (UTC)
``band``               the header's ``FILT``
others                 as for ATLAS Avro alerts (:mod:`lsstuk_kit.surveys.atlas`), with
                       the header's values as columns (``mag5sig`` -> ``limitingMag``)
=====================  ==========================================================

There is no history beyond each detection itself, and no cutouts.

Examples
--------
>>> from lsstuk_kit.formats.atlas_ddc import read_ddc
>>> text = '''# OBS= 02a58764o0104c
... # FILT= o
... # MJD= 58764.5123
... # MAG5SIG= 19.32
... # RA Dec mag dmag x y major minor phi det chi/N Pvr Ptr Pmv Pkn Pno Pbn Pcr Pxt Psc Dup WPflx dflx
... 77.18320 70.47569 18.691 0.163 4968.39 3150.97 2.28 2.04 41.0 0 1.92 586 300 0 0 31 0 0 0 17 0 -710.1 2.9
... '''
>>> header, det = read_ddc(text)
>>> header["MJD"], header["FILT"], len(det), float(det["mag"].iloc[0])
(58764.5123, 'o', 1, 18.691)
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import AlertFormatError
from ..surveys import atlas as _atlas
from . import MAX_TEXT_BYTES, FormatSpec, Frames, Sniff, Source

__all__ = ["read_ddc", "COLUMNS", "HEADER_NAMES", "SPEC"]

#: .ddc column names -> the kit's (ATLAS Avro candidate) names.
COLUMNS = {
    "RA": "ra", "Dec": "dec", "mag": "mag", "dmag": "dmag", "x": "x", "y": "y", "major": "major",
    "minor": "minor", "phi": "phi", "det": "det", "chi/N": "chin", "Pvr": "pvr", "Ptr": "ptr", "Pmv": "pmv",
    "Pkn": "pkn", "Pno": "pno", "Pbn": "pbn", "Pcr": "pcr", "Pxt": "pxt", "Psc": "psc", "Dup": "dup",
    "WPflx": "wpflx", "dflx": "dflx",
}
#: Header keywords whose column names differ from ``keyword.lower()`` (the Avro candidate's names).
HEADER_NAMES = {"RA": "ra_pointing", "DEC": "dec_pointing"}
#: Longest bad value quoted in an error message (characters).
_MAX_TOKEN = 40
_NAN_WORDS = ("nan", "+nan", "-nan")


def _colname(name: str) -> str:
    if name in COLUMNS:
        return COLUMNS[name]
    low = {k.lower(): v for k, v in COLUMNS.items()}
    return low.get(name.lower(), re.sub(r"\W+", "_", name.lower()).strip("_") or "col")


def _value(text: str):
    text = text.strip()
    if " /" in text:  # FITS-style trailing comment
        text = text.split(" /", 1)[0].strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1].strip()
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _split(data: bytes, label: str):
    """Header dict, column names (as in the file), byte offset and line number of the first data line."""
    header, names = {}, None
    pos, line_no = 0, 0
    n = len(data)
    while pos < n:
        end = data.find(b"\n", pos)
        end = n if end < 0 else end
        raw = data[pos:end].strip()
        if raw and not raw.startswith(b"#"):
            break
        line_no += 1
        pos = end + 1
        if not raw:
            continue
        if len(raw) > 10000:
            raise AlertFormatError(f"header line {line_no} is longer than 10000 bytes; not a .ddc table", label)
        text = raw.lstrip(b"#").decode("utf-8", "replace").strip()
        if "=" in text:
            key, val = text.split("=", 1)
            key = key.strip()
            if key and re.fullmatch(r"[A-Za-z][\w/-]*", key):
                header[key] = _value(val)
                continue
        words = text.split()
        if len(words) >= 3 and {"ra", "dec"} <= {w.lower() for w in words}:
            names = words
    if names is None:
        raise AlertFormatError("no column line (a '#' line naming the columns, e.g. '# RA Dec mag dmag ...') "
                               "before the data; not an ATLAS .ddc table", label)
    return header, names, min(pos, n), line_no + 1


def _diagnose(body: bytes, first_line: int, names: list, fail) -> tuple:
    """Slow path for a table the fast parser rejected: name every bad line, keep the good ones."""
    lines = pd.Series(body.decode("utf-8", "replace").split("\n"))
    stripped = lines.str.strip()
    keep = (stripped != "") & ~stripped.str.startswith("#")
    line_no = (np.flatnonzero(keep.to_numpy()) + first_line).astype(np.int64)
    rows = stripped[keep].reset_index(drop=True)
    tok = rows.str.split()
    nf = tok.str.len().to_numpy()
    ncol = len(names)
    wrong = nf != ncol
    problems = []  # (record, line, field, reason)
    for i in np.flatnonzero(wrong):
        problems.append((int(i), int(line_no[i]), None,
                         f"line {line_no[i]}: {nf[i]} fields where the column line names {ncol}"))
    good = np.flatnonzero(~wrong)
    values = pd.DataFrame(tok.iloc[good].tolist(), columns=names) if len(good) else pd.DataFrame(columns=names)
    out = {}
    bad_val = np.zeros(len(good), bool)
    first_bad = np.full(len(good), -1)
    for j, name in enumerate(names):
        s = values[name]
        num = pd.to_numeric(s, errors="coerce")
        bad = (num.isna() & ~s.str.lower().isin(_NAN_WORDS)).to_numpy()
        first_bad[bad & (first_bad < 0)] = j
        bad_val |= bad
        out[name] = num.to_numpy(float)
    for k in np.flatnonzero(bad_val):
        i = good[k]
        col = names[first_bad[k]]
        token = str(values.iloc[k, first_bad[k]])
        if len(token) > _MAX_TOKEN:
            token = token[:_MAX_TOKEN] + "..."
        problems.append((int(i), int(line_no[i]), col, f"line {line_no[i]}, column {col!r}: {token!r} is not a number"))
    problems.sort(key=lambda p: p[0])
    for record, _line, fld, reason in problems:
        fail(reason, record, fld)
    ok = good[~bad_val]
    frame = pd.DataFrame({name: out[name][~bad_val] for name in names})
    return frame, ok.astype(np.int64)


def _parse(data: bytes, label: str, fail) -> tuple:
    """(header, detections with the file's column names, record index of each row)."""
    if data[:2] == b"\x1f\x8b":
        raise AlertFormatError("gzip-compressed data; name the file *.ddc.gz or decompress it", label)
    if b"\x00" in data[:4096]:
        raise AlertFormatError("binary data, not an ATLAS .ddc text table", label)
    header, names, offset, first_line = _split(data, label)
    if len(set(names)) != len(names):
        raise AlertFormatError(f"the column line names a column twice: {' '.join(names)[:200]}", label)
    body = data[offset:]
    frame = None
    if body.strip():
        try:
            frame = pd.read_csv(io.BytesIO(body), sep=r"\s+", header=None, names=names, dtype=np.float64,
                                engine="c", comment="#", skip_blank_lines=True)
            if frame[names[-1]].isna().any():  # a short row, or a real 'nan': let the slow path tell
                frame = None
        except (ValueError, pd.errors.ParserError):
            frame = None
        if frame is None:
            frame, records = _diagnose(body, first_line, names, fail)
        else:
            records = np.arange(len(frame), dtype=np.int64)
    else:
        frame = pd.DataFrame({n: np.zeros(0) for n in names})
        records = np.zeros(0, np.int64)
    return header, frame, records


def _open(path_or_text) -> tuple:
    if isinstance(path_or_text, (bytes, bytearray, memoryview)):
        return bytes(path_or_text), "<bytes>"
    if isinstance(path_or_text, str) and ("\n" in path_or_text or path_or_text.lstrip().startswith("#")):
        return path_or_text.encode(), "<text>"
    path = str(os.fspath(path_or_text))
    try:
        if path.endswith(".gz"):
            import gzip

            with gzip.open(path, "rb") as fh:
                data = fh.read(MAX_TEXT_BYTES + 1)
        else:
            with open(path, "rb") as fh:
                data = fh.read(MAX_TEXT_BYTES + 1)
    except (OSError, EOFError) as exc:
        raise AlertFormatError(f"cannot be read ({getattr(exc, 'strerror', None) or exc})", path) from None
    if len(data) > MAX_TEXT_BYTES:
        raise AlertFormatError(f"larger than {MAX_TEXT_BYTES} bytes; refused", path)
    return data, path


def read_ddc(path_or_text) -> tuple:
    """Read an ATLAS ``.ddc`` table: ``(header, detections)``.

    Parameters
    ----------
    path_or_text : str, os.PathLike or bytes
        A file (``.ddc`` or ``.ddc.gz``), or the table's text or bytes.

    Returns
    -------
    header : dict
        Keyword -> value as in the file (``"MJD"``, ``"FILT"``, ``"MAG5SIG"``, ...), numbers
        parsed to int or float.
    detections : pandas.DataFrame
        One row per detection, columns renamed as in :data:`COLUMNS` (``ra``, ``dec``,
        ``mag``, ``dmag``, ..., ``chin``, ``pvr`` ... ``psc``, ``dup``, ``wpflx``, ``dflx``);
        ``det``, ``pvr`` ... ``dup`` as integers.

    Raises
    ------
    AlertFormatError
        On the first bad line: it names the line number, the column and the value
        (``record`` is the 0-based detection row).

    Examples
    --------
    A gzip-compressed table with two detections (the second a negative difference):

    >>> import gzip, os, tempfile
    >>> from lsstuk_kit.formats.atlas_ddc import read_ddc
    >>> text = '''# OBS= 02a58764o0104c
    ... # FILT= o
    ... # MJD= 58764.5123
    ... # RA Dec mag dmag x y major minor phi det chi/N Pvr Ptr Pmv Pkn Pno Pbn Pcr Pxt Psc Dup WPflx dflx
    ... 77.18320 70.47569 18.691 0.163 4968.39 3150.97 2.28 2.04 41.0 0 1.92 586 300 0 0 31 0 0 0 17 0 -710.1 2.9
    ... 77.20111 70.49002 -17.912 0.081 4001.12 3011.50 2.31 2.10 40.0 5 1.40 12 880 0 0 5 0 0 0 0 0 512.3 3.1
    ... '''
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = os.path.join(folder, "02a58764o0104c.ddc.gz")
    ...     with gzip.open(path, "wt") as fh:
    ...         _ = fh.write(text)
    ...     header, det = read_ddc(path)
    >>> header
    {'OBS': '02a58764o0104c', 'FILT': 'o', 'MJD': 58764.5123}
    >>> det[["ra", "mag", "chin"]].values.tolist()
    [[77.1832, 18.691, 1.92], [77.20111, -17.912, 1.4]]
    >>> str(det["pvr"].dtype), det["pvr"].tolist()
    ('int64', [586, 12])
    >>> read_ddc(text.replace("0.081", "x.y"))
    Traceback (most recent call last):
    ...
    lsstuk_kit.errors.AlertFormatError: file <text>, record 1, ...: line 6, column 'dmag': 'x.y' is not a number
    """
    data, label = _open(path_or_text)

    def fail(reason, record=None, fld=None):
        raise AlertFormatError(reason, label, record, fld)

    header, frame, _ = _parse(data, label, fail)
    det = frame.rename(columns=_colname)
    for c in _atlas.INT_COLUMNS:
        if c in det and len(det) and np.all(np.isfinite(det[c])) and np.all(det[c] == np.round(det[c])):
            det[c] = det[c].astype(np.int64)
    return header, det


# ---------------------------------------------------------------------------------------- format
def _expname(header: dict, label: str) -> str:
    obs = header.get("OBS")
    if isinstance(obs, str) and obs.strip():
        return obs.strip()
    name = Path(label).name
    for suffix in (".gz", ".ddc"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name


def _frames(header: dict, frame: pd.DataFrame, records: np.ndarray, label: str) -> Frames:
    det = frame.rename(columns=_colname)
    if "MJD" not in header or not isinstance(header["MJD"], (int, float)):
        raise AlertFormatError("the header gives no numeric MJD (the exposure's time)", label, None, "MJD")
    for key, val in header.items():
        name = HEADER_NAMES.get(key.upper(), re.sub(r"\W+", "_", key.lower()))
        if name not in det:
            det[name] = val
    expname = _expname(header, label)
    det["obs"] = expname
    rows = records + 1
    if len(rows) and rows.max() >= 10**6:
        raise AlertFormatError("more than 999999 detection rows; row numbers would not fit the ids", label)
    sources = _atlas.map_detections(det)
    sources.insert(0, "diaSourceId", _atlas.detection_id(expname, rows) if len(rows) else np.zeros(0, np.int64))
    sources.insert(1, "diaObjectId", pd.Series([None] * len(sources), index=sources.index, dtype=object))
    sources["det_id"] = rows
    sources["survey"] = "atlas"
    sources["broker"] = None
    ver = header.get("DDCVER")
    sources["schemaVersion"] = "atlas.ddc" + (f".v{str(ver).replace('.', '_')}" if ver is not None else "")
    history = sources[["diaSourceId", "diaObjectId", "ra", "dec", "midpointMjdTai", "band", "psfFlux",
                       "psfFluxErr", "mag", "magErr", "snr", "limitingMag", "reliability",
                       "reliabilitySource"]].copy()
    history["kind"] = "detection"
    history["_alert"] = np.arange(len(sources))
    objects = pd.DataFrame({"diaObjectId": pd.Series([], dtype=object), "_alert": pd.Series([], dtype=np.int64)})
    return Frames(sources=sources.reset_index(drop=True), history=history.reset_index(drop=True), objects=objects,
                  cutouts={}, records=np.asarray(records, np.int64), required=("ra", "dec", "midpointMjdTai"))


def read(source: Source) -> list:
    """``FormatSpec.read``: one .ddc source -> one :class:`Frames` (bad lines reported through ``source.fail``)."""
    data = source.read_bytes()

    def fail(reason, record=None, fld=None):
        source.fail(reason, record, fld)

    header, frame, records = _parse(data, source.label, fail)
    return [_frames(header, frame, records, source.label)]


def identify(sniff: Sniff) -> bool:
    """A ``.ddc``/``.ddc.gz`` name, or text opening with ``#`` lines and naming the ATLAS ML columns."""
    if sniff.suffix in (".ddc", ".ddc.gz"):
        return True
    if sniff.obj is not None or not sniff.head:
        return False
    text = sniff.text_head()
    return text.startswith("#") and all(re.search(rf"\b{w}\b", text) for w in ("Pvr", "Ptr", "Pno", "Dec"))


SPEC = FormatSpec(
    name="atlas-ddc",
    description="ATLAS difference-detection table (.ddc): one exposure's detections, one alert each",
    identify=identify,
    read=read,
    suffixes=(".ddc", ".ddc.gz"),
    survey="atlas",
    broker=None,
    priority=0,
    example='read_alerts("02a58764o0104c.ddc")',
)
