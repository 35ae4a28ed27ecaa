r"""Training memory, step time and exactness across precisions and XLA.

    python -m bench.memory --output bench/results/memory.json \
        --plot bench/results/memory.png

For each dtype policy of `--policies` (float32, and the mixed policies whose
`F` computes in float16 or bfloat16) and each XLA setting of `--jit`:

Memory and time. One training step as `model.fit` runs it
(`train_on_batch`: the same compiled train function, graph mode), for
stacks of `--depths` bijective blocks at a fixed width (images
`--image_size` x `--image_size` x 2 * `--width`, batch `--batch_size`) and
the `cifar10` preset at each of `--preset_batch_sizes`, each with plain
autodiff (`memory_saving=False`) and with memory-saving backprop. Peak
memory comes from `tf.config.experimental.get_memory_info` (the CPU
allocator's statistics, which need TF_CPU_ALLOCATOR_USE_BFC=true before
TensorFlow starts; this script sets it, or `GPU:0` where present) after
`reset_memory_stats`, minus what was allocated before the step:
activations, gradients and temporaries, not the weights. It is the least
of the timed steps' peaks (the executor's scheduling moves single peaks by
a few MiB). Step times are medians over `--repetitions` steps, the models
of a case (plain and memory saving, with and without XLA) alternating so
that machine noise hits all alike.

Exactness. The relative error of `inverse(features(x))` for the `cifar10`
preset in inference mode, with random weights and BatchNorm statistics
away from the identity, on `--accuracy_batch_size` images uniform in
[0, 1]; and the relative distance of the loss gradient (all trainable
variables) to the float64 gradient of the same weights, for plain autodiff
and memory saving, on the `cifar10` layout with `--gradient_depth` blocks
per stage (32x32 images, batch `--accuracy_batch_size`, no dropout), over
`--gradient_seeds` weight seeds. In these untrained layouts any two
float32 computations differ by about 1%: the float64 gradient, not plain
autodiff, tells an exact method from a drifting one.

Prints markdown tables, writes JSON and a PNG (peak memory of the stacks
against depth, one panel per policy).
"""

import os
import statistics
import sys
import time

from absl import app
from absl import flags

from bench import reporting

_POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")

