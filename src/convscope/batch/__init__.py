"""Predictions and features over many images, streamed in constant memory.

``convscope predict RUN photos/ --out preds.csv`` and ``convscope features MODEL photos/
--layer avgpool --out emb.parquet`` are thin over this package:

- :mod:`~convscope.batch.paths`: which images, sorted by path, streamed (folders, globs,
  ``.txt`` lists), in bounded memory;
- :mod:`~convscope.batch.runner`: the model checked before any work and run in eval mode
  without gradients over batches; a bad image becomes a row with an ``error``;
- :mod:`~convscope.batch.output`: rows to CSV or Parquet in atomic chunks (``--resume``);
- :mod:`~convscope.batch.job`: the loop, the progress bar and the summary.

:mod:`convscope.dask` runs the same chunks on a Dask cluster.

>>> import numpy as np, tempfile, os, convscope as cs
>>> d = tempfile.mkdtemp()
>>> for i in range(3):
...     cs.data.save_image(os.path.join(d, f"{i}.png"), np.full((3, 8, 8), i / 2))
>>> model = cs.parse("8x8x3 | flatten | linear(2)", seed=0)
>>> summary = cs.batch.predict(model, d, os.path.join(d, "preds.csv"), progress=None)
>>> summary.images, summary.errors
(3, 0)
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from .job import EXIT_SOME_ERRORS as EXIT_SOME_ERRORS
from .job import Summary as Summary
from .job import run_job as run_job
from .paths import PathSource as PathSource
from .runner import Rows as Rows
from .runner import Runner as Runner

__all__ = ["predict", "features", "run_job", "Runner", "PathSource", "Rows", "Summary",
           "EXIT_SOME_ERRORS"]


def predict(model: Any, paths: Any, out: str, *, top: int = 1, batch_size: int = 64,
            chunk_size: int = 1024, resume: bool = False, input_shape: Any = None,
            decode_threads: int = 2, progress: TextIO | None = sys.stderr) -> Summary:
    """Write one row per image (``path, class, probability, ..., error``) to ``out``
    (.csv or .parquet), in path order, in one process. ``paths``: a folder, a glob, a .txt
    list, image files, or a list of these."""
    runner = Runner(model, "predict", top=top, input_shape=input_shape)
    return run_job(runner, PathSource(paths, "predict"), out, model_arg=model, resume=resume,
                   batch_size=batch_size, chunk_size=chunk_size,
                   decode_threads=decode_threads, progress=progress)


def features(model: Any, paths: Any, layer: Any, out: str, *, batch_size: int = 64,
             chunk_size: int = 1024, resume: bool = False, input_shape: Any = None,
             decode_threads: int = 2, progress: TextIO | None = sys.stderr) -> Summary:
    """Write one row of ``layer``'s output per image (``path, f0, f1, ..., error``) to
    ``out``; ``layer`` is a node number or module path (``"avgpool"``)."""
    runner = Runner(model, "features", layer=layer, input_shape=input_shape)
    return run_job(runner, PathSource(paths, "features"), out, model_arg=model, resume=resume,
                   batch_size=batch_size, chunk_size=chunk_size,
                   decode_threads=decode_threads, progress=progress)
