"""The same jobs on a Dask cluster (``convscope.dask``): rows equal the single process's.

One LocalCluster of 2 worker processes serves the module (started once, closed at the end,
its processes checked gone). Rows are compared with a single-process run byte for byte
(CSV), table for table (Parquet) and value for value (DataFrames); a worker process killed
mid-job leaves the output complete without duplicates; each worker loads a model once.
"""

from __future__ import annotations

import csv
import logging
import os
import signal
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import convscope as cs
from batch_images import bad_files, folder, model_file, tiny
from convscope.cli import main

distributed = pytest.importorskip("distributed")
psutil = pytest.importorskip("psutil")


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address="127.0.0.1:0",
                                       silence_logs=logging.ERROR, env=cs.dask.worker_env(1))
    client = distributed.Client(cluster)
    seen = set(client.run(os.getpid).values())
    try:
        yield client
    finally:
        seen |= set(client.run(os.getpid).values())
        client.close()
        cluster.close()
        _gone(seen)


def _gone(pids: set[int]) -> None:
    """The worker processes have exited (none left running or unreaped)."""
    _, alive = psutil.wait_procs([psutil.Process(p) for p in pids if psutil.pid_exists(p)],
                                 timeout=10)
    assert not alive, f"worker processes left behind: {alive}"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Any]:
    t = tmp_path_factory.mktemp("dask")
    folder(t / "photos", 70)
    bad = bad_files(t / "photos" / "bad")
    model = model_file(t / "model.safetensors")
    ref = t / "ref.csv"
    cs.batch.predict(model, t / "photos", str(ref), top=2, chunk_size=8, progress=None)
    return {"T": t, "photos": t / "photos", "model": model, "ref": ref, "bad": len(bad)}


def _job(data: dict[str, Any], out: Path, *extra: str) -> list[str]:
    return ["predict", str(data["model"]), str(data["photos"]), "--out", str(out), "--top", "2",
            "--chunk-size", "8", "--quiet", *extra]


def test_cluster_rows_equal_the_single_process_rows_byte_for_byte(client, data, capsys):
    out = data["T"] / "cluster.csv"
    assert main(_job(data, out, "--scheduler", client.scheduler.address)) == 3
    assert out.read_bytes() == data["ref"].read_bytes()
    assert f"({data['bad']} of them errors)" in capsys.readouterr().out


def test_parquet_on_the_cluster_equals_the_single_process_table(client, data):
    pq = pytest.importorskip("pyarrow.parquet")
    one, many = data["T"] / "one.parquet", data["T"] / "many.parquet"
    main(_job(data, one))
    main(_job(data, many, "--scheduler", client.scheduler.address))
    assert pq.read_table(one).equals(pq.read_table(many))


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_dask_dataframes_hold_the_single_process_rows(client, data):
    pytest.importorskip("pandas")
    frame = cs.dask.predict(data["model"], data["photos"], client=client, top=2, chunk_size=8)
    assert frame.npartitions == 10  # 75 or 76 images in chunks of 8
    got = frame.compute()
    want = _csv_rows(data["ref"])
    assert list(got.index) == list(range(len(want))) and list(got.columns) == list(want[0])
    for (_, row), ref in zip(got.iterrows(), want, strict=True):
        for key, text in ref.items():
            value = row[key]
            if key.startswith("probability"):
                assert (np.isnan(value) and text == "") or value == np.float32(text)
            else:
                assert (value if isinstance(value, str) else "") == text
    feats = cs.dask.features(data["model"], data["photos"], 2, client=client, chunk_size=16)
    ref = data["T"] / "feats.csv"
    cs.batch.features(data["model"], data["photos"], 2, str(ref), chunk_size=16, progress=None)
    values = feats.compute().filter(like="f").to_numpy()
    rows = _csv_rows(ref)
    expect = np.array([[np.float32(v) if v else np.nan for k, v in r.items() if k[0] == "f"]
                       for r in rows], np.float32)
    assert np.array_equal(values, expect, equal_nan=True)


