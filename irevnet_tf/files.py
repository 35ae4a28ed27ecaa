"""Writing files so that a kill never leaves half of one.

Everything the programs write (JSON records, models, figures, SavedModel
directories) is written under a hidden name beside its target and renamed
onto it in one step: a reader sees the old file or the new one, never a
truncated one. Leftover staging entries of a killed process start with
`STAGING_PREFIX`; `remove_stale_staging` clears them.
"""

import contextlib
import json
import os
import shutil
import tempfile
from typing import Iterator

STAGING_PREFIX = ".staging-"


@contextlib.contextmanager
def atomic_path(path: str, directory: bool = False) -> Iterator[str]:
    """A staging path that replaces `path` when the block succeeds.

    Args:
        path: the file (or, with `directory=True`, directory) to write.
        directory: whether the target is a directory. A directory target
            must not exist yet (a rename cannot replace a non-empty one).

    Yields:
        A path in the same directory as `path`, not existing yet, to write
        the file or directory to.
    """
    path = os.path.abspath(path)
    parent = os.path.dirname(path)
    scratch = tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=parent)
    staged = os.path.join(scratch, os.path.basename(path))
    try:
        yield staged
        if directory and os.path.exists(path):
            raise FileExistsError(f"{path} exists already")
        os.replace(staged, path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def write_text(path: str, text: str) -> None:
    """Writes `text` to `path` atomically."""
    with atomic_path(path) as staged:
        with open(staged, "w") as file:
            file.write(text)


def write_json(path: str, record) -> None:
    """Writes `record` as strict, indented JSON to `path` atomically.

    Raises:
        ValueError: if `record` holds NaN or infinity, which JSON cannot
            represent (write None instead).
    """
    write_text(path, json.dumps(record, indent=2, allow_nan=False) + "\n")


def remove_stale_staging(directory: str) -> list[str]:
    """Removes staging entries a killed process left in `directory`.

    Returns:
        The paths removed.
    """
    removed = []
    if not os.path.isdir(directory):
        return removed
    for name in sorted(os.listdir(directory)):
        if name.startswith(STAGING_PREFIX):
            entry = os.path.join(directory, name)
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def check_writable_directory(path: str, name: str) -> None:
    """Checks that `path` is, or can be created as, a writable directory.

    Writes nothing that stays: a probe file in the nearest existing
    directory is created and removed at once (permission bits alone do not
    tell, as root ignores them and read-only mounts or immutable
    directories refuse writes all the same).

    Args:
        path: the directory a program will write to.
        name: the flag or argument that gave it, for the message.

    Raises:
        ValueError: naming `name` and `path` if it is a file, lies under a
            file, or cannot be written to.
    """
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        where = (
            "is a file"
            if existing == os.path.abspath(path)
            else (f"lies under the file {existing}")
        )
        raise ValueError(
            f"`{name}` must be a directory, but {path} {where}. "
            f"Received: {name}={path!r}"
        )
    try:
        with tempfile.TemporaryFile(dir=existing, prefix=STAGING_PREFIX):
            pass
    except OSError as error:
        raise ValueError(
            f"Cannot write to {existing} ({error.strerror or error}); pass a "
            f"writable directory. Received: {name}={path!r}"
        ) from None
