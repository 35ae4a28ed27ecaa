r"""Speed of the exported serving models: forward and inverse SavedModels.

    python -m bench.serving --output bench/results/serving.json
    python -m bench.serving --export_dir /srv/irevnet   # an existing export

Without `--export_dir`, exports `IRevNetClassifier.from_preset(--preset)`
(random weights: speed does not depend on them) with `export_lib` to a
temporary directory. Then loads the latest version of both SavedModels and
measures, for each runtime,

  * throughput: images/s at `--batch_size` (64), the median over
    `--repetitions` of `--batches_per_repetition` calls each;
  * latency: milliseconds per call at batch 1, the median over
    `--latency_calls` calls;

with `--warmup_calls` untimed calls first. Runtimes: "function" runs the
signatures from `tf.saved_model.load` (TensorFlow 2); "session" runs them
with `Session.run` on the loaded MetaGraph, as `tensorflow_model_server`
does (without its network and serialisation). `python -m bench.inference
--pytorch` compares the same model with the authors' PyTorch code side by
side. TensorFlow turns its oneDNN kernels on by default only on CPUs with
AVX-512 VNNI/BF16 or AMX; compare both with
`TF_ENABLE_ONEDNN_OPTS=1 python -m bench.serving ...` and `=0`.
"""

import os
import platform
import statistics
import tempfile
import time

from absl import app
from absl import flags
from absl import logging

from bench import reporting

_RUNTIMES = ("function", "session")

_EXPORT_DIR = flags.DEFINE_string(
    "export_dir",
    None,
    "An export_lib output directory to benchmark (its latest versions). "
    "Default: export --preset to a temporary directory.",
)
_PRESET = flags.DEFINE_string(
    "preset", "cifar10", "Model preset to export when --export_dir is unset."
)
_BATCH_SIZE = flags.DEFINE_integer(
    "batch_size", 64, "Images per call for throughput."
)
_REPETITIONS = flags.DEFINE_integer(
    "repetitions", 5, "Timed throughput repetitions; the median is reported."
)
_BATCHES = flags.DEFINE_integer(
    "batches_per_repetition", 4, "Calls timed together in one repetition."
)
_LATENCY_CALLS = flags.DEFINE_integer(
    "latency_calls", 50, "Timed batch-1 calls; the median is reported."
)
_WARMUP = flags.DEFINE_integer(
    "warmup_calls", 3, "Untimed calls before each measurement."
)
_RUNTIMES_FLAG = flags.DEFINE_list(
    "runtimes",
    list(_RUNTIMES),
    "'function' (tf.saved_model.load) and/or 'session' (Session.run, as the "
    "model server).",
)
_OUTPUT = flags.DEFINE_string(
    "output", None, "Where to write the results as JSON (optional)."
)


def latest_exports(output_dir: str) -> tuple[str, str]:
    """The forward and inverse SavedModels of the highest complete pair."""
    from export import versions
    from irevnet_tf.serving import signatures

    names = [signatures.FORWARD_NAME, signatures.INVERSE_NAME]
    version = versions.latest_pair(output_dir, names)
    if version is None:
        raise ValueError(
            "No exported version holds both "
            f"{' and '.join(names)} (expected numbered directories in "
            f"{', '.join(os.path.join(output_dir, n) for n in names)}). "
            f"Received: --export_dir={output_dir}"
        )
    return tuple(os.path.join(output_dir, n, str(version)) for n in names)


def function_runner(export_dir: str, input_name: str, output_name: str):
    """Calls the `serving_default` signature of `tf.saved_model.load`."""
    import tensorflow as tf

    signature = tf.saved_model.load(export_dir).signatures["serving_default"]

    def run(value):
        # .numpy() waits for the result.
        return signature(**{input_name: tf.constant(value)})[
            output_name
        ].numpy()

    return run


