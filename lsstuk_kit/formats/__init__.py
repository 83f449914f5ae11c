"""Alert formats the reader knows: one module per format, registered here.

Each format is a :class:`FormatSpec`: a name, a cheap ``identify`` predicate
over a :class:`Sniff` (the source's label, suffix, first bytes, or the parsed
object for in-memory JSON), and a ``read`` function that turns one source
into :class:`Frames` (the same tables an :class:`~lsstuk_kit.AlertBatch` is
built from). Avro formats (Rubin, ZTF, ATLAS, Kafka wire messages) have no
``read``: the reader's Avro path decodes them, and the spec is there so that
``format=`` can name them and :func:`list_formats` can list them.

How astropy's unified I/O registry and lightkurve's readers do it: adding a
format is one module with a ``SPEC`` plus one line in :data:`_MODULES`.

Examples
--------
>>> from lsstuk_kit.formats import list_formats
>>> "fink-parquet" in list_formats()["name"].tolist()
True
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import AlertFormatError

__all__ = ["FormatSpec", "Sniff", "Source", "Frames", "register", "unregister", "get", "list_formats", "identify",
           "UnknownFormatError", "MAX_TEXT_BYTES"]

#: Largest JSON / text source read into memory at once (bytes).
MAX_TEXT_BYTES = 2**30


class UnknownFormatError(AlertFormatError):
    """No registered format claims the input (the message lists the formats the kit knows).

    Examples
    --------
    >>> from lsstuk_kit import AlertFormatError
    >>> from lsstuk_kit.formats import Sniff, UnknownFormatError, identify
    >>> try:
    ...     identify(Sniff(label="notes.txt", suffix=".txt", head=b"hello"))
    ... except UnknownFormatError as exc:
    ...     err = exc
    >>> isinstance(err, AlertFormatError), err.file
    (True, 'notes.txt')
    >>> print(err.reason)
    no format the kit knows claims this input; give format= one of: alerce-json, ..., ztf-avro
    """


@dataclass
class Sniff:
    """What identification looks at: cheap, already in memory, never the whole file.

    Examples
    --------
    >>> from lsstuk_kit.formats import Sniff, identify
    >>> head = b'\\xef\\xbb\\xbf  {"oid": "ZTF20aaelulu", "detections": []}'  # a BOM, then JSON
    >>> sniff = Sniff(label="lc.json", suffix=".json", head=head)
    >>> sniff.text_head()
    '{"oid": "ZTF20aaelulu", "detections": []}'
    >>> identify(sniff).name
    'alerce-json'
    """

    label: str
    suffix: str = ""  # lower case, e.g. ".parquet", ".json", ".ddc", ".avro.gz"
    head: bytes = b""  # the first 4096 bytes (decompressed if gzip); b"" for Python objects
    obj: object = None  # the parsed JSON object (dict or list) for in-memory or JSON sources
    writer_schema: dict | None = None  # Avro container's writer schema
    path: str | None = None  # the file, for identifiers that must look further (e.g. a Parquet footer)
    data: bytes | None = None  # the whole input, for in-memory bytes sources
    #: True when the file was found by a folder search: claim it only if it really is your format
    #: (a folder of alerts may also hold other Parquet/JSON files, which are then left alone)
    from_folder: bool = False

    def text_head(self) -> str:
        """The first bytes as text (BOM and leading whitespace removed)."""
        return self.head.lstrip(b"\xef\xbb\xbf").decode("utf-8", "replace").lstrip()


@dataclass
class Source:
    """One source handed to a format's ``read``: a file, bytes, or parsed JSON.

    ``fail(reason, record=None, field=None)`` reports a problem with this source:
    it raises :class:`AlertFormatError` in ``errors="raise"`` mode, records a
    skipped row in ``errors="skip"`` mode. A reader must call it once for every
    record (or message, or row) it does not turn into an alert, so that
    alerts read + records reported = records in the source.

    Examples
    --------
    >>> from lsstuk_kit.formats import Source
    >>> Source(label="<bytes>", data=b'{"oid": "ZTF20aaelulu", "detections": []}').json()
    {'oid': 'ZTF20aaelulu', 'detections': []}
    >>> Source(label="<bytes>", data=b"not json").json()
    Traceback (most recent call last):
    ...
    lsstuk_kit.errors.AlertFormatError: file <bytes>: not valid JSON (JSONDecodeError: Expecting value: ...)
    """

    label: str
    path: str | None = None
    data: bytes | None = None
    obj: object = None
    fail: Callable = None
    columns: list | None = None  # projection asked for (Rubin names), or None for all
    cutouts: bool = True  # keep cutout bytes
    options: dict = field(default_factory=dict)  # format-specific keyword arguments from read_alerts

    def read_bytes(self, limit: int = MAX_TEXT_BYTES) -> bytes:
        """The source's bytes (files are read once, at most ``limit`` bytes, gzip undone)."""
        if self.data is None:
            from .._sources import _gunzip_file

            if self.path.endswith(".gz"):
                self.data = _gunzip_file(self.path, limit, self.label, magic=None)
            else:
                try:
                    with open(self.path, "rb") as fh:
                        self.data = fh.read(limit + 1)
                except OSError as exc:
                    raise AlertFormatError(f"cannot be read ({exc.strerror or exc})", self.label) from None
        if len(self.data) > limit:
            raise AlertFormatError(f"larger than {limit} bytes; refused", self.label)
        return self.data

    def json(self):
        """The parsed JSON document (``obj`` if given, else the bytes parsed); AlertFormatError if not JSON."""
        if self.obj is not None:
            return self.obj
        raw = self.read_bytes()
        try:
            self.obj = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise AlertFormatError(f"not valid JSON ({type(exc).__name__}: {exc})", self.label) from None
        return self.obj


