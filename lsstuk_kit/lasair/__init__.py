"""Lasair filters, run offline: Lasair's ``objects`` table from any batch, and its SQL filters run on it.

A Lasair filter (its SELECT and WHERE, joined to ``sherlock_classifications``, ``crossmatch_tns``,
a watchlist, watchmaps or annotators) is checked as Lasair checks it, built into the SQL Lasair
builds, and run per incoming alert, as Lasair runs active filters, over a night the kit can read.
The result is Lasair's Kafka output and a backtest: how much of the stream the filter passes, when.

- :func:`lasair_objects`, :func:`objects_per_alert`: the ``objects`` table (schema 11.0, every
  column; :data:`LEFT_OUT` lists what is not computed, and why).
- :func:`sherlock_classifications`, :func:`crossmatch_tns`, :func:`watchlist_hits`,
  :func:`area_hits`, :func:`annotations`: the join tables, from the kit's own data.
- :class:`LasairFilter` (``.sql``, ``.check()``, ``.columns_used``) and :func:`run_filter` ->
  :class:`FilterResult` (``.messages``, ``.alerts``, ``.report``, ``.plot()``).

Examples
--------
>>> from lsstuk_kit import load_sample
>>> from lsstuk_kit.lasair import LasairFilter, run_filter
>>> f = LasairFilter("objects.diaObjectId, objects.g_psfFlux, mjdnow()-objects.lastDiaSourceMjdTai AS since",
...                  "objects.g_psfFlux > 20000")   # the docs' example says 200000 nJy; the sample is fainter
>>> res = run_filter(load_sample(), f)
>>> len(res.messages) > 0 and all(m["g_psfFlux"] > 20000 for m in res.messages)
True
>>> all(abs(m["since"]) < 1e-6 for m in res.messages)   # mjdnow() is the alert's own time
True
"""

from .features import DIAOBJECT_COLUMNS, LEFT_OUT, OBJECT_COLUMNS, distance_modulus, lasair_objects, objects_per_alert
from .query import LasairFilter, LasairFilterError, LasairFilterWarning
from .run import FilterResult, run_filter
from .tables import (
                     SHERLOCK_FROM_CONTEXT,
                     TNS_RADIUS_ARCSEC,
                     TNS_WATCHLIST_ID,
                     annotations,
                     area_hits,
                     crossmatch_tns,
                     sherlock_classifications,
                     watchlist_hits,
)

__all__ = [
    "DIAOBJECT_COLUMNS",
    "FilterResult",
    "LEFT_OUT",
    "LasairFilter",
    "LasairFilterError",
    "LasairFilterWarning",
    "OBJECT_COLUMNS",
    "SHERLOCK_FROM_CONTEXT",
    "TNS_RADIUS_ARCSEC",
    "TNS_WATCHLIST_ID",
    "annotations",
    "area_hits",
    "crossmatch_tns",
    "distance_modulus",
    "lasair_objects",
    "objects_per_alert",
    "run_filter",
    "sherlock_classifications",
    "watchlist_hits",
]
