"""Files the study writes are written atomically, and as readable as the user's umask allows.

Data caches, result shards and converted models are meant to be shared: the README's mirror may be a
colleague's cache, a results folder may be read by a group. A temporary file from ``tempfile.mkstemp``
is mode 0600 whatever the umask (and transformers writes a model's weights that way), so a file renamed
from it was readable by its owner alone, and the colleague got a ``PermissionError``. Here every final
file gets the mode an ordinary ``open`` would give it: 0o666 minus the umask (0o644 under the usual
0o022, 0o664 under a group's 0o002).
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def file_mode() -> int:
    """0o666 minus the process umask: the mode ``open(path, "w")`` gives a new file."""
    mask = os.umask(0o022)  # the umask can only be read by setting it; it is set back at once
    os.umask(mask)
    return 0o666 & ~mask


def share(path: str | os.PathLike) -> None:
    """Give an existing file of ours the mode of ``file_mode()`` (e.g. one a library wrote through mkstemp)."""
    os.chmod(path, file_mode())


@contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """A temporary path next to ``target`` to write; when the block ends without an exception the file gets
    ``file_mode()`` and replaces ``target`` in one step, otherwise it is removed and ``target`` is untouched.
    Its name starts with ``.partial-``: a reader that lists a folder can skip it."""
    target = Path(target)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=".partial-", suffix=target.suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        share(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(target: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``target`` atomically and durably (flushed to disk before the rename)."""
    with atomic_path(target) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