@dataclass
class Frames:
    """What a format's ``read`` returns for one source (or one chunk of it).

    Parameters
    ----------
    sources : pandas.DataFrame
        One row per alert, Rubin column names (``diaSourceId``, ``diaObjectId``,
        ``ra``, ``dec``, ``midpointMjdTai``, ``band``, ``psfFlux``, ``psfFluxErr``, ``mag``,
        ``magErr``, ``snr``, ``reliability`` ... as far as the format carries them), plus
        ``survey`` ("lsst", "ztf", "atlas"), ``broker`` ("lasair", "fink", "alerce",
        "antares" or None for a survey's own stream) and ``schemaVersion``; broker
        additions as further columns, prefixed by the broker's name where they would
        clash (e.g. ``fink_clf_...``, ``lasair_...``).
    history : pandas.DataFrame or pyarrow.Table
        Long light-curve table: ``diaObjectId``, ``kind``
        ("detection", "forced", "upper_limit"), ``midpointMjdTai``, ``band``,
        ``psfFlux``, ``psfFluxErr``, ``mag``, ``magErr`` ... and ``_alert``, the row in
        ``sources`` the history row came with. The alert's own detection is in it too.
    objects : pandas.DataFrame
        One row per alert (its object summary as carried), with ``diaObjectId``
        and ``_alert``; may be empty with only those two columns.
    cutouts : dict
        Name ("science", "template", "difference") -> sequence of bytes or
        None aligned with ``sources`` (FITS, possibly gzip-compressed, as the format has them).
    records : numpy.ndarray
        Index of each ``sources`` row in the source (record, message, row).
    required : tuple of str, default ("diaSourceId", "ra", "dec", "midpointMjdTai")
        Columns that must be non-null for a row to be an alert.

    Examples
    --------
    A format's ``read`` returns a list of them (here ALeRCE's, for a one-detection light curve):

    >>> from lsstuk_kit.formats import Frames, Source, get
    >>> lc = {"oid": "ZTF20aaelulu", "detections": [
    ...     {"candid": "1101542291015015004", "mjd": 58855.54, "fid": 2, "magpsf": 17.28,
    ...      "sigmapsf": 0.056, "isdiffpos": 1, "ra": 185.7288549, "dec": 15.8236255, "rb": 0.83}]}
    >>> frames = get("alerce-json").read(Source(label="lc.json", obj=lc))
    >>> f = frames[0]
    >>> isinstance(f, Frames), len(f.sources), f.records.tolist(), f.cutouts
    (True, 1, [0], {})
    >>> f.required
    ('diaSourceId', 'ra', 'dec', 'midpointMjdTai')
    >>> f.history[["kind", "_alert"]].values.tolist()
    [['detection', 0]]
    """

    sources: pd.DataFrame
    history: object
    objects: pd.DataFrame
    cutouts: dict
    records: np.ndarray
    required: tuple = ("diaSourceId", "ra", "dec", "midpointMjdTai")


