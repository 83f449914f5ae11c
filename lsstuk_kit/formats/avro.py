"""The Avro alert formats: Rubin, ZTF and ATLAS containers, and Rubin's Kafka wire messages.

The reader decodes these itself (columnar, with its compiled decoder; see :mod:`lsstuk_kit._decode`);
the specs here let ``format=`` name them and :func:`~lsstuk_kit.formats.list_formats`
show them. An Avro container is identified by its writer schema
(:func:`lsstuk_kit.schema.identify_schema`).
"""

from __future__ import annotations

from . import FormatSpec

__all__ = ["SPECS", "AVRO_SURVEYS"]


def _schema_survey(sniff):
    if sniff.writer_schema is None:
        return None
    from ..schema import identify_schema

    try:
        return identify_schema(sniff.writer_schema)[0]
    except (ValueError, TypeError, KeyError):
        return None


def _is(survey):
    return lambda sniff: _schema_survey(sniff) == survey


def _is_wire(sniff):
    return sniff.writer_schema is None and sniff.head[:1] == b"\x00" and sniff.head[:4] != b"Obj\x01"


SPECS = [
    FormatSpec("rubin-avro", "Rubin (LSST) alerts in Avro containers (lsst-alert-packet schemas, any version; "
               "ELAsTiCC; broker re-serialisations)", _is("lsst"), suffixes=(".avro", ".avro.gz"), survey="lsst",
               example='read_alerts("visit.avro")'),
    FormatSpec("ztf-avro", "ZTF alerts in Avro containers (schemas 3.x and 4.x; broker re-serialisations)",
               _is("ztf"), suffixes=(".avro", ".avro.gz"), survey="ztf",
               example='read_alerts("ZTF19acihgng.avro")'),
    FormatSpec("atlas-avro", "ATLAS alerts in Avro containers (atlas.alert schema, as QUB and ALeRCE publish them)",
               _is("atlas"), suffixes=(".avro", ".avro.gz"), survey="atlas",
               example='read_alerts("atlas_alerts.avro")'),
    FormatSpec("kafka-wire", "Rubin alerts as Kafka messages: Confluent wire format (magic byte 0, schema id, "
               "schemaless Avro)", _is_wire, survey="lsst",
               example="read_alerts([msg.value() for msg in messages])"),
]

#: format name -> survey, for the formats the Avro path decodes
AVRO_SURVEYS = {s.name: s.survey for s in SPECS}
