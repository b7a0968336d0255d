"""The fit loop: batches, loss, backward, optimizer, a validation pass per epoch, checkpoints.

A run folder holds ``model.safetensors`` (the trained model), ``checkpoint.safetensors`` (the
last complete epoch: weights, optimizer state, history), ``metrics.json`` and ``curves.png``.
Every write is atomic (temp file, fsync, rename), so an interrupted run resumes from the last
complete epoch with ``resume=True``.

Training is deterministic: batch order and dropout masks come from generators seeded by
``(seed, epoch)``, so the same seed on the same machine and thread count gives bit-identical
weights, with or without an interruption in between.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from . import functional as F
from . import optim as optim_mod
from .errors import ArgumentError, ArgumentTypeError, DataError, FileFormatError, message
from .nn import Dropout, Sequential
from .tensor import Tensor, no_grad
from .transforms.augment import augmenter, parse_augment

__all__ = ["fit", "evaluate", "predict_proba", "History"]


@dataclass
class History:
    """Per-epoch metrics, as written to ``metrics.json``."""

    epochs: list[dict[str, float]] = field(default_factory=list)
    test_accuracy: float | None = None
    test_loss: float | None = None
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "epochs": self.epochs,
            "test_accuracy": self.test_accuracy,
            "test_loss": self.test_loss,
            "seconds": round(self.seconds, 3),
        }


def evaluate(
    model: Sequential, images: np.ndarray, labels: np.ndarray, batch_size: int = 256
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy (a fraction in [0, 1]) of ``model`` in eval mode."""
    was_training = model.training
    model.eval()
    total_loss, correct = 0.0, 0
    with no_grad():
        for i in range(0, len(images), batch_size):
            logits = model(images[i : i + batch_size])
            y = labels[i : i + batch_size]
            total_loss += float(F.cross_entropy(logits, y, reduction="sum").item())
            correct += int((logits.numpy().argmax(axis=1) == y).sum())
    model.train(was_training)
    n = max(len(images), 1)
    return total_loss / n, correct / n