@dataclass(frozen=True)
class FormatSpec:
    """A format the reader knows.

    Parameters
    ----------
    name : str
        What ``format=`` takes, e.g. ``"fink-parquet"``.
    description : str
        One line for :func:`list_formats`.
    identify : callable
        ``Sniff -> bool``; must be cheap and must not raise.
    read : callable or None
        ``(Source) -> list[Frames]``; ``None`` for the Avro formats the reader decodes itself.
    suffixes : tuple of str
        File name endings a folder search picks up for this format.
    survey, broker : str
        What the rows are marked with (``broker`` None for a survey's own stream).
    priority : int
        Breaks ties when several formats claim an input (higher wins).
    example : str
        One line showing how to read it.
    records : callable or None
        ``(path_or_bytes, wanted) -> iterator of (index, dict)``: raw records again by
        their index in the source (for ``cutouts()`` of a batch read with ``cutouts=False``,
        iteration, ``to_avro``); ``None``: the records are the source's JSON messages, if any.

    Examples
    --------
    >>> from lsstuk_kit.formats import FormatSpec, get
    >>> spec = get("atlas-ddc")
    >>> spec.survey, spec.suffixes, spec.read is not None
    ('atlas', ('.ddc', '.ddc.gz'), True)
    >>> get("rubin-avro").read is None  # decoded by the reader's Avro path
    True
    >>> toy = FormatSpec(name="toy", description="a toy format", identify=lambda sniff: sniff.suffix == ".toy")
    >>> toy.priority, toy.broker
    (0, None)
    """

    name: str
    description: str
    identify: Callable
    read: Callable | None = None
    suffixes: tuple = ()
    survey: str = ""
    broker: str | None = None
    priority: int = 0
    example: str = ""
    records: Callable | None = None


_REGISTRY: dict[str, FormatSpec] = {}

#: modules holding a ``SPEC`` (or ``SPECS``), imported on first use
_MODULES = (
    "lsstuk_kit.formats.avro",
    "lsstuk_kit.formats.fink_parquet",
    "lsstuk_kit.formats.lasair_json",
    "lsstuk_kit.formats.alerce_json",
    "lsstuk_kit.formats.antares_json",
    "lsstuk_kit.formats.atlas_ddc",
)
_LOADED = False


