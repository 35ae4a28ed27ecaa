"""The installed package: console scripts and the serving client.

Builds a wheel from a copy of the source tree, installs it with `--no-deps`
into a new virtual environment that reuses this interpreter's site-packages
(TensorFlow and the other dependencies), and runs the programs from a
directory outside the repository, as a user who ran `pip install .` would.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Console script -> (program name of its error lines, text its --help shows).
SCRIPTS = {
    "irevnet-train": ("train", "--model_dir"),
    "irevnet-export": ("export", "--output_dir"),
    "irevnet-convert": ("convert", "--checkpoint"),
    "irevnet-analysis": ("python -m irevnet_tf.analysis", "reconstruction"),
}
PACKAGES = ("irevnet_tf", "train", "export")

# Where the modules a user imports come from.
LOCATIONS = """
import json
import export.export
import irevnet_tf
import irevnet_tf.serving.client
import train.configs
print(json.dumps({
    name: module.__file__
    for name, module in sorted(globals().items())
    if name in ("export", "irevnet_tf", "train")
}))
"""


def _copy_sources(destination):
    """What `pip install .` reads, without build outputs and test data."""
    ignore = shutil.ignore_patterns(
        "__pycache__", "*.egg-info", "build", "testdata", ".*"
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(os.path.join(REPO_ROOT, name), destination)
    # tests/ and bench/ too, where present (Bazel's runfiles hold only what
    # the test depends on): the wheel must leave them out.
    for name in PACKAGES + ("tests", "bench"):
        if name in PACKAGES or os.path.isdir(os.path.join(REPO_ROOT, name)):
            shutil.copytree(
                os.path.join(REPO_ROOT, name),
                os.path.join(destination, name),
                ignore=ignore,
            )


def _environment():
    env = dict(os.environ)
    # As a user has it: no repository on the path, and no
    # TF_CPP_MIN_LOG_LEVEL (tests/conftest.py sets one for the tests).
    env.pop("PYTHONPATH", None)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    return env


@pytest.fixture(scope="module")
def installed():
    """A virtual environment with the wheel installed, and a work directory.

    Yields:
        A dict: `venv` (its directory), `bin` (its scripts), `wheel` (the
        wheel's path), `site_packages`, and `cwd` (outside the repository).
    """
    root = tempfile.mkdtemp()
    try:
        source = os.path.join(root, "source")
        os.makedirs(source)
        _copy_sources(source)
        wheels = os.path.join(root, "wheels")
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps"]
            + ["--no-build-isolation", "--no-cache-dir", "--quiet"]
            + ["-w", wheels, source],
            check=True,
            capture_output=True,
            timeout=600,
        )
        (wheel,) = [os.path.join(wheels, n) for n in os.listdir(wheels)]
        venv = os.path.join(root, "venv")
        subprocess.run(
            [sys.executable, "-m", "venv", "--system-site-packages"]
            + ["--without-pip", venv],
            check=True,
            capture_output=True,
            timeout=600,
        )
        python = os.path.join(venv, "bin", "python")
        # The interpreter's own pip, installing into the environment; the
        # editable install of the repository stays where it is.
        subprocess.run(
            [python, "-m", "pip", "install", "--no-deps", "--ignore-installed"]
            + ["--no-cache-dir", "--quiet", wheel],
            check=True,
            capture_output=True,
            env=_environment(),
            timeout=600,
        )
        site_packages = subprocess.run(
            [
                python,
                "-c",
                "import sysconfig; print(sysconfig.get_paths()['purelib'])",
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout.strip()
        cwd = os.path.join(root, "elsewhere")
        os.makedirs(cwd)
        yield {
            "venv": venv,
            "bin": os.path.join(venv, "bin"),
            "wheel": wheel,
            "site_packages": site_packages,
            "cwd": cwd,
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _run(installed, argv):
    return subprocess.run(
        argv,
        cwd=installed["cwd"],
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.large
def test_wheel_holds_the_programs_and_their_entry_points(installed):
    with zipfile.ZipFile(installed["wheel"]) as wheel:
        names = wheel.namelist()
        (entry_points,) = [n for n in names if n.endswith("entry_points.txt")]
        entry_points = wheel.read(entry_points).decode()
    top_level = {name.split("/")[0] for name in names}
    assert top_level - {"irevnet_tf-0.2.0.dist-info"} == set(PACKAGES)
    for path in (
        "train/train.py",
        "train/configs/__init__.py",
        "export/export.py",
        "irevnet_tf/convert/__main__.py",
        "irevnet_tf/serving/client.py",
        "irevnet_tf/analysis/__main__.py",
    ):
        assert path in names
    for script in SCRIPTS:
        assert f"{script} = " in entry_points


@pytest.mark.large
def test_imports_come_from_the_environment(installed):
    # Not from the repository, nor from its editable install.
    result = _run(
        installed, [os.path.join(installed["bin"], "python"), "-c", LOCATIONS]
    )
    assert result.returncode == 0, result.stderr
    locations = json.loads(result.stdout.splitlines()[-1])
    assert sorted(locations) == sorted(PACKAGES)
    for name, path in locations.items():
        assert path.startswith(installed["site_packages"] + os.sep), (
            name,
            path,
        )


@pytest.mark.large
def test_serving_client_imports(installed):
    python = os.path.join(installed["bin"], "python")
    result = _run(
        installed,
        [
            python,
            "-c",
            "from irevnet_tf.serving import client; print(client.__file__)",
        ],
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith(installed["site_packages"])


@pytest.mark.large
@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_console_script_help(installed, script):
    result = _run(installed, [os.path.join(installed["bin"], script), "--help"])
    assert result.returncode == 0, result.stderr
    assert SCRIPTS[script][1] in result.stdout, result.stdout


@pytest.mark.large
@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_console_script_usage_error(installed, script):
    result = _run(
        installed, [os.path.join(installed["bin"], script), "--no_such_flag"]
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{SCRIPTS[script][0]}: error:"), lines[0]
    assert "no_such_flag" in lines[0]
