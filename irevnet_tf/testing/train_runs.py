"""The training program in real processes, for tests run from the repository.

`python -m train.train` runs from the repository root (`train/` is not part
of the installed package), with the environment a user would have: no
`TF_CPP_MIN_LOG_LEVEL` unless a test asks for it, and oneDNN on or off as
asked, so that stderr holds what a user would see.
"""

import json
import os
import subprocess
import sys
import time

import h5py

import irevnet_tf
from irevnet_tf.testing import processes

REPO = os.path.dirname(os.path.dirname(os.path.abspath(irevnet_tf.__file__)))
# Generous: these processes share two cores with the rest of the suite.
TIMEOUT = 900

# Runs train.train with one more preset, "tiny_dropout": the digits preset
# with one block per stage and dropout, so that a run is fast and its
# dropout masks are part of what must resume exactly.
TINY_DROPOUT_RUNNER = """
import sys
import irevnet_tf
from irevnet_tf.testing import processes
irevnet_tf.PRESETS["tiny_dropout"] = dict(
    irevnet_tf.PRESETS["digits"], stage_depths=[1, 1, 1], dropout_rate=0.2
)
from train import train
sys.argv[0] = "train"
train.run()
"""


def environment(onednn: str | None = None, **extra) -> dict:
    """A user's environment (`processes.user_environment`), plus `extra`.

    Args:
        onednn: "0" or "1" for `TF_ENABLE_ONEDNN_OPTS`; None to keep the
            test's own setting (the CPU's default if unset).
    """
    env = processes.user_environment(python_path=REPO, onednn=onednn)
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def train_command(*flags, tiny_dropout: bool = False) -> list[str]:
    if tiny_dropout:
        return [sys.executable, "-c", TINY_DROPOUT_RUNNER, *flags]
    return [sys.executable, "-m", "train.train", *flags]


def run(*flags, env=None, tiny_dropout=False) -> subprocess.CompletedProcess:
    return subprocess.run(
        train_command(*flags, tiny_dropout=tiny_dropout),
        cwd=REPO,
        env=env or environment(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def start(*flags, env=None, tiny_dropout=False) -> subprocess.Popen:
    return subprocess.Popen(
        train_command(*flags, tiny_dropout=tiny_dropout),
        cwd=REPO,
        env=env or environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def checkpoint_path(model_dir: str) -> str:
    return os.path.join(model_dir, "checkpoints", "state.weights.h5")


def optimizer_steps(model_dir: str) -> int:
    """The optimizer's step counter, as saved in the training state."""
    with h5py.File(checkpoint_path(model_dir), "r") as f:
        optimizer = f["optimizer"]
        # Under float16 the optimizer is a LossScaleOptimizer, whose inner
        # optimizer counts the steps (its own counter stays at 0).
        if "inner_optimizer" in optimizer:
            optimizer = optimizer["inner_optimizer"]
        return int(optimizer["vars"]["0"][()])


def saved_step(model_dir: str) -> int:
    """`optimizer_steps`, or 0 while there is no readable checkpoint."""
    try:
        return optimizer_steps(model_dir)
    except (OSError, KeyError):
        return 0


def wait_until(condition, process: subprocess.Popen, what: str) -> None:
    """Polls `condition()` while `process` runs; fails if it ends first."""
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if process.poll() is not None:
            raise AssertionError(
                f"The process ended (status {process.returncode}) before "
                f"{what}: {process.stderr.read()[-2000:]}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(f"Timed out waiting for {what}")
        time.sleep(0.02)


def read_json(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def checkpoint_arrays(model_dir: str) -> dict:
    """`{dataset path: array}` of everything in the training state file."""
    arrays = {}
    with h5py.File(checkpoint_path(model_dir), "r") as f:

        def keep(name, item):
            if isinstance(item, h5py.Dataset):
                arrays[name] = item[()]

        f.visititems(keep)
    return arrays