def register(spec: FormatSpec, *, force: bool = False) -> None:
    """Add a format; a name already taken raises ``ValueError`` unless ``force=True``.

    Examples
    --------
    A toy format that claims ``.toy`` files, removed again at the end with :func:`unregister`:

    >>> from lsstuk_kit import formats
    >>> from lsstuk_kit.formats import FormatSpec, Sniff, identify, list_formats, register
    >>> toy = FormatSpec(name="toy", description="a toy format", identify=lambda sniff: sniff.suffix == ".toy",
    ...                  suffixes=(".toy",), survey="lsst")
    >>> register(toy)
    >>> "toy" in list_formats()["name"].tolist()
    True
    >>> identify(Sniff(label="night.toy", suffix=".toy")).name
    'toy'
    >>> register(toy)
    Traceback (most recent call last):
    ...
    ValueError: format 'toy' is already registered
    >>> register(toy, force=True)  # replaces it
    >>> formats.unregister("toy").name
    'toy'
    >>> "toy" in list_formats()["name"].tolist()
    False
    """
    if spec.name in _REGISTRY and not force:
        raise ValueError(f"format {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec


def unregister(name: str) -> FormatSpec:
    """Remove the format called ``name`` and return it; ``ValueError`` listing the known ones if none is.

    The kit's own formats can be removed too (e.g. to test a replacement), and given back with
    :func:`register`.

    Examples
    --------
    >>> from lsstuk_kit.formats import get, register, unregister
    >>> spec = unregister("atlas-ddc")
    >>> get("atlas-ddc")
    Traceback (most recent call last):
    ...
    ValueError: unknown format 'atlas-ddc'; the formats the kit knows are: alerce-json, ..., ztf-avro
    >>> register(spec)
    >>> get("atlas-ddc") is spec
    True
    """
    _load()
    try:
        return _REGISTRY.pop(name)
    except KeyError:
        raise ValueError(f"unknown format {name!r}; the formats the kit knows are: "
                         f"{', '.join(sorted(_REGISTRY))}") from None


def _load():
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    for mod in _MODULES:
        try:
            m = importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name == mod:  # a format module not written yet
                continue
            raise
        for spec in getattr(m, "SPECS", ()) or ([m.SPEC] if hasattr(m, "SPEC") else []):
            if spec.name not in _REGISTRY:
                register(spec)


def get(name: str) -> FormatSpec:
    """The format called ``name``; ``ValueError`` listing the known ones if none is.

    Examples
    --------
    >>> from lsstuk_kit.formats import get
    >>> spec = get("fink-parquet")
    >>> spec.name, spec.broker, spec.suffixes
    ('fink-parquet', 'fink', ('.parquet',))
    >>> get("csv")
    Traceback (most recent call last):
    ...
    ValueError: unknown format 'csv'; the formats the kit knows are: alerce-json, antares-json, ..., ztf-avro
    """
    _load()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown format {name!r}; the formats the kit knows are: "
                         f"{', '.join(sorted(_REGISTRY))}") from None


def names() -> list[str]:
    _load()
    return sorted(_REGISTRY)


def list_formats() -> pd.DataFrame:
    """The formats ``read_alerts`` knows: name, survey, broker, file suffixes, description, example.

    Examples
    --------
    >>> from lsstuk_kit.formats import list_formats
    >>> table = list_formats()
    >>> table.columns.tolist()
    ['name', 'survey', 'broker', 'suffixes', 'description', 'example']
    >>> table.set_index("name").loc["atlas-ddc", ["survey", "suffixes"]].tolist()
    ['atlas', '.ddc .ddc.gz']
    """
    _load()
    rows = [{"name": s.name, "survey": s.survey, "broker": s.broker or "", "suffixes": " ".join(s.suffixes),
             "description": s.description, "example": s.example} for s in _REGISTRY.values()]
    return pd.DataFrame(rows).sort_values("name", ignore_index=True)


def identify(sniff: Sniff) -> FormatSpec:
    """The format that claims ``sniff``: the highest priority one; :class:`UnknownFormatError` if none does.

    Examples
    --------
    >>> from lsstuk_kit.formats import Sniff, identify
    >>> identify(Sniff(label="locus.json", suffix=".json", obj={"locus_id": "ANT2020nb5h6"})).name
    'antares-json'
    >>> identify(Sniff(label="02a58764o0104c.ddc", suffix=".ddc", head=b"# OBS= 02a58764o0104c\\n")).name
    'atlas-ddc'
    >>> identify(Sniff(label="notes.txt", suffix=".txt", head=b"hello"))
    Traceback (most recent call last):
    ...
    lsstuk_kit.formats.UnknownFormatError: file notes.txt: no format the kit knows claims this input; ...
    """
    _load()
    hits = []
    for spec in _REGISTRY.values():
        try:
            if spec.identify(sniff):
                hits.append(spec)
        except Exception:  # noqa: BLE001 - an identifier must never fail a read
            continue
    if not hits:
        raise UnknownFormatError(
            "no format the kit knows claims this input; give format= one of: " + ", ".join(names()),
            sniff.label)
    hits.sort(key=lambda s: -s.priority)
    if len(hits) > 1 and hits[0].priority == hits[1].priority:
        raise UnknownFormatError(
            f"the input is ambiguous: formats {', '.join(s.name for s in hits)} all claim it; give format=",
            sniff.label)
    return hits[0]


def suffixes() -> tuple:
    """Every file ending a folder search picks up."""
    _load()
    out = []
    for s in _REGISTRY.values():
        out.extend(s.suffixes)
    return tuple(dict.fromkeys(out))
