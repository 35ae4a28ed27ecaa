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
`--repetitions` (the JSON keeps every repetition).

`--pytorch` (on when PyTorch is installed) times the authors' model in
PyTorch in the same run: `bench.pytorch_reference.PyTorchIRevNet`, a twin of
their code with their layers, layout (NCHW) and state_dict keys, holding the
same weights as the Keras model (the JSON records how closely the logits
agree), under `torch.inference_mode()` with as many threads as TensorFlow;
also in channels-last layout, PyTorch's faster CPU layout that the authors'
code does not use. Every repetition times each implementation and direction
in turn (in a rotating order), so that changes of the machine's load over
the run affect all of them alike; the ratio columns are medians of the
per-repetition ratios to PyTorch NCHW. Absolute images/s move with the
machine and its load, which is why the comparison runs side by side.
Run it on a quiet machine: PyTorch's OpenMP threads spin at barriers waiting
for a descheduled peer, so other processes' load slows it far more than
TensorFlow. With other processes busy on these 2 cores, the twin's CIFAR-10
forward fell from 75-95 to 8 images/s (38 with OMP_WAIT_POLICY=passive, 33
with one thread), TensorFlow's by a third. The table prints the load average
and how many cores other processes kept busy while the batches ran (the JSON
has it per repetition: /proc/stat minus this process's CPU time).

`--onednn=on` (the default) sets TF_ENABLE_ONEDNN_OPTS=1: TensorFlow enables
its oneDNN kernels by default only on CPUs with AVX-512 or AMX, and on these
AVX2 machines the default Eigen convolutions are 1.5 to 2 times slower.
Convolutions take about 88% of the op time (TensorFlow's graph optimiser fuses
two of each block's three BatchNorms into them), the remaining BatchNorm 6%.
"""

import copy
import importlib.util
import os
import platform
import statistics
import sys
import time

from absl import app
from absl import flags

from bench import reporting

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
_PYTORCH = flags.DEFINE_bool(
    "pytorch",
    importlib.util.find_spec("torch") is not None,
    "Also time the authors' model in PyTorch (bench.pytorch_reference), "
    "interleaved with TensorFlow. On by default when PyTorch is installed.",
)
_OUTPUT = flags.DEFINE_string(
    "output", None, "Where to write the results as JSON (optional)."
)


# A pause before each timed repetition, so that threads still spinning after
# the previous implementation's work (OpenMP, Eigen) do not slow the next.
_SETTLE_SECONDS = 0.1


def measure(
    preset: str = "cifar10",
    batch_size: int = 64,
    modes=tuple(_MODES),
    repetitions: int = 5,
    batches_per_repetition: int = 4,
    warmup_batches: int = 2,
    threads: int = 0,
    pytorch: bool = False,
) -> dict:
    """Times forward and inverse passes; returns a JSON-ready dict."""
    import keras
    import numpy as np
    import tensorflow as tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)

    from irevnet_tf import IRevNetClassifier
    from irevnet_tf.reconstruction_error import relative_error

    # Other processes' load: PyTorch's OpenMP threads suffer from it far
    # more than TensorFlow's thread pool (they spin at barriers, waiting for
    # a descheduled peer).
    load_before = os.getloadavg()
    model = IRevNetClassifier.from_preset(preset)
    image_shape = tuple(model.backbone.image_shape)
    rng = np.random.default_rng(0)
    images = tf.constant(
        rng.uniform(size=(batch_size,) + image_shape).astype("float32")
    )
    if pytorch:
        # Before anything reads the weights: the Keras model takes the twin's.
        twin, constructor = _pytorch_twin(model, threads)
    features = model.features(images)

    # (row, direction, run one batch and wait for the result)
    timers = []
    results = []
    for mode in modes:
        jit = _MODES[mode]
        forward = tf.function(
            lambda x: model(x, training=False), jit_compile=jit
        )
        inverse = tf.function(
            lambda y: model.inverse(y, training=False), jit_compile=jit
        )
        row = {"framework": "tensorflow", "mode": mode, "jit_compile": jit}
        timers.append((row, "forward", lambda f=forward: f(images).numpy()))
        timers.append((row, "inverse", lambda f=inverse: f(features).numpy()))
        results.append((row, inverse))

    pytorch_results = []
    if pytorch:
        reference_logits = model(images, training=False)
        for memory_format in ("nchw", "channels_last"):
            row, runs, outputs = _pytorch_runs(twin, images, memory_format)
            row["logits_relative_difference_to_tensorflow"] = relative_error(
                outputs["logits"], reference_logits
            )
            row["reconstruction_relative_error"] = relative_error(
                outputs["reconstruction"], outputs["images"]
            )
            timers.extend((row, direction, run) for direction, run in runs)
            pytorch_results.append(row)

    for row, direction, run in timers:
        start = time.perf_counter()
        run()  # Tracing (and XLA compilation); oneDNN primitive creation.
        row[f"{direction}_first_call_seconds"] = time.perf_counter() - start
        for _ in range(warmup_batches):
            run()
        row[f"{direction}_images_per_second_all"] = []
        row[f"{direction}_other_processes_cores_all"] = []
    for repetition in range(repetitions):
        # A rotating order: no implementation always runs after the same one.
        shift = repetition % len(timers)
        for row, direction, run in timers[shift:] + timers[:shift]:
            time.sleep(_SETTLE_SECONDS)
            cpu_before = _cpu_seconds()
            start = time.perf_counter()
            for _ in range(batches_per_repetition):
                run()
            elapsed = time.perf_counter() - start
            cpu_after = _cpu_seconds()
            row[f"{direction}_images_per_second_all"].append(
                batch_size * batches_per_repetition / elapsed
            )
            row[f"{direction}_other_processes_cores_all"].append(
                _other_processes_cores(cpu_before, cpu_after, elapsed)
            )
    for row, direction, _ in timers:
        row[f"{direction}_images_per_second"] = statistics.median(
            row[f"{direction}_images_per_second_all"]
        )
        others = row[f"{direction}_other_processes_cores_all"]
        row[f"{direction}_other_processes_cores"] = (
            None if None in others else statistics.median(others)
        )

    tf_results = []
    for row, inverse in results:
        # A sanity check that the compiled inverse is the inverse.
        row["reconstruction_relative_error"] = relative_error(
            inverse(features), images
        )
        tf_results.append(row)
    if pytorch:
        baseline = pytorch_results[0]
        for row in tf_results + pytorch_results:
            for direction in ("forward", "inverse"):
                ratios = [
                    a / b
                    for a, b in zip(
                        row[f"{direction}_images_per_second_all"],
                        baseline[f"{direction}_images_per_second_all"],
                    )
                ]
                row[f"{direction}_vs_pytorch_nchw"] = statistics.median(ratios)
                row[f"{direction}_vs_pytorch_nchw_all"] = ratios

    threading = tf.config.threading
    report = {
        "benchmark": "inference",
        "preset": preset,
        "batch_size": batch_size,
        "image_shape": list(image_shape),
        "parameters": model.count_params(),
        "repetitions": repetitions,
        "batches_per_repetition": batches_per_repetition,
        "warmup_batches": warmup_batches,
        "results": tf_results,
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
            # 1, 5 and 15 minute load averages (as `uptime` prints them).
            "load_average_before": list(load_before),
            "load_average_after": list(os.getloadavg()),
        },
    }
    if pytorch:
        import torch

        report["pytorch"] = {
            "model": "bench.pytorch_reference.PyTorchIRevNet",
            "constructor": constructor,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
            "results": pytorch_results,
        }
    return report


def _cpu_seconds():
    """CPU seconds used by all processes and by this one, or None.

    All processes' from /proc/stat (Linux): user, nice, system, irq,
    softirq and steal time, the last being time that other virtual machines
    took from ours.
    """
    try:
        with open("/proc/stat") as f:
            ticks = [int(value) for value in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = ticks
    busy = user + nice + system + irq + softirq + steal
    own = os.times()
    return busy / os.sysconf("SC_CLK_TCK"), own.user + own.system


def _other_processes_cores(before, after, elapsed):
    """Cores that other processes kept busy, on average, during `elapsed`."""
    if before is None or after is None:
        return None
    busy = after[0] - before[0]
    own = after[1] - before[1]
    # /proc/stat counts in ticks of 10 ms: small negatives are rounding.
    return max(0.0, (busy - own) / elapsed)


def _pytorch_twin(model, threads):
    """The authors' model in PyTorch; `model` takes over its weights."""
    import torch

    from bench import pytorch_reference
    from irevnet_tf import convert

    try:
        constructor = pytorch_reference.authors_constructor(
            model.backbone.get_config(), model.num_classes
        )
    except ValueError as error:
        raise ValueError(
            f"--pytorch: {error}. Pass --nopytorch to time TensorFlow only."
        ) from None
    # TensorFlow's default is one thread per core.
    torch.set_num_threads(threads or os.cpu_count())
    torch.manual_seed(0)
    twin = pytorch_reference.PyTorchIRevNet(**constructor)
    pytorch_reference.randomize_batch_norms(
        twin, torch.Generator().manual_seed(1)
    )
    twin.eval()
    # The converter maps the authors' keys onto a model built like `model`.
    converted = convert.convert_state_dict(
        {key: value.numpy() for key, value in twin.state_dict().items()},
        constructor,
    )
    model.set_weights(converted.get_weights())
    return twin, constructor


def _pytorch_runs(twin, images, memory_format):
    """A result row, timed calls and outputs of the twin in one layout."""
    import numpy as np
    import torch

    layout = {
        "nchw": torch.contiguous_format,
        "channels_last": torch.channels_last,
    }[memory_format]
    net = copy.deepcopy(twin).to(memory_format=layout)
    x = torch.from_numpy(np.transpose(images.numpy(), (0, 3, 1, 2)))
    x = x.contiguous(memory_format=layout)
    with torch.inference_mode():
        features = net.features(x)
        outputs = {
            "images": x.numpy(),
            "logits": net(x).numpy(),
            "reconstruction": net.inverse(features).numpy(),
        }

    def forward():
        with torch.inference_mode():
            net(x)

    def inverse():
        with torch.inference_mode():
            net.inverse(features)

    row = {"framework": "pytorch", "memory_format": memory_format}
    return row, (("forward", forward), ("inverse", inverse)), outputs


def markdown_table(report: dict) -> str:
    pytorch = report.get("pytorch")
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
    ]
    header = [
        "implementation",
        "forward (images -> logits)",
        "inverse (features -> images)",
    ]
    if pytorch:
        header += ["forward / PyTorch NCHW", "inverse / PyTorch NCHW"]
    header.append("reconstruction rel. error")
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|---" + "|---:" * (len(header) - 1) + "|")

    names = {
        "graph": "TensorFlow, tf.function",
        "xla": "TensorFlow, tf.function, jit_compile=True",
        "nchw": "PyTorch, NCHW (the authors' layout)",
        "channels_last": "PyTorch, channels-last",
    }
    rows = list(report["results"])
    if pytorch:
        rows += pytorch["results"]
    for row in rows:
        cells = [
            names[row.get("mode") or row.get("memory_format")],
            f"{row['forward_images_per_second']:.1f}",
            f"{row['inverse_images_per_second']:.1f}",
        ]
        if pytorch:
            cells += [
                f"{row['forward_vs_pytorch_nchw']:.2f}",
                f"{row['inverse_vs_pytorch_nchw']:.2f}",
            ]
        cells.append(f"{row['reconstruction_relative_error']:.1e}")
        lines.append("| " + " | ".join(cells) + " |")
    if pytorch:
        difference = max(
            row["logits_relative_difference_to_tensorflow"]
            for row in pytorch["results"]
        )
        lines += [
            "",
            f"PyTorch {pytorch['torch']}, {pytorch['threads']} threads, "
            "torch.inference_mode(), eager; the same weights as TensorFlow "
            f"(logits agree to {difference:.1e} relative). Implementations "
            "alternate within each repetition; ratios are medians of the "
            "per-repetition ratios.",
        ]
    environment = report["environment"]
    others = [
        cores
        for row in rows
        for direction in ("forward", "inverse")
        for cores in row[f"{direction}_other_processes_cores_all"]
        if cores is not None
    ]
    lines += [
        "",
        "Load average (1 min) before and after: "
        f"{environment['load_average_before'][0]:.2f}, "
        f"{environment['load_average_after'][0]:.2f}.",
    ]
    if others:
        lines[-1] += (
            " Other processes kept a median of "
            f"{statistics.median(others):.2f} cores (at most "
            f"{max(others):.2f}) busy during the timed batches."
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
    if _PYTORCH.value and importlib.util.find_spec("torch") is None:
        _fail(
            "--pytorch needs PyTorch (pip install torch). Received: "
            "--pytorch without torch installed"
        )
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
            pytorch=_PYTORCH.value,
        )
    except ValueError as error:
        _fail(str(error))
    print(markdown_table(report))
    if _OUTPUT.value:
        reporting.write_json(report, _OUTPUT.value)
        print(f"\nWrote {_OUTPUT.value}")


def _fail(message: str) -> None:
    reporting.fail("inference", message)


if __name__ == "__main__":
    app.run(main)
