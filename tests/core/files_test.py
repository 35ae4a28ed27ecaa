"""Atomic writes and output-path checks."""

import json
import math
import os
import subprocess
import sys

import pytest

from irevnet_tf import files


def test_write_json_is_strict_and_replaces(tmp_path):
    path = tmp_path / "record.json"
    files.write_json(str(path), {"a": 1})
    files.write_json(str(path), {"a": 2, "b": None})
    assert json.loads(path.read_text()) == {"a": 2, "b": None}
    with pytest.raises(ValueError):
        files.write_json(str(path), {"a": math.nan})
    # The failed write left the previous file and no staging entry.
    assert json.loads(path.read_text()) == {"a": 2, "b": None}
    assert os.listdir(tmp_path) == ["record.json"]


def test_atomic_path_keeps_the_old_file_when_the_block_fails(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"good")
    with pytest.raises(RuntimeError):
        with files.atomic_path(str(path)) as staged:
            with open(staged, "wb") as f:
                f.write(b"ha")
            raise RuntimeError("killed half-way")
    assert path.read_bytes() == b"good"
    assert os.listdir(tmp_path) == ["model.bin"]


def test_atomic_directory_and_stale_staging(tmp_path):
    target = tmp_path / "1"
    with files.atomic_path(str(target), directory=True) as staged:
        os.makedirs(os.path.join(staged, "variables"))
    assert os.path.isdir(target / "variables")
    # A killed process leaves a staging directory behind.
    os.makedirs(tmp_path / f"{files.STAGING_PREFIX}abc" / "1")
    removed = files.remove_stale_staging(str(tmp_path))
    assert [os.path.basename(p) for p in removed] == [
        f"{files.STAGING_PREFIX}abc"
    ]
    assert sorted(os.listdir(tmp_path)) == ["1"]


def test_check_writable_directory_accepts_new_and_existing(tmp_path):
    files.check_writable_directory(str(tmp_path), "output_dir")
    files.check_writable_directory(str(tmp_path / "a" / "b"), "output_dir")
    # Nothing was created.
    assert os.listdir(tmp_path) == []


def test_check_writable_directory_refuses_files(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(ValueError, match="is a file.*output_dir="):
        files.check_writable_directory(str(a_file), "output_dir")
    with pytest.raises(ValueError, match="lies under the file"):
        files.check_writable_directory(str(a_file / "sub"), "output_dir")


@pytest.mark.skipif(os.geteuid() != 0, reason="drops privileges from root")
def test_check_writable_directory_refuses_unwritable(tmp_path):
    # Root writes anywhere: a child that runs as `nobody` cannot write to a
    # directory owned by root with mode 755.
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o755)
    os.chmod(tmp_path, 0o755)
    code = (
        "import os, sys\n"
        "from irevnet_tf import files\n"
        "os.setgid(65534); os.setuid(65534)\n"
        "try:\n"
        f"    files.check_writable_directory({str(locked / 'run')!r}, 'd')\n"
        "except ValueError as e:\n"
        "    print(e); sys.exit(3)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
    )
    assert result.returncode == 3, result.stderr
    assert "Cannot write to" in result.stdout
    assert os.listdir(locked) == []
