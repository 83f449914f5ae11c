"""Hostile input against the broker and ATLAS formats (issue 12): only AlertFormatError, nothing hangs.

Seeded mutations (truncations, bit flips, injected strings and tokens, deleted runs, doubled input)
of one input per format, read in raise and skip mode, auto-detected and with ``format=``. A longer
campaign: ``python tests/test_fuzz_formats.py 400``.
"""

from __future__ import annotations

import io
import json
import random
import signal
import sys
import tempfile
import warnings
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent / "data"
INJECT = [b"'; DROP TABLE objects; --", b"__import__('os').system('touch PWNED')", b"${jndi:ldap://x}", b"\x00" * 8,
          b"1e999999", b"-1e308", b"9" * 400, b"[" * 5000, b"NaN", b'{"$ref": 1}']


def bases():
    """One realistic input per format: ``{name: (bytes, format or None)}``."""
    import lsstuk_kit as lk
    from lsstuk_kit.formats.fink_parquet import write_fink_parquet
    from lsstuk_kit.formats.lasair_json import to_lasair_messages
    from lsstuk_kit.surveys import atlas

    sample = lk.load_sample()[:6]
    out = {}
    buf = io.BytesIO()
    write_fink_parquet(sample, buf)
    out["fink-parquet"] = (buf.getvalue(), "fink-parquet")
    for kind in ("full", "lite"):
        out[f"lasair-{kind}"] = (b"\n".join(json.dumps(m).encode() for m in to_lasair_messages(sample, kind=kind)),
                                 "lasair-json")
    out["alerce"] = ((DATA / "alerce" / "ZTF18abbuksn_bundle.json").read_bytes(), "alerce-json")
    out["antares"] = ((DATA / "antares" / "ZTF20aafqubg_locus_alerts.json").read_bytes(), "antares-json")
    out["ddc"] = ((DATA / "atlas" / "02a59897o0104o.ddc").read_bytes(), "atlas-ddc")
    with tempfile.TemporaryDirectory() as tmp:
        path = atlas.write_atlas_alerts(Path(tmp) / "atlas.avro", atlas.example_alerts(4, seed=1))
        out["atlas-avro"] = (Path(path).read_bytes(), "atlas-avro")
    return out


def mutate(data: bytes, rng: random.Random) -> bytes:
    d = bytearray(data)
    kind = rng.randrange(6)
    if kind == 0:
        return bytes(d[: rng.randrange(1, len(d))])
    if kind == 1:
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(d))
            d[i] ^= 1 << rng.randrange(8)
        return bytes(d)
    if kind == 2:
        i = rng.randrange(len(d))
        return bytes(d[:i] + rng.choice(INJECT) + d[i:])
    if kind == 3:  # a value replaced by one of another type or an absurd one
        for tok in (b"true", b"null", b"0.", b"1", b'"r"', b'"g"'):
            j = data.find(tok, rng.randrange(len(data)))
            if j >= 0:
                return data[:j] + rng.choice(INJECT + [b"[]", b"{}", b'"x"', b"-1", b"1e30"]) + data[j + len(tok):]
        return data
    if kind == 4:
        i = rng.randrange(max(1, len(d) - 5))
        return bytes(d[:i] + d[i + rng.randrange(1, 200):])
    return data * 2


class _Hang(Exception):
    pass


def _alarm(*_):
    raise _Hang()


def run(n_per_format: int, seconds: int = 20):
    """``(cases, problems)``: problems are any exception but AlertFormatError, or a read over ``seconds``."""
    import lsstuk_kit as lk

    problems, cases = [], 0
    old = signal.signal(signal.SIGALRM, _alarm)
    try:
        for name, (data, fmt) in bases().items():
            rng = random.Random(name)
            for i in range(n_per_format):
                variant = mutate(data, rng)
                for mode in ("skip", "raise"):
                    for f in (None, fmt):
                        cases += 1
                        signal.alarm(seconds)
                        try:
                            with warnings.catch_warnings():
                                warnings.simplefilter("ignore")
                                lk.read_alerts(variant, errors=mode, format=f)
                        except lk.AlertFormatError:
                            pass
                        except _Hang:
                            problems.append((name, i, mode, f, "hang"))
                        except Exception as exc:  # noqa: BLE001 - what the test looks for
                            problems.append((name, i, mode, f, f"{type(exc).__name__}: {exc}"[:300]))
                        finally:
                            signal.alarm(0)
    finally:
        signal.signal(signal.SIGALRM, old)
    return cases, problems


@pytest.mark.skipif(not hasattr(signal, "SIGALRM"), reason="needs POSIX signals for the hang guard")
def test_mutated_broker_and_atlas_inputs_only_raise_alert_format_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # an injected command, if it ever ran, would leave PWNED here
    cases, problems = run(12)
    assert cases == 7 * 12 * 4  # 7 inputs, 12 variants, 2 modes, auto-detected and named
    assert not problems, problems[:5]
    assert not (tmp_path / "PWNED").exists()


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    c, p = run(n)
    print(f"{c} reads, {len(p)} problems")
    for row in p[:20]:
        print(row)
