r"""Inference throughput of an i-RevNet classifier: forward and inverse.

    python -m bench.inference --output bench/results/inference.json

Builds `IRevNetClassifier.from_preset(--preset)` (random weights: speed does
not depend on them) and measures images per second at `--batch_size` for

  * forward: images -> logits (backbone and head, as the authors' `forward`),
  * inverse: features -> images (`model.inverse`),

in inference mode (`training=False`), each compiled with `tf.function`, with
and without XLA (`jit_compile=True`). Tracing, compilation and
`--warmup_batches` calls are excluded; each repetition times
`--batches_per_repetition` calls, and the table reports the median over
`--repetitions` (the JSON keeps every repetition). For comparison, the
authors' PyTorch code does about 130 (forward) and 127 (inverse) images/s
for the CIFAR-10 model at batch 64 on this project's 2-core machines.

`--onednn=on` (the default) sets TF_ENABLE_ONEDNN_OPTS=1: TensorFlow enables
its oneDNN kernels by default only on CPUs with AVX-512 or AMX, and on these
AVX2 machines the default Eigen convolutions are 1.5 to 2 times slower.
Convolutions take about 85% of the op time, BatchNorm (an unfused multiply and
add in inference) about 10%.
"""

import json
import os
import platform
import statistics
import sys
import time

from absl import app
from absl import flags

_MODES = {"graph": False, "xla": True}

_PRESET = flags.DEFINE_string("preset", "cifar10", "Model preset.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Images per call.")
_REPETITIONS = flags.DEFINE_integer(
    "repetitions", 5, "Timed repetitions; the median is reported."
)
_BATCHES = flags.DEFINE_integer(
    "batches_per_repetition", 4, "Calls timed together in one repetition."
)
_WARMUP = flags.DEFINE_integer(
    "warmup_batches", 2, "Untimed calls after compilation."
)
_MODES_FLAG = flags.DEFINE_list(
    "modes",
    list(_MODES),
    "Compilation modes: 'graph' (tf.function) and/or 'xla' "
    "(tf.function with jit_compile=True).",
)
_ONEDNN = flags.DEFINE_enum(
    "onednn",
    "on",
    ["on", "off", "default"],
    "Sets TF_ENABLE_ONEDNN_OPTS before TensorFlow loads. TensorFlow turns its "
    "oneDNN kernels on by default only on CPUs with AVX-512 or AMX; on the "
    "AVX2 machines of this project they make convolutions much faster.",
)
_THREADS = flags.DEFINE_integer(
    "threads",
    0,
    "TensorFlow intra-op and inter-op threads; 0 for its default (one per "
    "core). 1 gives a per-core figure that other processes disturb less.",
)
_OUTPUT = flags.DEFINE_string(
    "output", None, "Where to write the results as JSON (optional)."
)


def measure(
    preset: str = "cifar10",
    batch_size: int = 64,
    modes=tuple(_MODES),
    repetitions: int = 5,
    batches_per_repetition: int = 4,
    warmup_batches: int = 2,
    threads: int = 0,
) -> dict:
    """Times forward and inverse passes; returns a JSON-ready dict."""
    import keras
    import numpy as np
    import tensorflow as tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)

    from irevnet_tf import IRevNetClassifier
    from irevnet_tf.testing.test_case import relative_error

    model = IRevNetClassifier.from_preset(preset)
    image_shape = tuple(model.backbone.image_shape)
    rng = np.random.default_rng(0)
    images = tf.constant(
        rng.uniform(size=(batch_size,) + image_shape).astype("float32")
    )
    features = model.features(images)

    results = []
    for mode in modes:
        jit = _MODES[mode]
        functions = {
            "forward": (
                tf.function(
                    lambda x: model(x, training=False), jit_compile=jit
                ),
                images,
            ),
            "inverse": (
                tf.function(
                    lambda y: model.inverse(y, training=False),
                    jit_compile=jit,
                ),
                features,
            ),
        }
        row = {"mode": mode, "jit_compile": jit}
        for direction, (function, inputs) in functions.items():
            start = time.perf_counter()
            function(inputs).numpy()  # Tracing (and XLA compilation).
            row[f"{direction}_first_call_seconds"] = time.perf_counter() - start
            for _ in range(warmup_batches):
                function(inputs).numpy()
            rates = []
            for _ in range(repetitions):
                start = time.perf_counter()
                for _ in range(batches_per_repetition):
                    function(inputs).numpy()  # Waits for the result.
                elapsed = time.perf_counter() - start
                rates.append(batch_size * batches_per_repetition / elapsed)
            row[f"{direction}_images_per_second"] = statistics.median(rates)
            row[f"{direction}_images_per_second_all"] = rates
        # A sanity check that the compiled inverse is the inverse.
        row["reconstruction_relative_error"] = relative_error(
            functions["inverse"][0](features), images
        )
        results.append(row)

    threading = tf.config.threading
    return {
        "benchmark": "inference",
        "preset": preset,
        "batch_size": batch_size,
        "image_shape": list(image_shape),
        "parameters": model.count_params(),
        "repetitions": repetitions,
        "batches_per_repetition": batches_per_repetition,
        "warmup_batches": warmup_batches,
        "results": results,
        "environment": {
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpu_count": os.cpu_count(),
            "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
            # 0 means TensorFlow's default (one per core).
            "intra_op_threads": threading.get_intra_op_parallelism_threads(),
            "inter_op_threads": threading.get_inter_op_parallelism_threads(),
        },
    }


