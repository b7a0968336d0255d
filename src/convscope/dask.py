"""Predictions and features over many images on a Dask cluster (``pip install
'convscope[dask]'``; Dask DataFrames also need pandas).

The sorted paths are cut into the chunks a single process uses
(:func:`convscope.batch.job.chunks`); each chunk is one task, and its rows are exactly the
single process's rows for that chunk (the same decoding, the same batches). The model
travels once: the model file's bytes are scattered to every worker (a restarted worker
fetches them from a peer), and each worker process loads the model and compiles its kernels
(from Numba's on-disk cache) once, for all its tasks. A task sets its kernels' threads so that
the threads of all workers on a machine do not exceed its cores. A worker that dies mid-job:
Dask runs its tasks again elsewhere; a chunk's rows are written once, by chunk number.

>>> import convscope as cs                                     # doctest: +SKIP
>>> from distributed import Client                             # doctest: +SKIP
>>> client = Client(n_workers=2, threads_per_worker=1)         # doctest: +SKIP
>>> df = cs.dask.predict("runs/mine", "photos/", client=client, top=3)   # doctest: +SKIP
>>> df.compute().head()                                        # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
import uuid
from collections.abc import Iterator
from typing import Any

from .batch.job import chunks, model_payload
from .batch.paths import PathSource
from .batch.runner import Rows, Runner, decoded
from .errors import ArgumentError, DataError, message

__all__ = ["predict", "features", "connect", "map_chunks", "to_pandas", "worker_env"]

CONNECT_TIMEOUT = 5.0
"""Seconds to wait for a scheduler (and for its first worker) before giving up."""

_RUNNERS: dict[tuple[str, str], Runner] = {}  # per worker process: loaded once
_LOCK = threading.Lock()
loads = 0
"""How many times this process has loaded a model for a task (tests check it is once)."""


def _require(where: str, frames: bool = False) -> None:
    try:
        import dask  # noqa: F401
        import distributed  # noqa: F401
    except ImportError:
        raise ArgumentError(message(where, "Dask is not installed",
                                    "pip install 'convscope[dask]'")) from None
    if frames:
        try:
            import dask.dataframe  # noqa: F401
        except ImportError as exc:
            raise ArgumentError(message(where, f"Dask DataFrames are not available ({exc})",
                                        "pip install 'convscope[dask]' (it brings pandas)")) \
                from None


def cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def worker_env(threads: int) -> dict[str, str]:
    """Environment that caps each thread pool of a worker process at ``threads``."""
    return {var: str(threads) for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS",
                                          "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def connect(scheduler: str | None = None, workers: int | None = None,
            where: str = "predict") -> tuple[Any, Any]:
    """``(client, cluster)``: a client of the scheduler at ``scheduler``, or of a new
    LocalCluster of ``workers`` processes (one thread each, kernels sharing the cores);
    ``cluster`` is None for an existing scheduler. Close both when done."""
    _require(where)
    from distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError, ValueError, TypeError) as exc:
            raise DataError(message(where, f"cannot reach the Dask scheduler at {scheduler}",
                                    "start it (`dask scheduler`, then `dask worker "
                                    "ADDRESS`) or check the address, e.g. tcp://host:8786",
                                    str(exc)[:200])) from None
        try:
            client.wait_for_workers(1, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError):
            client.close()
            raise DataError(message(where, f"the Dask scheduler at {scheduler} has no workers",
                                    "start some: dask worker " + scheduler)) from None
        return client, None
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ArgumentError(message(where, "workers must be a positive int",
                                    "pass e.g. --workers 2", f"workers={workers!r}"))
    threads = max(1, cores() // workers)
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           host="127.0.0.1", dashboard_address="127.0.0.1:0",  # any free port
                           silence_logs=logging.ERROR, env=worker_env(threads))
    return Client(cluster), cluster


def thread_plan(client: Any) -> dict[str, int]:
    """Kernel threads for each worker: its machine's cores shared by the task threads of
    all the workers on that machine."""
    workers = client.scheduler_info(n_workers=-1)["workers"]
    found = client.run(cores)
    per_host: dict[str, int] = {}
    for info in workers.values():
        per_host[info["host"]] = per_host.get(info["host"], 0) + int(info["nthreads"])
    return {addr: max(1, found.get(addr, 1) // max(1, per_host[info["host"]]))
            for addr, info in workers.items()}


def _spec(runner: Runner) -> dict[str, Any]:
    key = runner.key
    return {"task": key["task"], "top": key["top"], "layer": key["layer"],
            "input": key["input"]}


def _runner(payload: bytes, digest: str, spec: dict[str, Any]) -> Runner:
    """The worker's runner for this model and task, loaded on first use."""
    from .io import load_model

    global loads
    key = (digest, json.dumps(spec, sort_keys=True))
    with _LOCK:
        runner = _RUNNERS.get(key)
        if runner is None:
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "model.safetensors")
                with open(path, "wb") as f:
                    f.write(payload)
                model = load_model(path)
            runner = Runner(model, spec["task"], top=spec["top"] or 1, layer=spec["layer"],
                            input_shape=tuple(spec["input"]))
            runner.lock = _KernelLock()
            loads += 1
            while len(_RUNNERS) >= 4:
                _RUNNERS.pop(next(iter(_RUNNERS)))
            _RUNNERS[key] = runner
    return runner


