r"""Training gradients in float32 against float64, plain and memory saving.

    python -m bench.gradient_agreement --output \
        bench/results/gradient_agreement.json

For each preset, weight seed and BatchNorm state (fresh: scale 1, offset 0;
random: scales in [0.5, 1.5], offsets around 0, as a trained network has),
computes the training-mode gradient of the cross-entropy of one batch with
the same weights in float64 and in float32, with plain autodiff and with
memory saving (`irevnet_tf.testing.gradient_agreement`, dropout off). It
reports each float32 method's relative error against the float64 gradient
(norm of the difference over the norm), their ratio, and how closely the
two methods agree in float64. Run it under `TF_ENABLE_ONEDNN_OPTS=0` and
`=1`: the two kernel sets round differently.
"""

import json
import os
import statistics
import sys

from absl import app
from absl import flags

from bench import reporting

PROGRAM = "python -m bench.gradient_agreement"

_PRESETS = flags.DEFINE_list("presets", ["digits", "cifar10"], "Presets.")
_SEEDS = flags.DEFINE_integer("seeds", 4, "Weight seeds per preset.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 8, "Images per batch.")
_OUTPUT = flags.DEFINE_string("output", None, "Optional JSON output path.")


def _cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return os.uname().machine


def main(argv):
    del argv
    if _SEEDS.value < 1 or _BATCH_SIZE.value < 2:
        reporting.fail(PROGRAM, "--seeds must be >= 1, --batch_size >= 2")
    import tensorflow as tf

    from irevnet_tf.testing import gradient_agreement
    from irevnet_tf.testing import onednn

    rows = []
    for preset in _PRESETS.value:
        for batch_norm in ("fresh", "random"):
            for seed in range(_SEEDS.value):
                result = gradient_agreement.gradient_errors(
                    preset,
                    batch_size=_BATCH_SIZE.value,
                    seed=seed,
                    batch_norm=batch_norm,
                )
                row = dict(
                    preset=preset, batch_norm=batch_norm, seed=seed, **result
                )
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    print(
        f"{'preset':<8} {'BatchNorm':<9} {'plain':>17} {'memory saving':>17}"
        f" {'ratio':>11} {'float64 agreement':>18}"
    )
    for preset in _PRESETS.value:
        for batch_norm in ("fresh", "random"):
            group = [
                r
                for r in rows
                if r["preset"] == preset and r["batch_norm"] == batch_norm
            ]
            plain = [r["plain"]["relative_error"] for r in group]
            saving = [r["memory_saving"]["relative_error"] for r in group]
            ratios = [s / p for s, p in zip(saving, plain)]
            agreement = max(r["float64_memory_saving"] for r in group)

            def span(values, spec=".1e"):
                return f"{min(values):{spec}}-{max(values):{spec}}"

            print(
                f"{preset:<8} {batch_norm:<9} {span(plain):>17}"
                f" {span(saving):>17} {span(ratios, '.2f'):>11}"
                f" {agreement:>18.1e}"
            )
    summary = {
        "onednn": onednn.onednn_enabled(),
        "tensorflow": tf.__version__,
        "cpu": _cpu_model(),
        "batch_size": _BATCH_SIZE.value,
        "median_ratio": statistics.median(
            r["memory_saving"]["relative_error"] / r["plain"]["relative_error"]
            for r in rows
        ),
        "rows": rows,
    }
    if _OUTPUT.value:
        reporting.write_json(summary, _OUTPUT.value)


if __name__ == "__main__":
    app.run(main)
