r"""Wall time and test accuracy of the README's main training command.

    python -m bench.train_digits --seeds=0,1,2 \
        --output bench/results/train_digits.json

Runs `python -m train.train --seed=S --model_dir=... --export_dir=...` (the
default digits recipe, then the export), each time in a fresh process with a
fresh TensorFlow Datasets directory, as a first-time user would: interpreter
start-up, preparing the digits, training, evaluation and export are all in
the wall time. Reports, per seed, the wall time, the test accuracy and
reconstruction error from metrics.json, and the load average before and
after (the machine must be otherwise idle for a fair figure).
"""

import json
import os
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

from bench import reporting

_SEEDS = flags.DEFINE_list("seeds", ["0"], "Seeds to run, one run each.")
_OUTPUT = flags.DEFINE_string("output", None, "Optional JSON output path.")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_once(seed: int) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        model_dir = os.path.join(scratch, "run")
        command = [
            sys.executable,
            "-m",
            "train.train",
            f"--seed={seed}",
            f"--model_dir={model_dir}",
            f"--data_dir={os.path.join(scratch, 'tfds')}",
            f"--export_dir={os.path.join(scratch, 'serving')}",
        ]
        load_before = os.getloadavg()[0]
        start = time.perf_counter()
        result = subprocess.run(
            command, cwd=REPO, capture_output=True, text=True
        )
        wall = time.perf_counter() - start
        if result.returncode:
            raise RuntimeError(result.stderr[-2000:])
        with open(os.path.join(model_dir, "metrics.json")) as f:
            metrics = json.load(f)
    return {
        "seed": seed,
        "wall_seconds": round(wall, 1),
        "test_accuracy": metrics["test_accuracy"],
        "reconstruction_error": metrics["reconstruction_error"],
        "train_seconds": metrics["train_time_seconds"],
        "load_average_before": load_before,
        "load_average_after": os.getloadavg()[0],
    }


def main(argv):
    del argv
    runs = []
    for seed in _SEEDS.value:
        runs.append(run_once(int(seed)))
        run = runs[-1]
        print(
            f"seed {run['seed']}: {run['wall_seconds']:.1f} s wall, test "
            f"accuracy {run['test_accuracy']:.4f}, reconstruction error "
            f"{run['reconstruction_error']:.2g}, load average "
            f"{run['load_average_before']:.2f} -> "
            f"{run['load_average_after']:.2f}",
            flush=True,
        )
    if _OUTPUT.value:
        report = {"cpus": os.cpu_count(), "runs": runs}
        reporting.write_json(report, _OUTPUT.value)


if __name__ == "__main__":
    app.run(main)