class _KernelLock:
    """Taken around the model by a worker's tasks when Numba's threading layer cannot run
    two parallel kernels at once (``workqueue``; ``omp`` and ``tbb`` can)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.mine = threading.local()  # whether this thread holds the lock

    def __enter__(self) -> None:
        import numba

        try:
            safe = numba.threading_layer() in ("omp", "tbb")
        except ValueError:  # no parallel kernel has run yet in this process
            safe = False
        self.mine.held = not safe and self.lock.acquire()

    def __exit__(self, *exc: object) -> None:
        if self.mine.held:
            self.lock.release()


def _threads(plan: dict[str, int]) -> int:
    try:
        from distributed import get_worker

        return plan.get(get_worker().address, 1)
    except (ImportError, ValueError):  # not on a distributed worker
        return 1


def run_chunk(payload: bytes, digest: str, spec: dict[str, Any], paths: list[str],
              batch_size: int, plan: dict[str, int]) -> Rows:
    """One chunk's rows, on a worker (images decoded in the task's own thread)."""
    import numba

    runner = _runner(payload, digest, spec)
    numba.set_num_threads(min(_threads(plan), numba.config.NUMBA_NUM_THREADS))
    return runner.rows(decoded(paths, runner.shape, threads=0), batch_size)


def map_chunks(client: Any, runner: Runner, payload: bytes,
               todo: Iterator[tuple[int, list[str]]], batch_size: int,
               in_flight: int | None = None) -> Iterator[tuple[int, Rows]]:
    """``(i, rows)`` of each chunk of ``todo``, as workers finish them (any order); at
    most ``in_flight`` chunks are submitted at a time, so the client's memory stays flat."""
    from distributed import as_completed

    digest = hashlib.sha256(payload).hexdigest()
    blob = client.scatter(payload, broadcast=True, hash=False)
    plan = thread_plan(client)
    limit = in_flight or max(4, 2 * sum(client.nthreads().values()))
    token = uuid.uuid4().hex[:12]
    spec = _spec(runner)
    pending: dict[Any, int] = {}
    queue = as_completed()

    def submit() -> bool:
        item = next(todo, None)
        if item is None:
            return False
        i, ps = item
        fut = client.submit(run_chunk, blob, digest, spec, ps, batch_size, plan,
                            key=f"convscope-chunk-{token}-{i}")
        pending[fut] = i
        queue.add(fut)
        return True

    try:
        for _ in range(limit):
            if not submit():
                break
        for fut in queue:
            i = pending.pop(fut)
            rows = fut.result()
            fut.release()
            submit()
            yield i, rows
    finally:
        for fut in pending:
            fut.cancel()
        blob.release()