_DEPTHS = flags.DEFINE_list("depths", ["8", "16", "32", "64"], "Stack depths.")
_WIDTH = flags.DEFINE_integer("width", 16, "Channels of each half.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 32, "Stack input size.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Stack batch size.")
_PRESET_BATCH_SIZES = flags.DEFINE_list(
    "preset_batch_sizes", ["32", "128"], "Batch sizes of the cifar10 preset."
)
_POLICIES_FLAG = flags.DEFINE_list(
    "policies", list(_POLICIES), f"Dtype policies, of {', '.join(_POLICIES)}."
)
_JIT = flags.DEFINE_list(
    "jit", ["off", "on"], "XLA settings to measure: off and/or on."
)
_REPETITIONS = flags.DEFINE_integer("repetitions", 5, "Timed steps each.")
_ACCURACY_BATCH_SIZE = flags.DEFINE_integer(
    "accuracy_batch_size", 8, "Batch of the inverse and gradient checks."
)
_GRADIENT_DEPTH = flags.DEFINE_integer(
    "gradient_depth", 6, "Blocks per stage of the gradient check's layout."
)
_GRADIENT_SEEDS = flags.DEFINE_integer(
    "gradient_seeds", 2, "Weight seeds of the gradient check (0 for none)."
)
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
    """Peak step memory of each model, and interleaved step times."""
    import tensorflow as tf

    device = _device()
    for model in models:
        model.train_on_batch(images, labels)  # trace, compile, create slots
    peaks = [[] for _ in models]
    times = [[] for _ in models]
    for _ in range(repetitions):
        for model, peak, series in zip(models, peaks, times):
            tf.config.experimental.reset_memory_stats(device)
            before = tf.config.experimental.get_memory_info(device)["current"]
            start = time.perf_counter()
            model.train_on_batch(images, labels)
            series.append(time.perf_counter() - start)
            after = tf.config.experimental.get_memory_info(device)["peak"]
            peak.append(after - before)
    return [min(p) for p in peaks], [statistics.median(t) for t in times]


def _cases():
    """The (model kind, blocks, batch size) measured under each policy."""
    cases = [("stack", int(d), _BATCH_SIZE.value) for d in _DEPTHS.value]
    return cases + [("cifar10", 54, int(b)) for b in _PRESET_BATCH_SIZES.value]


def _memory_rows(policy, progress):
    """Memory and time rows of every case under `policy`, per XLA setting.

    `progress` (a `keras.utils.Progbar`) advances by one per case.

    The models of one case (plain and memory saving, with and without XLA)
    take their timed steps in turn, so that load changes hit all alike.
    """
    import keras
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    variants = [(jit, ms) for jit in _JIT.value for ms in (False, True)]
    rows = []
    for kind, depth, batch_size in _cases():
        keras.utils.clear_session(free_memory=True)
        keras.mixed_precision.set_global_policy(policy)
        if kind == "stack":
            shape = (_IMAGE_SIZE.value, _IMAGE_SIZE.value, 2 * _WIDTH.value)
        else:
            shape = (32, 32, 3)
        images = tf.constant(
            rng.uniform(size=(batch_size,) + shape).astype("float32")
        )
        labels = tf.constant(np.arange(batch_size) % 10)
        models = [_build(kind, depth, ms, jit == "on") for jit, ms in variants]
        peaks, times = _peak_and_times(
            models, images, labels, _REPETITIONS.value
        )
        measured = dict(zip(variants, zip(peaks, times)))
        for jit in _JIT.value:
            (plain_peak, plain_time) = measured[jit, False]
            (saving_peak, saving_time) = measured[jit, True]
            rows.append(
                {
                    "policy": policy,
                    "model": kind,
                    "blocks": depth,
                    "batch_size": batch_size,
                    "jit_compile": jit == "on",
                    "plain_peak_bytes": plain_peak,
                    "memory_saving_peak_bytes": saving_peak,
                    "plain_step_seconds": plain_time,
                    "memory_saving_step_seconds": saving_time,
                }
            )
        progress.add(1)
    return rows


def _accuracy_row(policy, jit):
    """Inverse error and gradient distances to float64 under `policy`."""
    import keras
    import numpy as np
    import tensorflow as tf

    from irevnet_tf import IRevNet
    from irevnet_tf import IRevNetClassifier
    from irevnet_tf.testing.gradient_agreement import loss_gradients
    from irevnet_tf.testing.test_case import randomize_batch_norm
    from irevnet_tf.testing.test_case import relative_error

    keras.utils.clear_session(free_memory=True)
    keras.mixed_precision.set_global_policy(policy)
    batch = _ACCURACY_BATCH_SIZE.value
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    backbone = IRevNet.from_preset("cifar10")
    randomize_batch_norm(backbone)
    images = rng.uniform(size=(batch, 32, 32, 3)).astype("float32")
    round_trip = tf.function(
        lambda x: backbone.inverse(backbone(x, training=False)),
        jit_compile=jit == "on",
    )
    row = {
        "policy": policy,
        "jit_compile": jit == "on",
        "inverse_relative_error": relative_error(round_trip(images), images),
        "gradient_errors": [],
    }
    layout = dict(
        stage_depths=[_GRADIENT_DEPTH.value] * 3,
        stage_filters=[16, 64, 256],
        stage_strides=[1, 2, 2],
        initial_block_size=1,
        image_shape=(32, 32, 3),
    )
    compute = tf.function(loss_gradients, jit_compile=jit == "on")
    labels = tf.constant(np.arange(batch) % 10)
    for seed in range(_GRADIENT_SEEDS.value):
        keras.utils.clear_session(free_memory=True)
        keras.mixed_precision.set_global_policy(policy)
        keras.utils.set_random_seed(seed)
        reference = IRevNetClassifier(
            IRevNet(memory_saving=False, dtype="float64", **layout),
            10,
            dtype="float64",
        )
        randomize_batch_norm(reference, seed)
        expected = tf.function(loss_gradients)(
            reference, tf.constant(images, "float64"), labels
        )
        errors = {"seed": seed}
        for memory_saving in (False, True):
            model = IRevNetClassifier(
                IRevNet(memory_saving=memory_saving, **layout), 10
            )
            model.set_weights(reference.get_weights())
            actual = compute(model, tf.constant(images), labels)
            key = "memory_saving" if memory_saving else "plain"
            errors[key] = relative_error(actual, expected)
        row["gradient_errors"].append(errors)
    return row


def measure() -> dict:
    import keras
    import tensorflow as tf

    rows, accuracy = [], []
    # One step per case, and one per accuracy row.
    progress = keras.utils.Progbar(
        len(_POLICIES_FLAG.value) * (len(_cases()) + len(_JIT.value)),
        unit_name="measurement",
    )
    previous = keras.mixed_precision.global_policy()
    try:
        for policy in _POLICIES_FLAG.value:
            rows += _memory_rows(policy, progress)
            for jit in _JIT.value:
                accuracy.append(_accuracy_row(policy, jit))
                progress.add(1)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    return {
        "benchmark": "memory",
        "device": _device(),
        "width": _WIDTH.value,
        "image_size": _IMAGE_SIZE.value,
        "batch_size": _BATCH_SIZE.value,
        "repetitions": _REPETITIONS.value,
        "accuracy_batch_size": _ACCURACY_BATCH_SIZE.value,
        "gradient_depth": _GRADIENT_DEPTH.value,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
        "results": rows,
        "accuracy": accuracy,
    }


def markdown_table(report: dict) -> str:
    mib = 2.0**20
    lines = [
        "| policy | model | blocks | batch | XLA | plain peak (MiB) | "
        "memory-saving peak (MiB) | ratio | plain step (s) | "
        "memory-saving step (s) | time ratio |",
        "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        plain, saving = r["plain_peak_bytes"], r["memory_saving_peak_bytes"]
        t0, t1 = r["plain_step_seconds"], r["memory_saving_step_seconds"]
        lines.append(
            f"| {r['policy']} | {r['model']} | {r['blocks']} | "
            f"{r['batch_size']} | {'on' if r['jit_compile'] else 'off'} | "
            f"{plain / mib:.0f} | {saving / mib:.0f} | {saving / plain:.2f} | "
            f"{t0:.2f} | {t1:.2f} | {t1 / t0:.2f} |"
        )
    lines += [
        "",
        "| policy | XLA | inverse error | gradient error vs float64: plain | "
        "memory saving | ratio |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in report["accuracy"]:
        errors = r["gradient_errors"]
        plain = ", ".join(f"{e['plain']:.2e}" for e in errors)
        saving = ", ".join(f"{e['memory_saving']:.2e}" for e in errors)
        ratio = ", ".join(
            f"{e['memory_saving'] / e['plain']:.2f}" for e in errors
        )
        lines.append(
            f"| {r['policy']} | {'on' if r['jit_compile'] else 'off'} | "
            f"{r['inverse_relative_error']:.1e} | {plain} | {saving} | "
            f"{ratio} |"
        )
    return "\n".join(lines)


def plot(report: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stacks = [r for r in report["results"] if r["model"] == "stack"]
    policies = [p for p in _POLICIES if any(r["policy"] == p for r in stacks)]
    if not policies:
        return
    fig, axes = plt.subplots(
        1, len(policies), figsize=(5 * len(policies), 4), squeeze=False
    )
    for ax, policy in zip(axes[0], policies):
        for jit in (False, True):
            rows = [
                r
                for r in stacks
                if r["policy"] == policy and r["jit_compile"] == jit
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
        ax.set_xticks(sorted({r["blocks"] for r in stacks}))
        ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.set_xlabel("blocks")
        ax.set_ylabel("peak memory of one training step (MiB)")
        ax.set_title(f"{policy}, batch {report['batch_size']}")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(
        "i-RevNet training memory, "
        f"{report['image_size']}x{report['image_size']}x{2 * report['width']}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv):
    if len(argv) > 1:
        _fail(f"Unexpected arguments: {' '.join(argv[1:])}")
    if any(j not in ("off", "on") for j in _JIT.value) or not _JIT.value:
        _fail(f"--jit must hold off and/or on. Received: {_JIT.value}")
    policies = _POLICIES_FLAG.value
    if not policies or any(p not in _POLICIES for p in policies):
        _fail(
            f"--policies must hold some of {', '.join(_POLICIES)}. "
            f"Received: {policies}"
        )
    for name, values in (
        ("depths", _DEPTHS.value),
        ("preset_batch_sizes", _PRESET_BATCH_SIZES.value),
    ):
        if not all(v.isdigit() and int(v) > 0 for v in values):
            _fail(f"--{name} must be positive integers. Received: {values}")
    for flag in (
        _WIDTH,
        _IMAGE_SIZE,
        _BATCH_SIZE,
        _REPETITIONS,
        _ACCURACY_BATCH_SIZE,
        _GRADIENT_DEPTH,
    ):
        if flag.value < 1:
            _fail(f"--{flag.name} must be positive. Received: {flag.value}")
    if _GRADIENT_SEEDS.value < 0:
        _fail(
            "--gradient_seeds must not be negative. "
            f"Received: {_GRADIENT_SEEDS.value}"
        )
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
