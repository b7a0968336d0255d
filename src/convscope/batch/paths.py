"""Which images a job reads, in the order it writes them: sorted by path, streamed.

A job reads one or more *sources*:

- a folder: every image file below it (recursively; the extensions of
  :data:`convscope.data.IMAGE_EXTENSIONS`, any case; hidden files and folders, whose names
  start with ``.``, are skipped, as ``ls`` does; symbolic links to folders are not followed);
- a glob pattern (``"photos/**/*.jpg"``, ``**`` crosses folders), image extensions only;
- a text file ending ``.txt``: one path per line (blank lines and ``#`` comments skipped;
  a relative path is relative to the list file's folder), taken whatever its extension;
- one image file (or a path with an image extension that does not exist: its row will say so).

The paths come out in Python's string order without repeats, **in bounded memory whatever
their number**: a folder is walked one level at a time with each level's names sorted, and
every sort holds at most :data:`RUN` names in memory, spilling sorted runs to temporary files
and merging them (an external merge sort). Walking a folder with the names of its subfolders
sorted as ``name + "/"`` gives exactly the string order of the full paths.
"""

from __future__ import annotations

import glob
import hashlib
import heapq
import itertools
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from typing import IO

from ..data.images import IMAGE_EXTENSIONS
from ..errors import ArgumentTypeError, DataError, message

__all__ = ["PathSource", "sorted_bounded", "RUN"]

RUN = 10_000
"""Names a sort holds in memory before it spills a sorted run to a temporary file."""

_MAGIC = re.compile(r"[*?\[]")


def _is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _spill(items: list[str]) -> IO[str]:
    f = tempfile.TemporaryFile("w+", encoding="ascii")
    for item in items:
        f.write(json.dumps(item) + "\n")  # JSON: newlines and odd bytes in names survive
    f.seek(0)
    return f


def _read_run(f: IO[str]) -> Iterator[str]:
    for line in f:
        yield json.loads(line)


def sorted_bounded(items: Iterable[str], run: int | None = None) -> Iterator[str]:
    """``iter(sorted(items))`` holding at most ``run`` (default :data:`RUN`) items in memory.

    >>> list(sorted_bounded(["c", "a", "d", "b"], run=2))
    ['a', 'b', 'c', 'd']
    """
    run = run or RUN
    buf: list[str] = []
    runs: list[IO[str]] = []
    try:
        for item in items:
            buf.append(item)
            if len(buf) >= run:
                runs.append(_spill(sorted(buf)))
                buf = []
        if not runs:
            yield from sorted(buf)
            return
        if buf:
            runs.append(_spill(sorted(buf)))
        buf = []
        yield from heapq.merge(*(_read_run(f) for f in runs))
    finally:
        for f in runs:
            f.close()


def _walk(root: str) -> Iterator[str]:
    """Image files below ``root`` in the string order of their full paths."""
    try:
        with os.scandir(root) as it:
            keys = sorted_bounded(_entry_keys(it))
            first = next(keys, None)  # the whole listing is read (and closed) here
    except OSError as exc:
        raise DataError(message(f"folder {root!r}", f"cannot list it ({exc.strerror or exc})",
                                "check its permissions, or leave it out")) from None
    if first is None:
        return
    for key in itertools.chain([first], keys):
        if key.endswith("/"):
            yield from _walk(os.path.join(root, key[:-1]))
        else:
            yield os.path.join(root, key)


def _entry_keys(entries: Iterable[os.DirEntry[str]]) -> Iterator[str]:
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            is_dir = entry.is_dir()
            link = entry.is_symlink()
        except OSError:
            is_dir, link = False, False
        if is_dir:
            if not link:
                yield entry.name + "/"
        elif _is_image_name(entry.name):  # files, and also pipes or broken links: their
            yield entry.name  # rows will carry the error, the job never skips them silently


