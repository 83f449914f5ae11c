"""Alert files in object storage and on the web: fsspec URLs (``s3://``, ``gs://``, ``https://``, ...).

``read_alerts("s3://bucket/night/")`` lists the folder (recursively, sorted, the suffixes the
kit's formats claim) and reads each file with ranged reads into memory: nothing is copied to
local disk. ``file://`` URLs are plain local paths. Credentials come from where the storage's
own libraries look for them (for S3: ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``,
``AWS_ENDPOINT_URL`` for an S3-compatible server, ``~/.aws``); the kit never takes them as
arguments and never prints them: a URL's ``user:password@`` part is removed from every label.

Needs fsspec and the storage's filesystem package: ``pip install "lsstuk_kit[cloud]"`` (s3fs;
gcsfs for ``gs://``, adlfs for Azure).
"""

from __future__ import annotations

import re

from .errors import AlertFormatError

__all__ = ["is_url", "local_path", "redact", "find", "read_bytes", "size", "open_output", "makedirs", "join"]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*://)[^/@]*@")
_HINT = 'pip install "lsstuk_kit[cloud]" (fsspec with s3fs; gcsfs for gs://)'


def is_url(path) -> bool:
    """True for a remote URL (``s3://...``), False for local paths and ``file://`` URLs."""
    if not isinstance(path, str):
        return False
    m = _SCHEME.match(path)
    return m is not None and m.group(1).lower() not in ("file", "local")


def local_path(path):
    """``file:///x/y`` -> ``/x/y``; anything else unchanged."""
    if isinstance(path, str) and path.lower().startswith("file://"):
        return path[len("file://"):] or "/"
    return path


def redact(url: str) -> str:
    """The URL without a ``user:password@`` part, for labels and messages."""
    return _USERINFO.sub(r"\1", url)


def _fs(url):
    try:
        import fsspec
    except ImportError:  # pragma: no cover - fsspec comes with dask and pandas' extras
        raise ImportError(f"reading {redact(url)} needs fsspec: {_HINT}") from None
    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        raise ImportError(f"no filesystem for {redact(url)} ({exc}): {_HINT}") from None


def _why(exc) -> str:
    """A one-line reason for a storage error, without anything from the environment."""
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}".rstrip(": ")


def find(url, suffixes):
    """Files a URL names: ``(urls, problems)``, like the local search.

    A folder (prefix) is listed recursively in sorted order, keeping names ending in
    ``suffixes``; a glob is expanded; a file is itself.
    """
    fs, root = _fs(url)
    proto = url[: url.index("://") + 3]
    try:
        if any(ch in root for ch in "*?["):
            found = sorted(fs.glob(root))
            files = [f for f in found if not fs.isdir(f)]
            folders = [f for f in found if f not in files]
            for d in folders:
                files += [f for f in fs.find(d) if f.lower().endswith(suffixes)]
            files = sorted(set(files))
        elif fs.isdir(root):
            files = sorted(f for f in fs.find(root) if f.lower().endswith(suffixes))
        elif fs.isfile(root):
            files = [root]
        else:
            raise FileNotFoundError(f"no such file, folder or glob match: {redact(url)}")
    except FileNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001 - storage errors vary by backend
        raise OSError(f"cannot list {redact(url)} ({_why(exc)})") from None
    return [proto + f if not _SCHEME.match(f) else f for f in files], []


def size(url) -> int:
    """Size in bytes of a remote file."""
    fs, path = _fs(url)
    return int(fs.size(path))


def read_bytes(url, limit):
    """The bytes of a remote file (gzip decompressed, bounded by ``limit``), by ranged reads."""
    from ._sources import _GZIP_MAGIC, _gunzip_stream

    label = redact(url)
    fs, path = _fs(url)
    try:
        with fs.open(path, "rb", block_size=8 * 2**20) as fh:
            head = fh.read(2)
            fh.seek(0)
            if head == _GZIP_MAGIC:
                return _gunzip_stream(fh, limit, label)
            n = int(fs.size(path))
            if n > limit:
                raise AlertFormatError(f"file of {n:,} bytes is larger than the {limit:,} allowed; "
                                       "pass read_alerts(..., max_uncompressed_bytes=N) to allow more", label)
            return fh.read()
    except AlertFormatError:
        raise
    except FileNotFoundError:
        raise AlertFormatError("cannot read the file (not found)", label) from None
    except Exception as exc:  # noqa: BLE001 - storage errors vary by backend
        raise AlertFormatError(f"cannot read the file ({_why(exc)})", label) from None


def open_output(url, mode="wb"):
    """A context manager giving a writable file for a remote URL (``.gz`` names gzip-compressed)."""
    import fsspec

    return fsspec.open(url, mode, compression="gzip" if url.endswith(".gz") else None)


def makedirs(url):
    """Create a remote folder (a no-op on object stores without folders)."""
    fs, path = _fs(url)
    fs.makedirs(path, exist_ok=True)


def join(url, name) -> str:
    """``url`` + ``/`` + ``name``."""
    return url.rstrip("/") + "/" + name
