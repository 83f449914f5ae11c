"""Recognise lazy (Dask) batches without importing the Dask engine.

The per-batch functions (filters, cross-matching, context, sky areas, ...) sit below the Dask
engine (:mod:`lsstuk_kit.scale`), so they must not import it. A :class:`~lsstuk_kit.scale.DaskAlerts`
can only exist once ``scale`` has been imported, so :func:`_is_lazy` looks it up in
``sys.modules`` and never triggers that import itself.
"""

from __future__ import annotations

import functools
import inspect
import sys

__all__ = ["dask_aware"]

_SCALE = __name__.rpartition(".")[0] + ".scale"


def _is_lazy(obj) -> bool:
    scale = sys.modules.get(_SCALE)
    return scale is not None and isinstance(obj, scale.DaskAlerts)


class _BatchAsKeyword:
    """``func(**{name: batch}, **kwargs)``: a function whose batch was given by keyword.

    A class, not a lambda, so that it pickles by reference to worker processes.
    """

    def __init__(self, func, name):
        self.func, self.name = func, name

    def __call__(self, batch, **kwargs):
        return self.func(**{self.name: batch}, **kwargs)


def dask_aware(func):
    """Let a per-batch function also take a :class:`DaskAlerts` (then it maps over the partitions).

    The partitions are given to the decorated function itself (which, for an AlertBatch, just
    calls ``func``), so that what is sent to worker processes pickles by reference to the
    module's public name.

    Examples
    --------
    >>> from lsstuk_kit import load_sample, read_alerts, sample_path
    >>> from lsstuk_kit.scale import dask_aware
    >>> @dask_aware
    ... def bright(batch, max_mag=21.0):
    ...     return batch.sources["mag"] < max_mag
    >>> int(bright(load_sample()).sum())  # an AlertBatch: the function itself
    54
    >>> night = read_alerts(sample_path(), engine="dask", partition_size="4MB")
    >>> lazy = bright(night)  # a DaskAlerts: a Dask Series, one piece per partition
    >>> int(lazy.sum().compute())
    54
    """
    first = next(iter(inspect.signature(func).parameters))

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        target = args[0] if args else kwargs.get(first)
        if _is_lazy(target):
            if args:
                return target.map_batches(wrapper, *args[1:], **kwargs)
            rest = {k: v for k, v in kwargs.items() if k != first}
            return target.map_batches(_BatchAsKeyword(wrapper, first), **rest)
        return func(*args, **kwargs)

    return wrapper