def session_runner(export_dir: str, input_name: str, output_name: str):
    """Runs `serving_default` with `Session.run`, as the model server does."""
    import tensorflow as tf

    session = tf.compat.v1.Session(graph=tf.Graph())
    with session.graph.as_default():
        meta_graph = tf.compat.v1.saved_model.load(
            session, [tf.saved_model.SERVING], export_dir
        )
    signature = meta_graph.signature_def["serving_default"]
    feed = signature.inputs[input_name].name
    fetch = signature.outputs[output_name].name

    def run(value):
        return session.run(fetch, feed_dict={feed: value})

    return run


def throughput(run, inputs, repetitions, batches_per_repetition, warmup):
    """Images/s of each repetition."""
    for _ in range(warmup):
        run(inputs)
    rates = []
    for _ in range(repetitions):
        start = time.perf_counter()
        for _ in range(batches_per_repetition):
            run(inputs)
        elapsed = time.perf_counter() - start
        rates.append(len(inputs) * batches_per_repetition / elapsed)
    return rates


def latencies(run, inputs, calls, warmup):
    """Milliseconds of each call."""
    for _ in range(warmup):
        run(inputs)
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        run(inputs)
        times.append(1000 * (time.perf_counter() - start))
    return times


def measure(
    export_dir: str | None = None,
    preset: str = "cifar10",
    batch_size: int = 64,
    repetitions: int = 5,
    batches_per_repetition: int = 4,
    latency_calls: int = 50,
    warmup_calls: int = 3,
    runtimes=_RUNTIMES,
) -> dict:
    """Exports (unless `export_dir`), loads and times; a JSON-ready dict."""
    import keras
    import numpy as np
    import tensorflow as tf

    from export import export_lib
    from irevnet_tf import IRevNetClassifier
    from irevnet_tf.reconstruction_error import relative_error

    report = {"benchmark": "serving", "batch_size": batch_size}
    with tempfile.TemporaryDirectory() as temporary:
        if export_dir is None:
            model = IRevNetClassifier.from_preset(preset)
            start = time.perf_counter()
            export_lib.export_for_serving(model, temporary)
            report["export_seconds"] = time.perf_counter() - start
            report["preset"] = preset
            export_dir = temporary
        else:
            report["export_dir"] = os.path.abspath(export_dir)
        forward_dir, inverse_dir = latest_exports(export_dir)
        report["forward_dir"] = forward_dir
        report["inverse_dir"] = inverse_dir

        signature = tf.saved_model.load(forward_dir).signatures[
            "serving_default"
        ]
        image_shape = signature.structured_input_signature[1]["images"].shape
        if not image_shape[1:].is_fully_defined():
            raise ValueError(
                "The forward model takes images of any size; benchmark one "
                f"with a fixed image shape. Received: {image_shape}"
            )
        report["image_shape"] = image_shape[1:].as_list()
        rng = np.random.default_rng(0)
        images = rng.uniform(size=[batch_size] + report["image_shape"])
        images = images.astype("float32")
        features = signature(images=tf.constant(images))["features"].numpy()

        results = []
        for runtime in runtimes:
            make_runner = {
                "function": function_runner,
                "session": session_runner,
            }[runtime]
            start = time.perf_counter()
            forward = make_runner(forward_dir, "images", "logits")
            inverse = make_runner(inverse_dir, "features", "images")
            row = {
                "runtime": runtime,
                "load_seconds": time.perf_counter() - start,
            }
            for direction, run, inputs in (
                ("forward", forward, images),
                ("inverse", inverse, features),
            ):
                rates = throughput(
                    run,
                    inputs,
                    repetitions,
                    batches_per_repetition,
                    warmup_calls,
                )
                row[f"{direction}_images_per_second"] = statistics.median(rates)
                row[f"{direction}_images_per_second_all"] = rates
                times = latencies(run, inputs[:1], latency_calls, warmup_calls)
                row[f"{direction}_latency_ms"] = statistics.median(times)
                row[f"{direction}_latency_ms_all"] = times
            # The served inverse is the inverse.
            row["reconstruction_relative_error"] = relative_error(
                inverse(features), images
            )
            results.append(row)

    report.update(
        {
            "repetitions": repetitions,
            "batches_per_repetition": batches_per_repetition,
            "latency_calls": latency_calls,
            "warmup_calls": warmup_calls,
            "results": results,
            "environment": {
                "tensorflow": tf.__version__,
                "keras": keras.__version__,
                "python": platform.python_version(),
                "machine": platform.machine(),
                "cpu_count": os.cpu_count(),
                # oneDNN kernels: off by default on this project's AMD CPUs,
                # 1.6-1.8x faster here when on (TF_ENABLE_ONEDNN_OPTS=1).
                "TF_ENABLE_ONEDNN_OPTS": os.environ.get(
                    "TF_ENABLE_ONEDNN_OPTS"
                ),
            },
        }
    )
    return report


