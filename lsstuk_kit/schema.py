"""Alert schemas: the official Rubin schemas, survey detection, and the Kafka wire format.

Rubin schemas are never copied into this project: they are loaded from the
``lsst-alert-packet`` package, which ships every published version
(``lsst.alert.packet.schema/<major>/<minor>/``). ZTF alerts are always read with
the writer schema embedded in their Avro container, so no ZTF schema is needed.

The Confluent wire format used on Rubin's Kafka stream frames each schemaless
Avro body with one magic byte (0) and a 4-byte big-endian schema id. Rubin
encodes the schema version in that id as ``major * 100 + minor`` (701 is 7.1).
"""

from __future__ import annotations

import copy
import functools
import json
import re
import struct
from importlib import resources

import fastavro
import fastavro.schema

__all__ = [
    "WIRE_MAGIC",
    "available_schema_versions",
    "latest_schema_version",
    "load_rubin_schema",
    "schema_id",
    "version_from_schema_id",
    "pack_wire",
    "unpack_wire",
    "identify_schema",
]

WIRE_MAGIC = 0
_WIRE_HEADER = struct.Struct(">bI")
_VERSION_RE = re.compile(r"\b(lsst|elasticc)\.v(\d+)_(\d+)\b")


def _schema_root():
    return resources.files("lsst.alert.packet").joinpath("schema")


@functools.lru_cache(maxsize=1)
def available_schema_versions() -> tuple[tuple[int, int], ...]:
    """Return every Rubin schema version shipped by ``lsst-alert-packet``.

    Returns
    -------
    tuple of (int, int)
        ``(major, minor)`` pairs, sorted.

    Examples
    --------
    >>> from lsstuk_kit.schema import available_schema_versions
    >>> (7, 1) in available_schema_versions()
    True
    """
    found = []
    root = _schema_root()
    for major_dir in root.iterdir():
        if not major_dir.name.isdigit():
            continue
        for minor_dir in major_dir.iterdir():
            name = f"lsst.v{major_dir.name}_{minor_dir.name}.alert.avsc"
            if minor_dir.name.isdigit() and minor_dir.joinpath(name).is_file():
                found.append((int(major_dir.name), int(minor_dir.name)))
    return tuple(sorted(found))


def latest_schema_version() -> tuple[int, int]:
    """Return the latest Rubin schema version that ``lsst-alert-packet`` declares.

    Examples
    --------
    >>> from lsstuk_kit.schema import latest_schema_version
    >>> latest_schema_version() >= (10, 0)
    True
    """
    text = _schema_root().joinpath("latest.txt").read_text().strip()
    major, minor = text.split(".", 1)
    return int(major), int(minor)


def load_rubin_schema(major: int, minor: int) -> dict:
    """Load and parse one official Rubin alert schema.

    Parameters
    ----------
    major, minor : int
        Schema version, e.g. ``(10, 0)``.

    Returns
    -------
    dict
        The parsed schema (fastavro form), ready for ``fastavro.writer`` or
        ``fastavro.schemaless_reader``.

    Raises
    ------
    KeyError
        If ``lsst-alert-packet`` does not ship that version.

    Examples
    --------
    >>> from lsstuk_kit.schema import load_rubin_schema
    >>> load_rubin_schema(7, 1)["name"]
    'lsst.v7_1.alert'
    """
    return copy.deepcopy(_load_rubin_schema(int(major), int(minor)))


@functools.cache
def _load_rubin_schema(major, minor):
    if (major, minor) not in available_schema_versions():
        raise KeyError(
            f"Rubin alert schema {major}.{minor} is not shipped by the installed "
            f"lsst-alert-packet (known: {', '.join(f'{a}.{b}' for a, b in available_schema_versions())})"
        )
    folder = _schema_root().joinpath(str(major), str(minor))
    with resources.as_file(folder.joinpath(f"lsst.v{major}_{minor}.alert.avsc")) as path:
        return fastavro.schema.load_schema(str(path))


def schema_id(major: int, minor: int) -> int:
    """Return Rubin's wire-format schema id for a version (``major * 100 + minor``).

    Examples
    --------
    >>> from lsstuk_kit.schema import schema_id
    >>> schema_id(7, 1)
    701
    """
    return int(major) * 100 + int(minor)


def version_from_schema_id(sid: int) -> tuple[int, int]:
    """Invert :func:`schema_id`.

    Examples
    --------
    >>> from lsstuk_kit.schema import version_from_schema_id
    >>> version_from_schema_id(1100)
    (11, 0)
    """
    return divmod(int(sid), 100)