def test_each_worker_loads_a_model_once_and_threads_fit_the_cores(client, data):
    other = model_file(data["T"] / "other.safetensors", classes=["a", "b", "c"])
    before = client.run(lambda: __import__("convscope.dask").dask.loads)
    out = data["T"] / "once.csv"
    assert main(["predict", str(other), str(data["photos"]), "--out", str(out), "--chunk-size",
                 "4", "--quiet", "--scheduler", client.scheduler.address]) == 3
    after = client.run(lambda: __import__("convscope.dask").dask.loads)
    assert sorted(after[w] - before.get(w, 0) for w in after) == [1, 1]  # 19 tasks, 2 loads
    plan = cs.dask.thread_plan(client)
    assert len(plan) == 2 and sum(plan.values()) <= max(2, cs.dask.cores())


def test_a_worker_killed_mid_job_leaves_the_output_complete(client, data):
    photos = data["T"] / "large"  # 400x400 pictures: decoding keeps chunks in flight a while
    for i in range(40):
        tiny(photos / f"{i:03d}.png", i, side=400)
    bad_files(photos / "bad")
    runner = cs.batch.Runner(data["model"], "predict", top=3)
    job = {"model_arg": data["model"], "chunk_size": 4, "batch_size": 2, "progress": None}
    ref = data["T"] / "large-one.csv"
    cs.batch.run_job(runner, cs.batch.PathSource(photos), str(ref), **job)
    out = data["T"] / "large-killed.csv"
    pids = client.run(os.getpid)
    lost: list[str] = []
    victim: list[int] = []

    def kill_one(i: int, rows: object) -> None:
        busy = {w: keys for w, keys in client.processing().items() if keys}
        if lost or not busy:
            return
        worker = next(iter(busy))  # a worker running a chunk right now
        os.kill(pids[worker], signal.SIGKILL)
        victim.append(pids[worker])
        lost.extend(busy[worker])

    summary = cs.batch.run_job(runner, cs.batch.PathSource(photos), str(out),
                               client=client, on_chunk=kill_one, **job)
    assert lost, "no chunk was ever in flight"
    assert summary.images == len(_csv_rows(ref))
    assert out.read_bytes() == ref.read_bytes()  # every row once, in order, same values
    moves = [row[1:4] for row in client.story(*lost) if row[0] == "scheduler"]
    again = [key for key, *move in moves if move == ["processing", "released"]]
    assert again, f"no chunk was lost with the worker: {moves}"  # then run elsewhere:
    assert all(moves.index((k, "processing", "memory")) > moves.index((k, "processing",
                                                                        "released"))
               for k in again)
    client.wait_for_workers(2, timeout=60)  # the nanny restarted it
    assert victim[0] not in client.run(os.getpid).values()


def test_an_unreachable_scheduler_is_an_error_before_any_work(data, monkeypatch, capsys):
    monkeypatch.setattr(cs.dask, "CONNECT_TIMEOUT", 1.0)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    out = data["T"] / "never.csv"
    assert main(_job(data, out, "--scheduler", f"tcp://127.0.0.1:{port}")) == 2
    err = capsys.readouterr().err
    assert f"cannot reach the Dask scheduler at tcp://127.0.0.1:{port}" in err
    assert not out.exists() and not Path(f"{out}.parts").exists()


def _children() -> set[int]:
    """This process's children, less multiprocessing's resource tracker (one per parent,
    started with the first worker process, it lives as long as its parent)."""
    return {p.pid for p in psutil.Process().children(recursive=True)
            if "resource_tracker" not in " ".join(p.cmdline())}


def test_workers_2_starts_and_closes_its_own_cluster(data):
    before = _children()
    out = data["T"] / "local.csv"
    assert main(_job(data, out, "--workers", "2")) == 3
    assert out.read_bytes() == data["ref"].read_bytes()
    _gone(_children() - before)
