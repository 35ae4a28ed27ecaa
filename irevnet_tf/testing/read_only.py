"""`read_only_directory`: a directory no process can write to, for a test."""

import contextlib
import os
import subprocess
import tempfile
from typing import Iterator


@contextlib.contextmanager
def read_only_directory(path: str) -> Iterator[str]:
    """Makes `path` (created if missing) read-only for the block.

    Root ignores permission bits, so as root the directory is made immutable
    (`chattr +i`, which root's writes obey too); otherwise its mode becomes
    0o555. Either way the block starts only once a write has been seen to
    fail.

    Yields:
        `path`.
    """
    os.makedirs(path, exist_ok=True)
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", path], check=True)
        restore = ["chattr", "-i", path]
    else:
        mode = os.stat(path).st_mode
        os.chmod(path, 0o555)
        restore = None
    try:
        try:
            with tempfile.TemporaryFile(dir=path):
                pass
        except OSError:
            pass
        else:
            raise RuntimeError(f"{path} is still writable")
        yield path
    finally:
        if restore:
            subprocess.run(restore, check=True)
        else:
            os.chmod(path, mode)