def pack_wire(body: bytes, sid: int) -> bytes:
    """Frame a schemaless Avro body in the Confluent wire format.

    Examples
    --------
    >>> from lsstuk_kit.schema import pack_wire, unpack_wire
    >>> unpack_wire(pack_wire(b"abc", 701))
    (701, b'abc')
    """
    return _WIRE_HEADER.pack(WIRE_MAGIC, sid) + bytes(body)


def unpack_wire(message: bytes) -> tuple[int, bytes]:
    """Split a Confluent wire-format message into ``(schema_id, body)``.

    Raises
    ------
    ValueError
        If the message is shorter than the 5-byte header or the magic byte is not 0.

    Examples
    --------
    >>> from lsstuk_kit.schema import unpack_wire
    >>> unpack_wire(b"\\x00\\x00\\x00\\x00\\x07payload")
    (7, b'payload')
    """
    if len(message) < 5:
        raise ValueError(f"message of {len(message)} bytes is shorter than the 5-byte header")
    magic, sid = _WIRE_HEADER.unpack_from(message)
    if magic != WIRE_MAGIC:
        raise ValueError(f"magic byte is {magic}, expected {WIRE_MAGIC}")
    return sid, bytes(message[5:])


def identify_schema(writer_schema: dict) -> tuple[str, str | None]:
    """Tell which survey a writer schema belongs to, and its version where named.

    Parameters
    ----------
    writer_schema : dict
        The schema embedded in an Avro container (``fastavro.reader(...).writer_schema``).

    Returns
    -------
    survey : str
        ``"lsst"`` (Rubin, including ELAsTiCC simulations), ``"ztf"`` or ``"atlas"``.
    version : str or None
        e.g. ``"lsst.v10_0"``; ``None`` when the schema does not name it (broker
        re-serialisations; the records may then carry it, e.g. ``lsst_schema_version``).

    Raises
    ------
    ValueError
        If the schema is not a Rubin, ZTF or ATLAS alert (the message names the schema).

    Examples
    --------
    >>> import fastavro
    >>> import lsstuk_kit as lk
    >>> from lsstuk_kit.schema import identify_schema
    >>> path = sorted((lk.sample_path() / "alerts").glob("*.avro"))[0]
    >>> with open(path, "rb") as f:
    ...     survey, version = identify_schema(fastavro.reader(f).writer_schema)
    >>> survey, version.startswith("lsst.v")
    ('lsst', True)
    """
    if not isinstance(writer_schema, dict) or "fields" not in writer_schema:
        raise ValueError("top-level schema is not an Avro record")
    names = {f["name"] for f in writer_schema["fields"]}
    match = _VERSION_RE.search(json.dumps(writer_schema)[:4000])
    version = f"{match.group(1)}.v{match.group(2)}_{match.group(3)}" if match else None
    if "diaSource" in names:
        return "lsst", version
    if "candidate" in names:
        if _is_atlas(writer_schema):
            vsn = re.search(r"atlas[._]alert[^\d]{0,3}v?(\d+)[._](\d+)", json.dumps(writer_schema)[:4000])
            return "atlas", (f"atlas.v{vsn.group(1)}_{vsn.group(2)}" if vsn else None)
        return "ztf", None
    label = ".".join(str(x) for x in (writer_schema.get("namespace"), writer_schema.get("name")) if x)
    raise ValueError(
        f"schema {label or '(unnamed)'} is not an alert schema the kit knows: not Rubin (no 'diaSource' "
        f"field), ZTF or ATLAS (no 'candidate' field); top-level fields: {sorted(names)[:12]}"
    )


def _is_atlas(writer_schema: dict) -> bool:
    """ATLAS alerts (``atlas.alert``) share ZTF's layout; told apart by name or by ATLAS's own fields."""
    names = " ".join(str(writer_schema.get(k, "")) for k in ("namespace", "name")).lower()
    if "atlas" in names:
        return True
    for f in writer_schema["fields"]:
        if f.get("name") == "candidate":
            t = f.get("type")
            t = next((x for x in t if isinstance(x, dict)), None) if isinstance(t, list) else t
            if isinstance(t, dict):
                if "atlas" in str(t.get("namespace", "")).lower() or "atlas" in str(t.get("name", "")).lower():
                    return True
                sub = {g.get("name") for g in t.get("fields", ()) if isinstance(g, dict)}
                return {"filt", "mjd"} <= sub and "jd" not in sub
    return False