def predict_proba(model: Sequential, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Class probabilities (N, classes) in eval mode."""
    model.eval()
    out = []
    with no_grad():
        for i in range(0, len(images), batch_size):
            out.append(F.softmax(model(images[i : i + batch_size]), dim=1).numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def _make_optimizer(name: str, model: Sequential, lr: float) -> optim_mod.Optimizer:
    table = {"adam": optim_mod.Adam, "adamw": optim_mod.AdamW, "sgd": optim_mod.SGD}
    if name not in table:
        raise ArgumentError(
            message(
                "fit",
                f"unknown optimizer {name!r}",
                "use adam, adamw or sgd",
                f"optimizer={name!r}",
            )
        )
    if name == "sgd":
        return optim_mod.SGD(model.parameters(), lr=lr, momentum=0.9)
    return table[name](model.parameters(), lr=lr)


class _Progress:
    """A one-line progress bar on a terminal; one line per epoch elsewhere (logs, CI)."""

    def __init__(self, stream: TextIO | None, epochs: int, batches: int) -> None:
        self.stream, self.epochs, self.batches = stream, epochs, batches
        self.tty = bool(stream is not None and getattr(stream, "isatty", lambda: False)())
        self.start = time.perf_counter()
        self.done = 0

    def batch(
        self, epoch: int, b: int, loss: float, acc: float, total_done: int, total: int
    ) -> None:
        if not self.tty or self.stream is None:
            return
        elapsed = time.perf_counter() - self.start
        eta = elapsed / max(total_done, 1) * (total - total_done)
        width = 24
        fill = int(width * b / self.batches)
        self.stream.write(
            f"\repoch {epoch}/{self.epochs} [{'#' * fill}{'.' * (width - fill)}] "
            f"{b}/{self.batches}  loss {loss:.4f}  acc {acc * 100:5.1f}%  "
            f"ETA {eta:4.0f}s "
        )
        self.stream.flush()

    def epoch(self, row: dict[str, float]) -> None:
        if self.stream is None:
            return
        line = (
            f"epoch {int(row['epoch'])}/{self.epochs}  loss {row['train_loss']:.4f}  "
            f"acc {row['train_accuracy'] * 100:5.1f}%  val_loss {row['val_loss']:.4f}  "
            f"val_acc {row['val_accuracy'] * 100:5.1f}%  ({row['seconds']:.1f}s)"
        )
        self.stream.write(("\r" + line + " " * 10 + "\n") if self.tty else line + "\n")
        self.stream.flush()


def _reseed_dropout(model: Sequential, seed: int, epoch: int) -> None:
    for i, m in enumerate(model.modules()):
        if isinstance(m, Dropout):
            m.generator = np.random.default_rng([seed, epoch, i])


def _checkpoint_arrays(model: Sequential, opt: optim_mod.Optimizer) -> dict[str, np.ndarray]:
    out = {f"model.{k}": v for k, v in model.state_arrays().items()}
    out.update({f"optim.{k}": v for k, v in opt.state_arrays().items()})
    return out


def fit(
    model: Sequential,
    data: Any,
    epochs: int = 10,
    batch_size: int = 16,
    lr: float = 2e-3,
    optimizer: str = "adam",
    seed: int = 0,
    warmup_epochs: float = 1.0,
    out: str | os.PathLike[str] | None = None,
    resume: bool = False,
    progress: TextIO | None = sys.stderr,
    splits: Sequence[Any] | None = None,
    size: Any = None,
    augment: Any = None,
) -> History:
    """Train ``model`` with cross-entropy and report accuracy on held-out data.

    Parameters
    ----------
    model : Sequential
        The classifier; its last layer has one output per class.
    data : str or Dataset
        'digits', 'shapes', a folder of class subfolders, or a :class:`convscope.data.Dataset`.
        It is split into train/validation/test (80/10/10, fixed by ``seed``).
    out : path, optional
        Run folder for ``model.safetensors``, ``checkpoint.safetensors``, ``metrics.json``,
        ``curves.png``.
    resume : bool
        Continue from ``out/checkpoint.safetensors`` (the last complete epoch).
    lr, batch_size, warmup_epochs
        Adam at ``lr`` 2e-3, reached by a linear warm-up over the first ``warmup_epochs``
        (0 turns it off). Measured on this project's two reference tasks: without the
        warm-up, Tiny VGG on ``shapes`` stalls at chance from lr 2e-3 up (dead ReLUs); with
        it, both digits and shapes train faster than at PyTorch's usual 1e-3 (see
        ``benchmarks/training.md``).
    augment : str or list of str, optional
        Random changes to the training images, drawn anew each epoch: ``"flip"``,
        ``"crop"``, ``"jitter"`` (see :mod:`convscope.transforms.augment`), e.g.
        ``"flip,crop"``. Validation and test images are left as they are. The draws come
        from a generator seeded by ``(seed, epoch)``, so resuming stays bit-identical.

    Returns
    -------
    History
    """
    from . import data as data_mod
    from .io import save
    from .safetensors import load_file, save_file

    if not isinstance(epochs, int) or epochs < 1:
        raise ArgumentError(
            message("fit", "epochs must be a positive int", "use epochs=10", f"epochs={epochs!r}")
        )
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ArgumentError(
            message(
                "fit",
                "batch_size must be a positive int",
                "use batch_size=64",
                f"batch_size={batch_size!r}",
            )
        )
    _check_fit_arguments(model, data, seed, warmup_epochs)
    augment_names = parse_augment(augment)
    ds = (
        data_mod.load_dataset(data, size=size, seed=seed) if isinstance(data, (str, Path)) else data
    )
    train, val, test = splits if splits is not None else ds.split(seed=seed)
    if len(train) == 0:
        raise DataError(
            message(
                "fit", "the training split is empty", "use more images", f"{len(ds)} images in all"
            )
        )
    for part, name in ((train, "training"), (val, "validation"), (test, "test")):
        _check_finite(part.images, name)
    classes = list(ds.classes)
    opt = _make_optimizer(optimizer, model, lr)
    history, start_epoch = History(), 1
    run = Path(out) if out is not None else None
    if run is not None:
        try:
            run.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FileFormatError(
                message(
                    "fit",
                    f"cannot create the run folder {run} ({exc.strerror or exc})",
                    "give a folder path (not a file) in a writable place",
                    f"out={os.fspath(out)!r}",
                )
            ) from None
        for stale in run.glob(".*.safetensors.*.tmp"):  # left by a write that was killed
            stale.unlink(missing_ok=True)
    ckpt = run / "checkpoint.safetensors" if run is not None else None
    if resume:
        if ckpt is None:
            raise ArgumentError(
                message("fit", "resume needs a run folder", "pass out='runs/name'", "out=None")
            )
        if ckpt.exists():
            arrays, meta = load_file(ckpt)
            if meta.get("augment", "") != ",".join(augment_names):
                raise ArgumentError(message(
                    "fit", f"the run in {run} was trained with augment="
                    f"{meta.get('augment') or 'none'!r}; resuming needs the same augmentation",
                    "pass the same augment (--augment) as the interrupted run, or start a new "
                    "run folder", f"augment={','.join(augment_names) or 'none'!r}"))
            try:
                model.load_state_dict(
                    {k[6:]: v for k, v in arrays.items() if k.startswith("model.")}
                )
                opt.load_state_dict({k[6:]: v for k, v in arrays.items() if k.startswith("optim.")})
                history = History(epochs=json.loads(meta["history"]))
                start_epoch = int(meta["epoch"]) + 1
            except (KeyError, ValueError, IndexError, TypeError) as exc:
                raise FileFormatError(
                    message(
                        "fit",
                        f"{ckpt} does not match this model",
                        "start a new run folder, or drop --resume",
                        str(exc),
                    )
                ) from None
    steps_per_epoch = math.ceil(len(train) / batch_size)
    bar = _Progress(progress, epochs, steps_per_epoch)
    t0 = time.perf_counter()
    for epoch in range(start_epoch, epochs + 1):
        model.train()
        _reseed_dropout(model, seed, epoch)
        rng = np.random.default_rng([seed, epoch])
        # [seed, epoch, 0, 1]: a stream no batch-order or dropout key ([seed, epoch, i]) equals
        augment_batch = augmenter(augment_names, train.images.shape[1:],
                                  np.random.default_rng([seed, epoch, 0, 1]))
        tic, seen, loss_sum, correct = time.perf_counter(), 0, 0.0, 0
        for b, (xb, yb) in enumerate(data_mod.batches(train, batch_size, shuffle=True, rng=rng), 1):
            step = (epoch - 1) * steps_per_epoch + b
            opt.lr = (
                lr * min(1.0, step / (warmup_epochs * steps_per_epoch)) if warmup_epochs else lr
            )
            if augment_batch is not None:
                xb = augment_batch(xb)
            logits = model(Tensor._wrap(np.ascontiguousarray(xb, dtype=np.float32)))
            loss = F.cross_entropy(logits, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += float(loss.item()) * len(yb)
            correct += int((logits.numpy().argmax(axis=1) == yb).sum())
            seen += len(yb)
            bar.batch(
                epoch,
                b,
                loss_sum / seen,
                correct / seen,
                step - (start_epoch - 1) * steps_per_epoch,
                (epochs - start_epoch + 1) * steps_per_epoch,
            )
        val_loss, val_acc = (
            evaluate(model, val.images, val.labels) if len(val) else (math.nan, math.nan)
        )
        row = {
            "epoch": epoch,
            "train_loss": loss_sum / seen,
            "train_accuracy": correct / seen,
            "val_loss": val_loss,
            "val_accuracy": val_acc,
            "seconds": round(time.perf_counter() - tic, 3),
        }
        history.epochs.append(row)
        bar.epoch(row)
        if ckpt is not None:
            save_file(
                ckpt,
                _checkpoint_arrays(model, opt),
                {"epoch": str(epoch), "history": json.dumps(history.epochs), "seed": str(seed),
                 "augment": ",".join(augment_names)},
            )
    history.seconds = time.perf_counter() - t0
    if len(test):
        history.test_loss, history.test_accuracy = evaluate(model, test.images, test.labels)
    if run is not None:
        save(
            model,
            run / "model.safetensors",
            classes=classes,
            input_shape=getattr(model, "input_shape", None) or train.images.shape[1:],
        )
        _write_json(
            run / "metrics.json",
            {
                **history.to_json(),
                "classes": classes,
                "seed": seed,
                "epochs_requested": epochs,
                "batch_size": batch_size,
                "lr": lr,
                "optimizer": optimizer,
                "augment": list(augment_names),
            },
        )
        try:
            from .viz import training_curves

            training_curves(history.epochs, run / "curves.png")
        except ImportError:  # pictures are a bonus; the run's numbers are already saved
            pass
    return history


def _check_fit_arguments(model: Any, data: Any, seed: Any, warmup_epochs: Any) -> None:
    from .data import Dataset
    from .nn import Module

    if not isinstance(model, Module):
        raise ArgumentTypeError(
            message(
                "fit",
                "model must be a convscope model",
                "build it with cs.parse('HxWxD | ...') or nn.Sequential",
                f"model of type {type(model).__name__}",
            )
        )
    if not isinstance(data, (str, os.PathLike, Dataset)):
        raise ArgumentTypeError(
            message(
                "fit",
                "data must be 'digits', 'shapes', a folder path or a convscope.data.Dataset",
                "wrap arrays as cs.data.Dataset(images, labels, classes)",
                f"data of type {type(data).__name__}",
            )
        )
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ArgumentError(
            message("fit", "seed must be an int >= 0", "use seed=0", f"seed={seed!r}")
        )
    if (
        not isinstance(warmup_epochs, (int, float))
        or isinstance(warmup_epochs, bool)
        or not 0 <= warmup_epochs < math.inf
    ):
        raise ArgumentError(
            message(
                "fit",
                "warmup_epochs must be a number >= 0",
                "use warmup_epochs=1 (or 0 for no warm-up)",
                f"warmup_epochs={warmup_epochs!r}",
            )
        )


def _check_finite(images: np.ndarray, split: str, chunk: int = 1024) -> None:
    """Refuse NaN or infinite pixels: one would turn every weight into NaN at the first step."""
    first, count, kinds = -1, 0, set()
    for start in range(0, len(images), chunk):
        part = images[start : start + chunk]
        bad = ~np.isfinite(part).reshape(len(part), -1).all(axis=1)
        if bad.any():
            first = start + int(np.argmax(bad)) if first < 0 else first
            count += int(bad.sum())
            values = part[bad]
            kinds |= {"NaN"} if np.isnan(values).any() else set()
            kinds |= {"infinity"} if np.isinf(values).any() else set()
    if count:
        raise DataError(
            message(
                "fit",
                f"{count} of the {len(images)} {split} images hold {' and '.join(sorted(kinds))}"
                f" (the first is image {first} of the {split} split)",
                "clean the data first, e.g. images = np.nan_to_num(images), or drop those images",
                f"{split} images of shape {images.shape}",
            )
        )


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, allow_nan=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
