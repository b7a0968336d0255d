"""``convscope evaluate RUN FOLDER [--out confusion.png]``: accuracy, precision and recall per
class, and a confusion-matrix picture, on a folder of labelled images."""

from __future__ import annotations

import argparse
import os
from typing import Any

EPILOG = """\
examples:
  convscope evaluate runs/shapes data/shapes-test
  convscope evaluate runs/mine/model.safetensors photos/test --out test-confusion.png

FOLDER holds one subfolder of images per class, named as the model's classes (a folder may \
hold only some of them). Images are resized to the model's input volume, as `convscope \
predict` does. Precision and recall are shown as '-' where they are undefined (no image \
predicted as that class; no image of that class)."""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "evaluate", help="accuracy, precision and recall per class, and a confusion matrix",
        description="Classify every image of a folder with a trained model and compare with "
                    "the folder's class names.", epilog=EPILOG)
    p.add_argument("run", metavar="RUN", help="a run folder or a model file")
    p.add_argument("folder", metavar="FOLDER", help="a folder with one subfolder per class")
    p.add_argument("--out", default="confusion.png", metavar="PNG",
                   help="where to write the confusion-matrix picture (default: confusion.png)")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    p.set_defaults(func=run)


def _match_classes(folder_classes: list[str], model_classes: list[str], folder: str,
                   run: str) -> list[int]:
    from ..errors import DataError, message

    unknown = [c for c in folder_classes if c not in model_classes]
    if unknown:
        shown = ", ".join(repr(c) for c in unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        known = ", ".join(model_classes[:12]) + (", ..." if len(model_classes) > 12 else "")
        raise DataError(message(
            "evaluate", f"the folder's class {'folder' if len(unknown) == 1 else 'folders'} "
            f"{shown} {'is' if len(unknown) == 1 else 'are'} not among the model's "
            f"{len(model_classes)} classes ({known})",
            "name the subfolders of FOLDER as the classes the model was trained on",
            f"FOLDER {folder!r}, model {run!r}"))
    return [model_classes.index(c) for c in folder_classes]


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..data import load_image
    from ..errors import ArgumentError, message
    from ..io import load_model as load
    from ..metrics import classification_report, confusion_matrix, precision_recall
    from ..train import predict_proba
    from ..utils.data import DataLoader, ImageFolder
    from ..viz.confusion import confusion_picture
    from .viz_common import write_png

    if args.batch_size < 1:
        raise ArgumentError(message("evaluate", "--batch-size must be at least 1",
                                    "pass e.g. --batch-size 64", f"{args.batch_size}"))
    model = load(args.run)
    c, h, w = model.input_shape

    def read(path: str) -> np.ndarray:
        return load_image(path, size=(h, w), channels=c)

    ds = ImageFolder(args.folder, loader=read)
    probe = predict_proba(model, np.zeros((1, c, h, w), np.float32))
    names = list(model.classes) if model.classes else [str(i) for i in range(probe.shape[1])]
    to_model = np.asarray(_match_classes(ds.classes, names, args.folder, args.run), np.int64)
    truth, predicted = [], []
    for images, labels in DataLoader(ds, batch_size=args.batch_size):
        predicted.append(predict_proba(model, images.numpy()).argmax(axis=1))
        truth.append(to_model[np.asarray(labels)])
    y_true, y_pred = np.concatenate(truth), np.concatenate(predicted)
    cm = confusion_matrix(y_true, y_pred, num_classes=len(names))
    shown = [i for i in range(len(names)) if cm[i].sum() or cm[:, i].sum()]
    correct = int(np.trace(cm))
    print(f"evaluated {args.run} on {args.folder}: {len(y_true)} images of "
          f"{len(ds.classes)} of the model's {len(names)} classes, resized to {h}x{w}x{c}")
    print(f"accuracy {correct / len(y_true) * 100:.1f}% ({correct} of {len(y_true)})\n")
    print(classification_report(y_true, y_pred, classes=names, only_present=True))
    precision, recall = precision_recall(y_true, y_pred, num_classes=len(names))
    if np.isnan(precision[shown]).any() or np.isnan(recall[shown]).any():
        print("(- : undefined: no image was predicted as that class (precision), or the folder "
              "holds no image of it (recall))")
    left_out = len(names) - len(shown)
    if left_out:
        print(f"({left_out} of the model's classes neither occur in the folder nor were "
              "predicted; they are left out above and in the picture)")
    title = (f"{os.path.basename(os.path.normpath(args.run))} on "
             f"{os.path.basename(os.path.normpath(args.folder))}: accuracy "
             f"{correct / len(y_true) * 100:.1f}%")
    rgb = confusion_picture(cm[np.ix_(shown, shown)], [names[i] for i in shown], title)
    write_png(args.out, rgb, "confusion matrix, rows = true class, columns = predicted class")
    return 0
