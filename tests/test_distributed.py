"""The Dask engine on a real cluster: worker processes (dask.distributed), results equal to memory.

Everything sent to a worker process must pickle (the model, the watchlist's k-d tree, the MOC);
big read-only inputs go into the graph once, not once per partition; a worker killed mid-night
is restarted by its nanny and the result is still exact.
"""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import threading
import time
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import pytest

import lsstuk_kit as lk
from lsstuk_kit import filters as F
from lsstuk_kit import realbogus as rb
from lsstuk_kit.crossmatch import match_watchlist
from lsstuk_kit.io import iter_files
from lsstuk_kit.skyareas import Watchmap, simulated_skymap

pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed", reason="dask.distributed is part of the kit's dask extra")


@pytest.fixture(scope="module")
def client():
    """Two worker processes (one thread each), as on a cluster: nothing is shared in memory."""
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                       memory_limit="3GiB", silence_logs=40)
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


@pytest.fixture(scope="module")
def model():
    X, labels = rb.make_training_set(1_500, seed=4)
    return rb.make_model("features", seed=0).fit(X, labels["real"].to_numpy())


@pytest.fixture(scope="module")
def night_folder(tmp_path_factory):
    """The sample night's files, the last one truncated: skip mode must report it, not lose the rest.

    (Truncated in place, not copied: a copy would put the same alerts in two files, which the
    in-memory engine reads once and the Dask engine, partition by partition, twice.)
    """
    folder = tmp_path_factory.mktemp("night")
    files = iter_files(lk.sample_path())
    for f in files[:-1]:
        shutil.copy(f, folder)
    data = Path(files[-1]).read_bytes()
    (folder / "zz_truncated.avro").write_bytes(data[: len(data) * 2 // 3])
    return folder


def sorted_rows(df):
    return df.sort_index(kind="stable")


def _job(night, watchlist, wm, model):
    """The whole job of notebook 07, on any engine: filter, cross-match, sky area, score."""
    keep = night.filter(F.observable(night, max_mag=23), F.quality(night, min_reliability=0.2))
    return {
        "hits": match_watchlist(keep, watchlist, 2.0),
        "inside": wm.contains(keep),
        "score": rb.score_batch(keep, model),
        "new": F.new(night, 10),
    }, keep


def test_whole_job_on_worker_processes_equals_memory(client, night_folder, model, tmp_path):
    ref = lk.read_alerts(night_folder, errors="skip")
    s = ref.sources
    watchlist = s[["ra", "dec"]].iloc[::4].reset_index(drop=True).assign(name=lambda d: [f"t{i}" for i in d.index])
    skymap = simulated_skymap(tmp_path / "gw.fits", ra=float(s["ra"].median()), dec=float(s["dec"].median()),
                              kind="blob", width_deg=4.0)
    wm = Watchmap.from_skymap(skymap, 0.9)
    # everything a worker receives must survive pickling (Dask uses cloudpickle; plain pickle is stricter)
    for thing in (model, wm, watchlist):
        pickle.loads(pickle.dumps(thing))

    night = lk.read_alerts(night_folder, engine="dask", partition_size="1B", errors="skip")
    assert night.npartitions == len(iter_files(night_folder)) > 2
    lazy, keep = _job(night, watchlist, wm, model)
    mem, keep_ref = _job(ref, watchlist, wm, model)
    got = dict(zip(lazy, dask.compute(*lazy.values())))  # on the two worker processes: the client is the default
    assert set(client.scheduler_info()["workers"]) and len(client.scheduler_info()["workers"]) == 2

    def canon(df):
        return df.reset_index().sort_values(["diaSourceId", "name"]).reset_index(drop=True)

    assert len(mem["hits"]) > 0 and 0 < mem["inside"].sum() < len(keep_ref)
    pd.testing.assert_frame_equal(canon(got["hits"]), canon(mem["hits"]))
    pd.testing.assert_series_equal(sorted_rows(got["inside"]), sorted_rows(mem["inside"]))
    pd.testing.assert_series_equal(sorted_rows(got["score"]), sorted_rows(mem["score"]))
    pd.testing.assert_series_equal(sorted_rows(got["new"]), sorted_rows(mem["new"]))

    # the night's tables, the skipped records and the written survivors
    tables = dask.compute(night.sources, night.history, night.objects, night.errors)
    pd.testing.assert_frame_equal(sorted_rows(tables[0]), sorted_rows(ref.sources))
    order = ["diaObjectId", "midpointMjdTai", "kind", "band", "diaSourceId", "diaForcedSourceId"]
    pd.testing.assert_frame_equal(tables[1].sort_values(order, kind="stable").reset_index(drop=True),
                                  ref.history.sort_values(order, kind="stable").reset_index(drop=True))
    pd.testing.assert_frame_equal(tables[2].sort_index(), ref.objects)
    errors = tables[3].reset_index(drop=True)
    assert len(errors) == len(ref.errors) > 0 and errors["file"].str.endswith("zz_truncated.avro").all()
    pd.testing.assert_frame_equal(errors, ref.errors)

    n = keep.to_avro(tmp_path / "out")  # through the client: the default scheduler now
    back = lk.read_alerts(tmp_path / "out")
    assert n == len(back) == len(keep_ref) > 0
    pd.testing.assert_frame_equal(sorted_rows(back.sources), sorted_rows(keep_ref.sources))


def test_big_inputs_enter_the_graph_once(client):
    """A 200,000-target watchlist is one graph node, whatever the number of partitions."""
    rng = np.random.default_rng(0)
    wl = pd.DataFrame({"ra": rng.uniform(0, 360, 200_000), "dec": rng.uniform(-90, 30, 200_000)})
    wl["name"] = np.arange(len(wl)).astype(str)
    sizes = {}
    for size in ("64MB", "1B"):
        night = lk.read_alerts(lk.sample_path(), engine="dask", partition_size=size)
        hits = match_watchlist(night, wl, 2.0)
        graph = dict(hits.__dask_graph__())  # plain pickle: the kit's functions go by reference
        sizes[night.npartitions] = len(pickle.dumps(graph, protocol=5))
    (n1, one), (n6, many) = sorted(sizes.items())
    wl_bytes = len(pickle.dumps(wl, protocol=5))
    assert n6 > n1 and one > wl_bytes  # the watchlist is in the graph ...
    assert many < one + wl_bytes / 2  # ... once, not once per partition


def test_a_worker_killed_mid_night_gives_the_exact_result(client, batch):
    """SIGKILL one worker while the partitions are being read; its nanny restarts it and the
    scheduler reruns its tasks elsewhere: the result equals memory's."""
    night = lk.read_alerts(lk.sample_path(), engine="dask", partition_size="1B")

    def slow_mask(b):
        time.sleep(0.4)  # long enough to be killed in the middle of the night
        return F.observable(b, max_mag=22.5)

    lazy = night.map_batches(slow_mask)
    pids = client.run(os.getpid)
    futures = client.compute(lazy.to_delayed(optimize_graph=False))  # one per partition
    victim = sorted(pids)[0]

    def kill():
        deadline = time.time() + 10
        while time.time() < deadline:  # wait until a task runs, then kill its worker
            if any(client.processing().values()):
                break
            time.sleep(0.05)
        time.sleep(0.3)
        done_at_kill.append(sum(f.done() for f in futures))
        os.kill(pids[victim], signal.SIGKILL)

    done_at_kill = []
    t = threading.Thread(target=kill)
    t.start()
    got = pd.concat(client.gather(futures))
    t.join()
    assert [f.status for f in futures] == ["finished"] * night.npartitions
    assert done_at_kill[0] < night.npartitions  # the worker died with the night unfinished
    client.wait_for_workers(2, timeout=60)
    assert pids[victim] not in client.run(os.getpid).values()  # it really was killed and replaced
    ref = F.observable(batch, max_mag=22.5)
    pd.testing.assert_series_equal(sorted_rows(got), sorted_rows(ref))