# --------------------------------------------------------------------------- DataFrames
def to_pandas(rows: Rows, start: int = 0) -> Any:
    """Rows as a pandas DataFrame with the output file's columns; the index is the row's
    number in path order (from ``start``)."""
    import pandas as pd

    text = pd.StringDtype()
    index = pd.RangeIndex(start, start + len(rows), name="row")
    width = rows.values.shape[1]
    data: dict[str, Any] = {"path": pd.array(rows.paths, dtype=text)}
    bad = [e is not None for e in rows.errors]
    for k in range(width):
        values = rows.values[:, k]
        if rows.kind == "predict":
            name = "" if k == 0 else f"_{k + 1}"
            labels = [None if b else lab[k] for b, lab in zip(bad, rows.labels, strict=True)]  # type: ignore[arg-type]
            data["class" + name] = pd.array(labels, dtype=text)
            data["probability" + name] = values
        else:
            data[f"f{k}"] = values
    data["error"] = pd.array(rows.errors, dtype=text)
    return pd.DataFrame(data, index=index)


def _frame_chunk(payload: bytes, digest: str, spec: dict[str, Any], paths: list[str],
                 batch_size: int, plan: dict[str, int], start: int) -> Any:
    return to_pandas(run_chunk(payload, digest, spec, paths, batch_size, plan), start)


def _frame(runner: Runner, model: Any, paths: Any, client: Any, batch_size: int,
           chunk_size: int) -> Any:
    import dask
    import dask.dataframe as dd
    import numpy as np

    from .batch.job import positive_int

    batch_size = positive_int(batch_size, "batch_size", runner.where)
    chunk_size = positive_int(chunk_size, "chunk_size", runner.where)
    source = PathSource(paths, runner.where)
    count, _ = source.scan()
    payload = model_payload(runner, model)
    digest = hashlib.sha256(payload).hexdigest()
    if client is not None:
        blob, plan = client.scatter(payload, broadcast=True, hash=False), thread_plan(client)
    else:
        blob, plan = dask.delayed(payload, pure=True), {}
    spec = _spec(runner)
    tasks = [dask.delayed(_frame_chunk, pure=True)(
        blob, digest, spec, ps, batch_size, plan, i * chunk_size,
        dask_key_name=f"convscope-{runner.task}-{digest[:12]}-{i}")
        for i, ps in chunks(source, chunk_size)]
    empty = Rows(runner.task, [], [], np.zeros((0, runner.width), np.float32),
                 [] if runner.task == "predict" else None)
    divisions = [*range(0, count, chunk_size), count - 1]
    return dd.from_delayed(tasks, meta=to_pandas(empty), divisions=divisions,
                           verify_meta=False)


def predict(model: Any, paths: Any, client: Any = None, batch_size: int = 64, top: int = 1,
            chunk_size: int = 1024, input_shape: Any = None) -> Any:
    """Class predictions as a Dask DataFrame, one row per image in path order.

    Parameters
    ----------
    model : Module, model file, run folder
    paths : a folder, a glob pattern, a .txt list, image paths, or a list of these
    client : distributed.Client, optional
        Where to run (None: Dask's current scheduler, e.g. the default client).
    batch_size, top, chunk_size, input_shape
        As ``convscope predict``; a chunk is one partition.

    Returns
    -------
    dask.dataframe.DataFrame with columns ``path, class, probability, class_2,
    probability_2, ..., error`` and the row number in path order as its index; a row whose
    image cannot be read has its message in ``error`` and missing values elsewhere.
    """
    _require("cs.dask.predict", frames=True)
    runner = Runner(model, "predict", top=top, input_shape=input_shape,
                    where="cs.dask.predict")
    return _frame(runner, model, paths, client, batch_size, chunk_size)


def features(model: Any, paths: Any, layer: Any, client: Any = None, batch_size: int = 64,
             chunk_size: int = 1024, input_shape: Any = None) -> Any:
    """One layer's output per image as a Dask DataFrame (``path, f0, f1, ..., error``);
    ``layer`` is a node number or module path (``"avgpool"``). See :func:`predict`."""
    _require("cs.dask.features", frames=True)
    runner = Runner(model, "features", layer=layer, input_shape=input_shape,
                    where="cs.dask.features")
    return _frame(runner, model, paths, client, batch_size, chunk_size)
