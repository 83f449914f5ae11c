"""What a read takes from an alert: a declarative projection of the writer schema.

A survey mapping (``surveys/lsst.py``, ``surveys/ztf.py``, ``surveys/atlas.py``) says
*which* fields a read needs as a :class:`Projection`: a list of :class:`Output`
columns, each a path of field names from the alert's top record. Any decoder can
carry it out; the kit's compiled decoder (:mod:`lsstuk_kit._decode`) turns it into
a program for the writer schema at hand, and the tests carry it out with fastavro
dicts as an independent reference. Output names are prefixed by what the survey's
``to_frames`` makes of them: ``a:`` alert-level scalars, ``s:`` the detection,
``o:`` the object summary, ``h:`` history lists, ``c:`` cutouts.

Three kinds of output exist:

- a scalar (or bytes) field reached through records and ``[null, X]`` unions:
  ``Output("s:ra", ("diaSource", "ra"))``;
- a list of records (``[null, array<record>]``) with a subset of the item's
  scalar fields, or all of them (``items=None``):
  ``Output("h:prvDiaSources", ("prvDiaSources",), items=("midpointMjdTai", ...))``;
- cutout bytes: ``Output("c:cutoutScience", ("cutoutScience",))`` (Rubin) or
  ``("cutoutScience", "stampData")`` (ZTF, ATLAS).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Output", "Projection"]


@dataclass(frozen=True)
class Output:
    """One output column: its name, the path of field names to it, and (for lists) the item fields kept."""

    name: str
    path: tuple
    #: for a list of records: the item fields kept, in schema order (``None``: every scalar field)
    items: tuple | None = None
    list: bool = False


@dataclass(frozen=True)
class Projection:
    """The columns a read takes from alerts of one writer schema (hashable: decoders are cached by it)."""

    outputs: tuple

    @property
    def names(self) -> list:
        return [o.name for o in self.outputs]

    def __len__(self) -> int:
        return len(self.outputs)
