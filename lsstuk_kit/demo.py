"""The main job on the bundled sample, through the Python API (run by ``make demo``)."""

from __future__ import annotations

import lsstuk_kit as lk


def main():
    """Load the sample night and show what a user gets.

    Examples
    --------
    >>> from lsstuk_kit.demo import main
    >>> main()
    AlertBatch(679 alerts of 536 objects, 15494 history rows, survey=lsst, MJD 61099.001-61099.151)
    ...
    bright, reliable alerts (mag < 21, reliability > 0.8): 45 of 679
    ...
    cutouts of 61060000004422: science, template, difference, variance, psf, wcs; science (30, 30), ...
    """
    batch = lk.load_sample()
    print(batch)
    print("\nsources (one row per alert):")
    print(batch.sources[["diaObjectId", "ra", "dec", "midpointMjdTai", "band", "psfFlux", "mag",
                         "snr", "reliability"]].head().to_string())
    print("\nhistory (long light-curve table):")
    print(batch.history["kind"].value_counts().to_string())
    oid = batch.history["diaObjectId"].value_counts().index[0]
    lc = batch.lightcurve(oid)
    print(f"\nlight curve of object {oid}: {len(lc)} rows over "
          f"{lc['midpointMjdTai'].max() - lc['midpointMjdTai'].min():.1f} days")
    bright = batch.query("mag < 21 and reliability > 0.8")
    print(f"\nbright, reliable alerts (mag < 21, reliability > 0.8): {len(bright)} of {len(batch)}")
    truth = lk.load_sample_truth()
    print("\nwhat the sample night holds (simulation truth):")
    print(truth["cls"].value_counts().to_string())
    sid = batch.sources["snr"].abs().idxmax()
    c = batch.cutouts(sid)
    print(f"cutouts of {sid}: {', '.join(c.keys())}; science {c.science.shape}, "
          f"peak difference {c.difference.max():.0f} nJy")


if __name__ == "__main__":
    main()