def markdown_table(report: dict) -> str:
    model = report.get("preset") or report["export_dir"]
    lines = [
        f"Exported i-RevNet `{model}` SavedModels, images "
        f"{report['image_shape']}: throughput at batch "
        f"{report['batch_size']} (median of {report['repetitions']} x "
        f"{report['batches_per_repetition']} calls), latency at batch 1 "
        f"(median of {report['latency_calls']} calls):",
        "",
        "| runtime | forward images/s | inverse images/s | forward latency "
        "(ms) | inverse latency (ms) | reconstruction rel. error |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    names = {
        "function": "`tf.saved_model.load`",
        "session": "`Session.run` (as the model server)",
    }
    for row in report["results"]:
        lines.append(
            f"| {names[row['runtime']]} "
            f"| {row['forward_images_per_second']:.1f} "
            f"| {row['inverse_images_per_second']:.1f} "
            f"| {row['forward_latency_ms']:.1f} "
            f"| {row['inverse_latency_ms']:.1f} "
            f"| {row['reconstruction_relative_error']:.1e} |"
        )
    onednn = report["environment"]["TF_ENABLE_ONEDNN_OPTS"]
    lines[0] += f" TF_ENABLE_ONEDNN_OPTS={onednn or 'unset'}."
    return "\n".join(lines)


def main(argv):
    if not flags.FLAGS["verbosity"].present:
        # TensorFlow's INFO lines on tracing and saving are noise here.
        logging.set_verbosity(logging.WARNING)
    if len(argv) > 1:
        _fail(f"Unexpected arguments: {' '.join(argv[1:])}")
    unknown = [r for r in _RUNTIMES_FLAG.value if r not in _RUNTIMES]
    if unknown or not _RUNTIMES_FLAG.value:
        _fail(
            "--runtimes must be a comma-separated subset of "
            f"{list(_RUNTIMES)}. "
            f"Received: --runtimes={','.join(_RUNTIMES_FLAG.value)}"
        )
    for flag in (_BATCH_SIZE, _REPETITIONS, _BATCHES, _LATENCY_CALLS):
        if flag.value < 1:
            _fail(f"--{flag.name} must be positive. Received: {flag.value}")
    try:
        report = measure(
            export_dir=_EXPORT_DIR.value,
            preset=_PRESET.value,
            batch_size=_BATCH_SIZE.value,
            repetitions=_REPETITIONS.value,
            batches_per_repetition=_BATCHES.value,
            latency_calls=_LATENCY_CALLS.value,
            warmup_calls=_WARMUP.value,
            runtimes=_RUNTIMES_FLAG.value,
        )
    except ValueError as error:
        _fail(str(error))
    print(markdown_table(report))
    if _OUTPUT.value:
        reporting.write_json(report, _OUTPUT.value)
        print(f"\nWrote {_OUTPUT.value}")


def _fail(message: str) -> None:
    reporting.fail("serving", message)


if __name__ == "__main__":
    app.run(main)
