"""Exceptions and the record of skipped alerts."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AlertFormatError", "SkippedRecord", "ModelFileError", "UntrustedModelError"]


class AlertFormatError(ValueError):
    """An alert, or a file of alerts, that cannot be read.

    The message names where the problem is: the file (or in-memory source), the
    index of the record inside it (0-based; ``None`` when the whole file is
    unreadable) and the field at fault (``None`` when no single field is).

    Parameters
    ----------
    reason : str
        What is wrong.
    file : str, optional
        The file, or a label such as ``"<bytes>"`` or ``"<message 3>"``.
    record : int, optional
        Index of the record in that source.
    field : str, optional
        The field at fault, e.g. ``"diaSource.ra"``.

    Examples
    --------
    >>> from lsstuk_kit import AlertFormatError
    >>> err = AlertFormatError("not a number", file="night.avro", record=3, field="diaSource.ra")
    >>> str(err)
    "file night.avro, record 3, field 'diaSource.ra': not a number"
    >>> isinstance(err, ValueError), err.record
    (True, 3)
    """

    def __init__(self, reason, file=None, record=None, field=None):
        self.reason = reason
        self.file = file
        self.record = record
        self.field = field
        super().__init__(self._message())

    def _message(self):
        where = []
        if self.file is not None:
            where.append(f"file {self.file}")
        if self.record is not None:
            where.append(f"record {self.record}")
        if self.field is not None:
            where.append(f"field {self.field!r}")
        return (", ".join(where) + ": " if where else "") + self.reason


@dataclass(frozen=True)
class SkippedRecord:
    """One record left out by ``read_alerts(..., errors="skip")``, and why.

    Examples
    --------
    >>> from lsstuk_kit import SkippedRecord
    >>> skipped = SkippedRecord("night.avro", 3, "diaSource.ra", "not a number")
    >>> str(skipped.to_error())
    "file night.avro, record 3, field 'diaSource.ra': not a number"
    """

    file: str
    record: int | None
    field: str | None
    reason: str

    def to_error(self) -> AlertFormatError:
        """Return the exception that ``errors="raise"`` would have raised."""
        return AlertFormatError(self.reason, self.file, self.record, self.field)


class ModelFileError(ValueError):
    """A model file that cannot be loaded: not a skops file, or not the file expected.

    Attributes
    ----------
    path : str
        The file.
    reason : str
        What is wrong.

    Examples
    --------
    >>> from lsstuk_kit import ModelFileError
    >>> str(ModelFileError("rb.skops", "not a skops file"))
    'model file rb.skops: not a skops file'
    """

    def __init__(self, path, reason):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"model file {self.path}: {reason}")


class UntrustedModelError(ModelFileError):
    """A model file naming types outside the allowlist; nothing in it was loaded or run.

    Attributes
    ----------
    types : list of str
        The types refused, as ``skops.io.get_untrusted_types`` names them.

    Examples
    --------
    >>> from lsstuk_kit import ModelFileError, UntrustedModelError
    >>> err = UntrustedModelError("rb.skops", ["os.system"])
    >>> err.types, isinstance(err, ModelFileError)
    (['os.system'], True)
    """

    def __init__(self, path, types):
        self.types = list(types)
        super().__init__(path, f"refusing untrusted types {self.types}: loading them could run code. Pass "
                               "trusted=[exact names] only for a file from someone you trust and types you know")