def _read_list(path: str) -> Iterator[str]:
    folder = os.path.dirname(path)
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            text = line.strip()
            if text and not text.startswith("#"):
                yield os.path.join(folder, text) if folder else text


def _glob(pattern: str) -> Iterator[str]:
    for p in glob.iglob(pattern, recursive=True):
        if _is_image_name(p) and not os.path.isdir(p):
            yield p


class _Source:
    """One command-line source: its kind ("folder", "glob", "list", "file") and text."""

    def __init__(self, kind: str, text: str) -> None:
        self.kind, self.text = kind, text

    def paths(self) -> Iterator[str]:
        if self.kind == "folder":
            return _walk(self.text)
        if self.kind == "glob":
            return sorted_bounded(_glob(self.text))
        if self.kind == "list":
            return sorted_bounded(_read_list(self.text))
        return iter([self.text])

    def describe(self) -> str:
        return {"folder": "the folder", "glob": "the pattern", "list": "the list",
                "file": "the file"}[self.kind] + f" {self.text!r}"


def _classify(text: str, where: str) -> _Source:
    if os.path.isdir(text):
        return _Source("folder", os.path.normpath(text))
    if os.path.isfile(text) and text.lower().endswith(".txt"):
        return _Source("list", text)
    if os.path.lexists(text):
        return _Source("file", text)
    if _MAGIC.search(text):
        return _Source("glob", text)
    if _is_image_name(text):  # a missing image: its row will say so
        return _Source("file", text)
    raise DataError(message(where, f"no such file or folder: {text}",
                            "give a folder of images, a glob pattern such as 'photos/*.jpg', "
                            "a .txt list of paths or image files", text))


class PathSource:
    """The sorted, de-duplicated image paths of one or more sources (see the module doc).

    Iterating walks the sources again each time (nothing is kept); :meth:`scan` counts the
    paths and fingerprints their list, and refuses a source that yields no image.

    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> for name in ("b.png", "a.jpg", "notes.txt"):
    ...     open(os.path.join(d, name), "w").close()
    >>> [os.path.basename(p) for p in PathSource([d])]
    ['a.jpg', 'b.png']
    """

    def __init__(self, sources: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
                 where: str = "paths") -> None:
        items = [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)
        if not items:
            raise DataError(message(where, "no images were given",
                                    "give a folder, a glob pattern, a .txt list or image files"))
        texts = []
        for s in items:
            if not isinstance(s, (str, os.PathLike)):
                raise ArgumentTypeError(message(where, "paths must be str or pathlib.Path",
                                                "pass e.g. 'photos/' or ['a.png', 'b.png']",
                                                f"{type(s).__name__}"))
            texts.append(os.fsdecode(os.fspath(s)))
        self.where = where
        self.sources = [_classify(t, where) for t in texts]

    @property
    def only_files(self) -> bool:
        """Whether every source is a single file (the command line's "a few images")."""
        return all(s.kind == "file" for s in self.sources)

    def __iter__(self) -> Iterator[str]:
        streams = [s.paths() for s in self.sources]
        merged = streams[0] if len(streams) == 1 else heapq.merge(*streams)
        last = None
        for p in merged:
            if p != last:
                yield p
            last = p

    def scan(self) -> tuple[int, str]:
        """``(count, fingerprint)`` of the path list; a DataError for a source without images."""
        for s in self.sources:
            if s.kind != "file" and next(iter(s.paths()), None) is None:
                what = ("holds no image files" if s.kind == "folder" else
                        "matches no image files" if s.kind == "glob" else "lists no paths")
                exts = ", ".join(sorted(IMAGE_EXTENSIONS))
                raise DataError(message(self.where, f"{s.describe()} {what}",
                                        "point at images (file names ending " + exts + ")",
                                        s.text))
        digest = hashlib.sha256()
        count = 0
        for p in self:
            digest.update(p.encode("utf-8", "surrogateescape") + b"\0")
            count += 1
        return count, digest.hexdigest()
