"""Fuzz campaign for read_alerts: thousands of seeded variants of real and sample alert files.

The longer run of the harness in ``tests/fuzzing.py`` (the suite's ``tests/test_fuzz.py``
runs a few hundred variants). Each variant is read in both modes in a worker process
with a wall-clock bound, and judged against the reader's contract:

* raise mode: the only exception is ``AlertFormatError`` ("clear errors");
* skip mode: no exception; every record index is read or reported in ``batch.errors``
  (no silent loss), none is read twice or beyond the file's records (no phantom), none
  is both read and reported; a folder with one bad file still yields every good alert;
* no variant hangs (past ``--timeout`` seconds), crashes its process or takes more
  than ``--max-rss`` GiB.

"Values changed undetectably" counts variants where a record was read with key values
(diaSourceId, diaObjectId, ra, dec, midpointMjdTai, band, psfFlux, psfFluxErr) other
than the original's: null-codec and deflate Avro carry no checksum, so a flipped bit
inside a value cannot be seen by any reader (snappy blocks carry a CRC32). They are
not failures. Prints tables by mutation kind, by input and by transport, then each
distinct failure cause with a command that reproduces it.

    python benchmarks/bench_fuzz.py [--n 3000] [--seed 0] [--workers 2] [--timeout 30]
        [--groups rubin,ztf,sample] [--kinds bitflip,header:loop_keylen,...]
        [--save DIR] [--json FILE] [--kit SOURCE_TREE]

``--kit`` reads the kit from another source tree (e.g. ``git archive HEAD | tar -x -C
/tmp/head`` to measure main's HEAD while the working tree changes).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests import fuzzing as fz  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=3000, help="mutated variants (the unmutated inputs are added)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds per variant (both modes) before a hang")
    ap.add_argument("--max-rss", type=float, default=6.0, help="GiB of resident memory per worker before a kill")
    ap.add_argument("--groups", default=None, help="input groups to use (rubin, ztf, sample); default: all present")
    ap.add_argument("--kinds", default=None, help="comma-separated mutation kinds (default: the standard mix)")
    ap.add_argument("--save", default=None, help="folder for the failing variants' bytes and specs")
    ap.add_argument("--json", default=None, help="write every result to this file")
    ap.add_argument("--kit", default=None, help="source tree of the kit to test (default: the installed one)")
    args = ap.parse_args(argv)

    groups = args.groups.split(",") if args.groups else None
    inputs = fz.default_inputs(groups=groups)
    if not inputs:
        sys.exit("no inputs: neither ../shared/real-alerts nor the sample night was found")
    if not any(fz.group_of(k) in ("rubin", "ztf") for k in inputs):
        print(f"note: {fz.REAL} is absent; only the sample night is fuzzed", file=sys.stderr)
    weights = None
    if args.kinds:
        weights = {}
        for k in args.kinds.split(","):
            if k not in fz.ALL_KINDS and k != "header" and k not in fz.DEFAULT_WEIGHTS:
                sys.exit(f"unknown kind {k!r}; kinds: {', '.join(fz.ALL_KINDS)}")
            weights[k] = 1.0
    specs = fz.plan(args.n, seed=args.seed, inputs=inputs, weights=weights)

    t0 = time.perf_counter()
    last = [t0]

    def progress(done, total):
        now = time.perf_counter()
        if now - last[0] > 30 or done == total:
            last[0] = now
            print(f"  {done}/{total} variants, {now - t0:.0f} s", file=sys.stderr, flush=True)

    info: dict = {}
    results = fz.run_specs(specs, inputs, workers=args.workers, timeout=args.timeout, save_dir=args.save,
                           progress=progress, kit_path=args.kit, info=info,
                           max_rss=int(args.max_rss * 2**30))
    elapsed = time.perf_counter() - t0

    by_group = Counter(fz.group_of(k) for k in inputs)
    print(f"# read_alerts fuzz campaign: kit {info.get('kit')}")
    print(f"inputs: {', '.join(f'{g} {n} files' for g, n in sorted(by_group.items()))}; "
          f"{len(specs)} variants ({len(specs) - args.n} unmutated), seed {args.seed}, "
          f"{args.workers} workers, bound {args.timeout:.0f} s per variant")
    print(f"elapsed {elapsed:.0f} s ({len(specs) / elapsed:.1f} variants/s)\n")
    print("## by mutation kind\n")
    print(fz.format_table(results, by=lambda r: r["spec"]["kind"].split(":")[0], title="kind"))
    print("\n## by input\n")
    print(fz.format_table(results, by=lambda r: fz.group_of(r["spec"]["input"]), title="input"))
    print("\n## by transport\n")
    print(fz.format_table(results, by=lambda r: ("bytes" if r["spec"]["via"] == "bytes" else "path")
                          + (" gzip" if r["spec"]["gz"] or r["spec"]["kind"].startswith("gz_") else ""),
                          title="passed as"))
    hdr = [r for r in results if r["spec"]["kind"].startswith("header:")]
    if hdr:
        print("\n## hand-made headers\n")
        print(fz.format_table(hdr, by=lambda r: r["spec"]["kind"].split(":", 1)[1], title="header"))

    changed = [r for r in results if r["info"].get("changed") or r["info"].get("changed_raise")]
    n_changed = sum(r["info"].get("changed", 0) for r in results)
    mis = sum(r["info"].get("misattributed", 0) for r in results)
    rejected = sum(1 for r in results if r["info"].get("valid_rejected"))
    print(f"\nvalues changed undetectably: {len(changed)} variants, {n_changed} records (skip mode); "
          f"{mis} of them carry another record's values (misnumbered). Null-codec and deflate Avro have no "
          "checksum: a flipped bit inside a value cannot be detected.")
    if rejected:
        print(f"valid containers refused (blocks removed/swapped, legal negative-count maps, cut at a block "
              f"boundary): {rejected}")
    fails = fz.failures(results)
    print(f"\nfailures: {len(fails)} in {sum(1 for r in results if r.get('fail'))} variants")
    if fails:
        print("\n## failure causes (first variant of each)\n")
        print(fz.format_failures(results, limit=60))
        if args.save:
            print(f"\nfailing variants saved in {args.save}")
    if args.json:
        Path(args.json).write_text(json.dumps({"kit": info.get("kit"), "seed": args.seed, "elapsed": elapsed,
                                               "results": results}, default=str))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