def markdown_table(report: dict) -> str:
    lines = [
        f"i-RevNet `{report['preset']}` inference, batch "
        f"{report['batch_size']}, "
        f"{report['environment']['intra_op_threads'] or 'default'} threads, "
        "TF_ENABLE_ONEDNN_OPTS="
        f"{report['environment']['TF_ENABLE_ONEDNN_OPTS'] or 'unset'}, "
        "images/s (median of "
        f"{report['repetitions']} x {report['batches_per_repetition']} "
        "batches):",
        "",
        "| compilation | forward (images -> logits) | inverse (features -> "
        "images) | reconstruction rel. error |",
        "|---|---:|---:|---:|",
    ]
    names = {"graph": "tf.function", "xla": "tf.function, jit_compile=True"}
    for row in report["results"]:
        lines.append(
            f"| {names[row['mode']]} | {row['forward_images_per_second']:.1f} "
            f"| {row['inverse_images_per_second']:.1f} "
            f"| {row['reconstruction_relative_error']:.1e} |"
        )
    return "\n".join(lines)


def main(argv):
    if len(argv) > 1:
        _fail(f"Unexpected arguments: {' '.join(argv[1:])}")
    unknown = [m for m in _MODES_FLAG.value if m not in _MODES]
    if unknown or not _MODES_FLAG.value:
        _fail(
            f"--modes must be a comma-separated subset of {list(_MODES)}. "
            f"Received: --modes={','.join(_MODES_FLAG.value)}"
        )
    if _THREADS.value < 0:
        _fail(f"--threads must be >= 0. Received: {_THREADS.value}")
    for flag in (_BATCH_SIZE, _REPETITIONS, _BATCHES):
        if flag.value < 1:
            _fail(f"--{flag.name} must be positive. Received: {flag.value}")
    if "tensorflow" in sys.modules:
        _fail("TensorFlow was imported before --onednn could take effect.")
    if _ONEDNN.value != "default":
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = (
            "1" if _ONEDNN.value == "on" else "0"
        )
    try:
        report = measure(
            preset=_PRESET.value,
            batch_size=_BATCH_SIZE.value,
            modes=_MODES_FLAG.value,
            repetitions=_REPETITIONS.value,
            batches_per_repetition=_BATCHES.value,
            warmup_batches=_WARMUP.value,
            threads=_THREADS.value,
        )
    except ValueError as error:
        _fail(str(error))
    print(markdown_table(report))
    if _OUTPUT.value:
        directory = os.path.dirname(_OUTPUT.value)
        if directory:
            os.makedirs(directory, exist_ok=True)
        with open(_OUTPUT.value, "w") as f:
            json.dump(report, f, indent=2)
        print(f"\nWrote {_OUTPUT.value}")


def _fail(message: str) -> None:
    message = " ".join(message.split())
    print(f"inference: error: {message}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    app.run(main)
