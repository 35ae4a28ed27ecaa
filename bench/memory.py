r"""Peak memory and step time of training, with and without memory saving.

    python -m bench.memory --output bench/results/memory.json \
        --plot bench/results/memory.png

One training step as `model.fit` runs it (`train_on_batch`: the same
compiled train function, graph mode), for

  * stacks of `--depths` bijective blocks at a fixed width (images
    `--image_size` x `--image_size` x 2 * `--width`, batch `--batch_size`),
  * the `cifar10` preset at each of `--preset_batch_sizes`,

each with plain autodiff (`memory_saving=False`) and with memory-saving
backprop, with XLA off and (`--jit`) on. Peak memory comes from
`tf.config.experimental.get_memory_info` (the CPU allocator's statistics,
which need TF_CPU_ALLOCATOR_USE_BFC=true before TensorFlow starts; this
script sets it, or `GPU:0` where present) after `reset_memory_stats`,
minus what was allocated before the step: activations, gradients and
temporaries, not the weights. Step times are medians over `--repetitions`
steps, plain and memory-saving models alternating so that machine noise
hits both alike. Prints a markdown table, writes JSON and a PNG.
"""

import os
import statistics
import sys
import time

from absl import app
from absl import flags

from bench import reporting

_DEPTHS = flags.DEFINE_list("depths", ["8", "16", "32", "64"], "Stack depths.")
_WIDTH = flags.DEFINE_integer("width", 16, "Channels of each half.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 32, "Stack input size.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Stack batch size.")
_PRESET_BATCH_SIZES = flags.DEFINE_list(
    "preset_batch_sizes", ["32", "128"], "Batch sizes of the cifar10 preset."
)
_JIT = flags.DEFINE_list(
    "jit", ["off", "on"], "XLA settings to measure: off and/or on."
)
_REPETITIONS = flags.DEFINE_integer("repetitions", 5, "Timed steps each.")
_OUTPUT = flags.DEFINE_string("output", None, "JSON output path.")
_PLOT = flags.DEFINE_string("plot", None, "PNG output path.")


def _device():
    import tensorflow as tf

    return "GPU:0" if tf.config.list_physical_devices("GPU") else "CPU:0"


def _build(kind, size, memory_saving, jit_compile):
    import keras

    from irevnet_tf import IRevNet
    from irevnet_tf import IRevNetClassifier

    if kind == "stack":
        backbone = IRevNet(
            stage_depths=[size],
            stage_filters=[_WIDTH.value],
            stage_strides=[1],
            initial_block_size=1,
            image_shape=(
                _IMAGE_SIZE.value,
                _IMAGE_SIZE.value,
                2 * _WIDTH.value,
            ),
            memory_saving=memory_saving,
        )
        model = IRevNetClassifier(backbone, 10)
    else:
        model = IRevNetClassifier.from_preset(
            "cifar10", memory_saving=memory_saving
        )
    model.compile(
        keras.optimizers.SGD(0.1, momentum=0.9),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit_compile,
    )
    return model


def _peak_and_times(models, images, labels, repetitions):
    """Peak step memory of each model, then interleaved step times."""
    import tensorflow as tf

    device = _device()
    peaks = []
    for model in models:
        model.train_on_batch(images, labels)  # trace, compile, create slots
        tf.config.experimental.reset_memory_stats(device)
        before = tf.config.experimental.get_memory_info(device)["current"]
        model.train_on_batch(images, labels)
        peak = tf.config.experimental.get_memory_info(device)["peak"]
        peaks.append(peak - before)
    times = [[] for _ in models]
    for _ in range(repetitions):
        for model, series in zip(models, times):
            start = time.perf_counter()
            model.train_on_batch(images, labels)
            series.append(time.perf_counter() - start)
    return peaks, [statistics.median(series) for series in times]


def measure() -> dict:
    import keras
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    cases = [("stack", int(d), _BATCH_SIZE.value) for d in _DEPTHS.value]
    cases += [("cifar10", 54, int(b)) for b in _PRESET_BATCH_SIZES.value]
    rows = []
    progress = keras.utils.Progbar(
        len(cases) * len(_JIT.value), unit_name="case"
    )
    for jit in _JIT.value:
        for kind, depth, batch_size in cases:
            keras.utils.clear_session(free_memory=True)
            if kind == "stack":
                shape = (_IMAGE_SIZE.value, _IMAGE_SIZE.value, 2 * _WIDTH.value)
            else:
                shape = (32, 32, 3)
            images = tf.constant(
                rng.uniform(size=(batch_size,) + shape).astype("float32")
            )
            labels = tf.constant(np.arange(batch_size) % 10)
            models = [
                _build(kind, depth, memory_saving, jit == "on")
                for memory_saving in (False, True)
            ]
            peaks, times = _peak_and_times(
                models, images, labels, _REPETITIONS.value
            )
            rows.append(
                {
                    "model": kind,
                    "blocks": depth,
                    "batch_size": batch_size,
                    "jit_compile": jit == "on",
                    "plain_peak_bytes": peaks[0],
                    "memory_saving_peak_bytes": peaks[1],
                    "plain_step_seconds": times[0],
                    "memory_saving_step_seconds": times[1],
                }
            )
            progress.add(1)
    return {
        "benchmark": "memory",
        "device": _device(),
        "width": _WIDTH.value,
        "image_size": _IMAGE_SIZE.value,
        "repetitions": _REPETITIONS.value,
        "tensorflow": tf.__version__,
        "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
        "results": rows,
    }


def markdown_table(report: dict) -> str:
    mib = 2.0**20
    lines = [
        "| model | blocks | batch | XLA | plain peak (MiB) | memory-saving "
        "peak (MiB) | ratio | plain step (s) | memory-saving step (s) | "
        "time ratio |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        plain, saving = r["plain_peak_bytes"], r["memory_saving_peak_bytes"]
        t0, t1 = r["plain_step_seconds"], r["memory_saving_step_seconds"]
        lines.append(
            f"| {r['model']} | {r['blocks']} | {r['batch_size']} | "
            f"{'on' if r['jit_compile'] else 'off'} | {plain / mib:.0f} | "
            f"{saving / mib:.0f} | {saving / plain:.2f} | {t0:.2f} | "
            f"{t1:.2f} | {t1 / t0:.2f} |"
        )
    return "\n".join(lines)


def plot(report: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for jit in (False, True):
        rows = [
            r
            for r in report["results"]
            if r["model"] == "stack" and r["jit_compile"] == jit
        ]
        if not rows:
            continue
        depths = [r["blocks"] for r in rows]
        suffix = ", XLA" if jit else ""
        style = "--" if jit else "-"
        for key, label, marker in (
            ("plain_peak_bytes", "plain autodiff", "o"),
            ("memory_saving_peak_bytes", "memory saving", "s"),
        ):
            ax.plot(
                depths,
                [r[key] / 2**20 for r in rows],
                style,
                marker=marker,
                label=label + suffix,
            )
    ax.set_xscale("log", base=2)
    ax.set_xticks(
        sorted(
            {r["blocks"] for r in report["results"] if r["model"] == "stack"}
        )
    )
    ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_xlabel("blocks")
    ax.set_ylabel("peak memory of one training step (MiB)")
    ax.set_title(
        f"i-RevNet training memory, batch {_BATCH_SIZE.value}, "
        f"{report['image_size']}x{report['image_size']}x{2 * report['width']}"
    )
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv):
    if len(argv) > 1:
        _fail(f"Unexpected arguments: {' '.join(argv[1:])}")
    if any(j not in ("off", "on") for j in _JIT.value) or not _JIT.value:
        _fail(f"--jit must hold off and/or on. Received: {_JIT.value}")
    for name, values in (
        ("depths", _DEPTHS.value),
        ("preset_batch_sizes", _PRESET_BATCH_SIZES.value),
    ):
        if not all(v.isdigit() and int(v) > 0 for v in values):
            _fail(f"--{name} must be positive integers. Received: {values}")
    for flag in (_WIDTH, _IMAGE_SIZE, _BATCH_SIZE, _REPETITIONS):
        if flag.value < 1:
            _fail(f"--{flag.name} must be positive. Received: {flag.value}")
    if "tensorflow" in sys.modules:
        _fail("TensorFlow was imported before the allocator could be set.")
    # The CPU allocator keeps statistics only in its BFC variant.
    os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")
    report = measure()
    print(markdown_table(report))
    if _OUTPUT.value:
        reporting.write_json(report, _OUTPUT.value)
        print(f"Wrote {_OUTPUT.value}")
    if _PLOT.value:
        if os.path.dirname(_PLOT.value):
            os.makedirs(os.path.dirname(_PLOT.value), exist_ok=True)
        plot(report, _PLOT.value)
        print(f"Wrote {_PLOT.value}")


def _fail(message: str) -> None:
    reporting.fail("memory", message)


if __name__ == "__main__":
    app.run(main)
