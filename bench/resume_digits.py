r"""A killed and resumed run against an uninterrupted one, bit for bit.

    python -m bench.resume_digits --kill_after=1,5,27 \
        --output bench/results/resume_digits.json

Runs the README's main command with `--deterministic --epochs=2
--checkpoint_steps=1` (22 steps per epoch, 44 in all) once uninterrupted,
then, for each N of `--kill_after`, starts it in a fresh directory, SIGKILLs
it as soon as its training state of step N is on disk (the process has
usually gone a step or two further) and runs the same command again to the
end. Reports, per run, where it resumed, the test accuracy and the largest
absolute difference of any weight of model.keras from the uninterrupted
run's (0.0: bit-identical).
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np
from absl import app
from absl import flags

from bench import reporting

_KILL_AFTER = flags.DEFINE_list(
    "kill_after", ["1", "5", "27"], "Steps whose saved state triggers a kill."
)
_OUTPUT = flags.DEFINE_string("output", None, "Optional JSON output path.")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROGRAM = "python -m bench.resume_digits"


def command(model_dir: str, data_dir: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "train.train",
        f"--model_dir={model_dir}",
        f"--data_dir={data_dir}",
        "--epochs=2",
        "--checkpoint_steps=1",
        "--deterministic",
    ]


def saved_step(model_dir: str) -> int:
    path = os.path.join(model_dir, "checkpoints", "state.weights.h5")
    try:
        with h5py.File(path, "r") as f:
            return int(f["optimizer"]["vars"]["0"][()])
    except (OSError, KeyError):
        return 0


def finish(model_dir: str, data_dir: str) -> dict:
    result = subprocess.run(
        command(model_dir, data_dir), cwd=REPO, capture_output=True, text=True
    )
    if result.returncode:
        raise RuntimeError(result.stderr[-2000:])
    with open(os.path.join(model_dir, "metrics.json")) as f:
        return json.load(f)


def weights(model_dir: str) -> list[np.ndarray]:
    from irevnet_tf.models.loading import load_classifier

    return load_classifier(model_dir).get_weights()


def main(argv):
    del argv
    try:
        kill_after = [int(n) for n in _KILL_AFTER.value]
    except ValueError:
        reporting.fail(PROGRAM, f"--kill_after={_KILL_AFTER.value}")
    with tempfile.TemporaryDirectory() as scratch:
        data_dir = os.path.join(scratch, "tfds")
        reference_dir = os.path.join(scratch, "uninterrupted")
        reference = finish(reference_dir, data_dir)
        reference_weights = weights(reference_dir)
        runs = [
            {
                "killed_after_step": None,
                "resumed_at_step": 0,
                "test_accuracy": reference["test_accuracy"],
                "max_abs_weight_difference": 0.0,
            }
        ]
        for step in kill_after:
            model_dir = os.path.join(scratch, f"killed_{step}")
            process = subprocess.Popen(
                command(model_dir, data_dir),
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            while saved_step(model_dir) < step and process.poll() is None:
                time.sleep(0.02)
            process.send_signal(signal.SIGKILL)
            process.wait()
            resumed_at = saved_step(model_dir)
            metrics = finish(model_dir, data_dir)
            difference = max(
                float(np.max(np.abs(a - b)))
                for a, b in zip(reference_weights, weights(model_dir))
            )
            runs.append(
                {
                    "killed_after_step": step,
                    "resumed_at_step": resumed_at,
                    "test_accuracy": metrics["test_accuracy"],
                    "max_abs_weight_difference": difference,
                }
            )
            print(
                f"killed after step {step}, resumed at {resumed_at}: test "
                f"accuracy {metrics['test_accuracy']:.4f} (uninterrupted "
                f"{reference['test_accuracy']:.4f}), largest weight "
                f"difference {difference:.3g}",
                flush=True,
            )
    if _OUTPUT.value:
        reporting.write_json({"runs": runs}, _OUTPUT.value)


if __name__ == "__main__":
    app.run(main)
