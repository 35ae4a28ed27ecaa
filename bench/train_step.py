r"""One training step of the `cifar10` preset: this project and the authors'.

    python -m bench.train_step --output bench/results/train_step.json

Times the training step (forward, backward, SGD with momentum 0.9 and
coupled weight decay 5e-4) of the `cifar10` preset, the authors' CIFAR-10
model, on one fixed batch of random images, for

  * PyTorch: `bench.pytorch_reference.PyTorchIRevNet`, a twin of the
    authors' code with their layers and optimizer, in their layout (NCHW)
    and in channels-last, PyTorch's faster CPU layout;
  * TensorFlow: `IRevNetClassifier.from_preset("cifar10")` with plain
    autodiff (`memory_saving=False`) and with memory-saving backprop, the
    recipes' optimizer (`train.optimizers.SGDWithL2`), `train_on_batch`
    (the compiled step that `fit` runs), with XLA off and on, and with
    TensorFlow's oneDNN kernels on and off (TF_ENABLE_ONEDNN_OPTS).

Each variant runs in its own process (a worker this script starts), so that
its memory is its own. Variants are compared in groups whose workers live at
the same time: a round asks every worker of the group for one step, in a
rotating order, so that changes of the machine's load hit them alike; every
group holds PyTorch NCHW, and the ratios are medians over rounds of the
step time divided by PyTorch NCHW's step time of the same round. Tracing,
compilation and `--warmup_steps` steps come first and are not timed.

Memory, per worker:

  * peak RSS: the process's maximum resident set (getrusage), warm-up
    included: what the machine must provide;
  * TensorFlow step memory: the CPU allocator's peak during one step minus
    what it held before (`tf.config.experimental.get_memory_info`, which
    needs TF_CPU_ALLOCATOR_USE_BFC=true, set for every TensorFlow worker):
    activations, gradients and temporaries;
  * PyTorch saved activations: the bytes of the distinct tensors that
    autograd saves for the backward pass of one step
    (`torch.autograd.graph.saved_tensors_hooks`). PyTorch has no peak
    statistics for CPU memory; this is the part that grows with depth.

`--budget_gib` (default 4) finds, for PyTorch NCHW, plain autodiff and
memory saving (oneDNN on, XLA off), the largest batch whose training
process stays within that much RSS. Method: fresh processes train 3 steps
at a batch size and report their peak RSS. Two batch sizes give a linear
model of peak RSS against batch size, which predicts the largest batch
(rounded down to a multiple of 8); further probes around it bracket the
answer between a batch that stayed within the budget and one that did not.
A hard limit (RLIMIT_AS) is not used: TensorFlow and OpenMP reserve far more
address space than they touch, so it would fail processes far below the
budget.

Run it on an otherwise idle machine; the table prints the load average.
PyTorch's OpenMP threads wait for each other at every operation, so when
other processes hold a core, PyTorch slows down far more than TensorFlow's
work-sharing thread pool: measured on 2 cores at a load average of 4, the
twin's step at batch 32 took 4-5 s with 2 threads and 1.2 s with one
(`--threads=1`), while TensorFlow's plain step took 0.6 s.
"""

import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

from bench import reporting

PRESET = "cifar10"
NUM_CLASSES = 10
IMAGE_SHAPE = (32, 32, 3)
LEARNING_RATE = 0.1
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4

# name -> (framework, settings)
VARIANTS = {
    "pytorch_nchw": ("pytorch", {"memory_format": "nchw"}),
    "pytorch_channels_last": ("pytorch", {"memory_format": "channels_last"}),
    "tf_plain": ("tensorflow", {"memory_saving": False, "jit": False}),
    "tf_memory_saving": ("tensorflow", {"memory_saving": True, "jit": False}),
    "tf_plain_xla": ("tensorflow", {"memory_saving": False, "jit": True}),
    "tf_memory_saving_xla": (
        "tensorflow",
        {"memory_saving": True, "jit": True},
    ),
}
NAMES = {
    "pytorch_nchw": "PyTorch, NCHW (the authors' layout)",
    "pytorch_channels_last": "PyTorch, channels-last",
    "tf_plain": "TF plain autodiff",
    "tf_memory_saving": "TF memory saving",
    "tf_plain_xla": "TF plain autodiff, XLA",
    "tf_memory_saving_xla": "TF memory saving, XLA",
}

_BATCH_SIZES = flags.DEFINE_list(
    "batch_sizes", ["32", "128"], "Batch sizes to time."
)
_XLA_BATCH_SIZES = flags.DEFINE_list(
    "xla_batch_sizes",
    ["32"],
    "Batch sizes at which the XLA variants are timed too (empty: none).",
)
_ONEDNN = flags.DEFINE_list(
    "onednn",
    ["on", "off"],
    "TF_ENABLE_ONEDNN_OPTS settings of the TensorFlow workers: on and/or "
    "off. PyTorch does not read it. XLA variants run with 'on' only.",
)
_ROUNDS = flags.DEFINE_integer(
    "rounds", 5, "Timed steps per worker (one per round); medians reported."
)
_WARMUP = flags.DEFINE_integer(
    "warmup_steps", 2, "Untimed steps after tracing and compilation."
)
_THREADS = flags.DEFINE_integer(
    "threads", 0, "Threads of every framework; 0: one per core."
)
_BUDGET = flags.DEFINE_float(
    "budget_gib",
    4.0,
    "Peak-RSS budget of the largest-batch search, in GiB; 0 skips it.",
)
_OUTPUT = flags.DEFINE_string("output", None, "JSON output path (optional).")
_WORKER = flags.DEFINE_string(
    "worker", None, "Internal: run as a worker with this JSON spec."
)

# A pause before each timed step: PyTorch's OpenMP threads spin for a while
# after their work, which would slow the next worker's step.
_SETTLE_SECONDS = 0.3
# Largest-batch search: never probe a batch predicted to need more than this
# times the budget (the machine is shared).
_PROBE_CAP = 1.3
_PROBE_STEPS = 3


# ----------------------------------------------------------------- worker


class _TensorFlowStep:
    def __init__(self, spec):
        import keras
        import numpy as np
        import tensorflow as tf

        from irevnet_tf import IRevNetClassifier
        from train.optimizers import SGDWithL2

        threads = spec["threads"]
        if threads:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        self.tf = tf
        self.model = IRevNetClassifier.from_preset(
            PRESET, memory_saving=spec["memory_saving"]
        )
        self.model.compile(
            SGDWithL2(
                l2=WEIGHT_DECAY, learning_rate=LEARNING_RATE, momentum=MOMENTUM
            ),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=spec["jit"],
        )
        rng = np.random.default_rng(0)
        batch = spec["batch_size"]
        self.images = tf.constant(
            rng.uniform(size=(batch,) + IMAGE_SHAPE).astype("float32")
        )
        self.labels = tf.constant(rng.integers(0, NUM_CLASSES, size=batch))

    def step(self):
        logs = self.model.train_on_batch(self.images, self.labels)
        return float(logs if not isinstance(logs, list) else logs[0])

    def step_memory(self):
        memory = self.tf.config.experimental
        memory.reset_memory_stats("CPU:0")
        before = memory.get_memory_info("CPU:0")["current"]
        self.step()
        return {
            "step_peak_bytes": memory.get_memory_info("CPU:0")["peak"] - before
        }


class _PyTorchStep:
    def __init__(self, spec):
        import numpy as np
        import torch

        from bench import pytorch_reference

        self.torch = torch
        self.pytorch_reference = pytorch_reference
        torch.set_num_threads(spec["threads"] or os.cpu_count())
        torch.manual_seed(0)
        layout = {
            "nchw": torch.contiguous_format,
            "channels_last": torch.channels_last,
        }[spec["memory_format"]]
        self.model = pytorch_reference.PyTorchIRevNet(**spec["constructor"])
        self.model.to(memory_format=layout)
        self.optimizer = pytorch_reference.authors_sgd(
            self.model, LEARNING_RATE, MOMENTUM, WEIGHT_DECAY
        )
        rng = np.random.default_rng(0)
        batch = spec["batch_size"]
        images = rng.uniform(size=(batch,) + IMAGE_SHAPE).astype("float32")
        self.images = torch.from_numpy(images.transpose(0, 3, 1, 2))
        self.images = self.images.contiguous(memory_format=layout)
        self.labels = torch.from_numpy(rng.integers(0, NUM_CLASSES, size=batch))

    def step(self):
        return self.pytorch_reference.train_step(
            self.model, self.optimizer, self.images, self.labels
        )

    def step_memory(self):
        saved = {}

        def pack(tensor):
            storage = tensor.untyped_storage()
            saved[storage.data_ptr()] = storage.nbytes()
            return tensor

        hooks = self.torch.autograd.graph.saved_tensors_hooks(
            pack, lambda tensor: tensor
        )
        with hooks:
            self.step()
        return {"saved_activation_bytes": sum(saved.values())}


def _peak_rss_bytes():
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _run_worker(spec):
    """Builds one variant, then serves commands from stdin, one per line."""

    def reply(message):
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    start = time.perf_counter()
    runner = (
        _PyTorchStep if spec["framework"] == "pytorch" else _TensorFlowStep
    )(spec)
    built = time.perf_counter()
    loss = runner.step()  # tracing, compilation, primitive creation
    first = time.perf_counter()
    for _ in range(spec["warmup_steps"]):
        runner.step()
    reply(
        {
            "build_seconds": built - start,
            "first_step_seconds": first - built,
            "first_loss": loss,
        }
    )
    for command in sys.stdin:
        command = command.strip()
        if command == "step":
            cpu = time.process_time()
            wall = time.perf_counter()
            runner.step()
            reply(
                {
                    "seconds": time.perf_counter() - wall,
                    "cpu_seconds": time.process_time() - cpu,
                }
            )
        elif command == "memory":
            reply(runner.step_memory())
        elif command == "quit":
            reply({"peak_rss_bytes": _peak_rss_bytes()})
            return


# ----------------------------------------------------------------- parent


class _Worker:
    """A variant in its own process."""

    def __init__(
        self, variant, batch_size, onednn, constructor, threads, warmup_steps
    ):
        framework, settings = VARIANTS[variant]
        spec = dict(
            settings,
            framework=framework,
            batch_size=batch_size,
            threads=threads,
            warmup_steps=warmup_steps,
            constructor=constructor,
        )
        env = dict(
            os.environ,
            TF_ENABLE_ONEDNN_OPTS=onednn_flag(onednn),
            TF_CPP_MIN_LOG_LEVEL="2",
        )
        if framework == "tensorflow":
            # The CPU allocator keeps statistics only in its BFC variant.
            env["TF_CPU_ALLOCATOR_USE_BFC"] = "true"
        self.variant = variant
        # A file, not a pipe: a worker that logs much would block on a full
        # pipe that nobody reads.
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.train_step",
                f"--worker={json.dumps(spec)}",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            env=env,
            cwd=_REPO,
        )
        self.startup = self._read()

    def ask(self, command):
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self._read()

    def _read(self):
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            self.stderr.seek(0)
            raise RuntimeError(
                f"Worker {self.variant} exited with status "
                f"{self.process.returncode}: {self.stderr.read()[-2000:]}"
            )
        return json.loads(line)

    def close(self):
        result = self.ask("quit")
        self.process.stdin.close()
        self.process.wait()
        self.process.stdout.close()
        self.stderr.close()
        return result


_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def onednn_flag(onednn):
    return {"on": "1", "off": "0"}[onednn]


def _groups(batch_sizes, xla_batch_sizes, onednn):
    """(batch size, oneDNN setting, variants) of each group."""
    groups = []
    for batch in batch_sizes:
        for setting in onednn:
            variants = ["pytorch_nchw", "tf_plain", "tf_memory_saving"]
            if setting == onednn[0]:
                variants.insert(1, "pytorch_channels_last")
            groups.append((batch, setting, variants))
        if batch in xla_batch_sizes:
            groups.append(
                (
                    batch,
                    "on",
                    ["pytorch_nchw", "tf_plain_xla", "tf_memory_saving_xla"],
                )
            )
    return groups


def _time_group(batch, setting, variants, constructor, rounds, warmup, threads):
    workers = []
    try:
        for variant in variants:
            workers.append(
                _Worker(variant, batch, setting, constructor, threads, warmup)
            )
        rows = [
            {
                "variant": w.variant,
                "batch_size": batch,
                "onednn": setting,
                **w.startup,
                "step_seconds_all": [],
                "step_cpu_seconds_all": [],
                "load_average_all": [],
            }
            for w in workers
        ]
        for round_ in range(rounds):
            shift = round_ % len(workers)
            order = list(range(len(workers)))
            order = order[shift:] + order[:shift]
            for i in order:
                time.sleep(_SETTLE_SECONDS)
                result = workers[i].ask("step")
                rows[i]["step_seconds_all"].append(result["seconds"])
                rows[i]["step_cpu_seconds_all"].append(result["cpu_seconds"])
                rows[i]["load_average_all"].append(os.getloadavg()[0])
        for worker, row in zip(workers, rows):
            row.update(worker.ask("memory"))
        for worker, row in zip(workers, rows):
            row.update(worker.close())
        workers = []
    finally:
        for worker in workers:
            worker.process.kill()
    baseline = rows[0]["step_seconds_all"]
    for row in rows:
        row["step_seconds"] = statistics.median(row["step_seconds_all"])
        ratios = [a / b for a, b in zip(row["step_seconds_all"], baseline)]
        row["vs_pytorch_nchw_all"] = ratios
        row["vs_pytorch_nchw"] = statistics.median(ratios)
    return rows


def _probe(variant, batch, constructor, threads):
    """Peak RSS of a fresh process that trains `_PROBE_STEPS` steps."""
    worker = _Worker(
        variant, batch, "on", constructor, threads, _PROBE_STEPS - 1
    )
    return worker.close()["peak_rss_bytes"]


def _largest_batch(variant, budget, constructor, threads):
    """Brackets the largest batch whose process stays within `budget`."""
    probes = {}

    def probe(batch):
        if batch not in probes:
            probes[batch] = _probe(variant, batch, constructor, threads)
        return probes[batch]

    def predict():
        # Linear in batch size through the two probes nearest the budget.
        (b0, r0), (b1, r1) = sorted(
            sorted(probes.items(), key=lambda p: abs(p[1] - budget))[:2]
        )
        slope = (r1 - r0) / (b1 - b0)
        return b1 + (budget - r1) / slope, slope, (b1, r1)

    probe(32)
    probe(128)
    for _ in range(3):
        fits = [b for b, r in probes.items() if r <= budget]
        fails = [b for b, r in probes.items() if r > budget]
        if fits and fails and min(fails) - max(fits) <= 16:
            break
        estimate, slope, (b1, r1) = predict()
        batch = max(8, int(estimate) // 8 * 8)
        if batch in probes:
            # Bracket from the side the estimate left open.
            batch += 8 if probes[batch] <= budget else -8
        cap = b1 + (_PROBE_CAP * budget - r1) / slope
        if batch > cap or batch <= 0:
            break
        probe(batch)
    fits = [b for b, r in probes.items() if r <= budget]
    fails = [b for b, r in probes.items() if r > budget]
    return {
        "variant": variant,
        "budget_bytes": budget,
        "largest_batch_within_budget": max(fits) if fits else None,
        "smallest_batch_over_budget": min(fails) if fails else None,
        "probes": [
            {"batch_size": b, "peak_rss_bytes": r}
            for b, r in sorted(probes.items())
        ],
    }


def authors_constructor():
    """The authors' constructor arguments of the `cifar10` preset."""
    from bench import pytorch_reference
    from irevnet_tf import IRevNet

    config = IRevNet.from_preset(PRESET).get_config()
    return pytorch_reference.authors_constructor(config, NUM_CLASSES)


def measure(
    batch_sizes, xla_batch_sizes, onednn, rounds, warmup, threads, budget_gib
):
    constructor = authors_constructor()
    load_before = os.getloadavg()
    started = time.perf_counter()
    rows = []
    for batch, setting, variants in _groups(
        batch_sizes, xla_batch_sizes, onednn
    ):
        print(
            f"batch {batch}, oneDNN {setting}: {', '.join(variants)}",
            file=sys.stderr,
            flush=True,
        )
        group = _time_group(
            batch, setting, variants, constructor, rounds, warmup, threads
        )
        for row in group:
            row["group"] = f"batch {batch}, oneDNN {setting}, " + (
                "XLA" if "xla" in variants[-1] else "no XLA"
            )
        rows += group
    budget = []
    if budget_gib:
        for variant in ("pytorch_nchw", "tf_plain", "tf_memory_saving"):
            print(
                f"largest batch within {budget_gib} GiB: {variant}",
                file=sys.stderr,
                flush=True,
            )
            budget.append(
                _largest_batch(
                    variant, budget_gib * 2**30, constructor, threads
                )
            )
    import tensorflow as tf
    import torch

    return {
        "benchmark": "train_step",
        "preset": PRESET,
        "constructor": constructor,
        "optimizer": {
            "learning_rate": LEARNING_RATE,
            "momentum": MOMENTUM,
            "weight_decay": WEIGHT_DECAY,
        },
        "rounds": rounds,
        "warmup_steps": warmup,
        "results": rows,
        "memory_budget": budget,
        "environment": {
            "tensorflow": tf.__version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpu": _cpu_name(),
            "cpu_count": os.cpu_count(),
            "threads": threads or os.cpu_count(),
            "load_average_before": list(load_before),
            "load_average_after": list(os.getloadavg()),
            "run_seconds": time.perf_counter() - started,
        },
    }


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def markdown_table(report):
    gib = 2.0**30
    mib = 2.0**20
    lines = [
        f"i-RevNet `{report['preset']}` training step (SGD, momentum "
        f"{report['optimizer']['momentum']}, weight decay "
        f"{report['optimizer']['weight_decay']}), "
        f"{report['environment']['threads']} threads, "
        f"{report['environment']['cpu']}; median of {report['rounds']} "
        "steps per variant, variants alternating, each in its own process:",
        "",
        "| batch | oneDNN | variant | step (s) | / PyTorch NCHW | peak RSS "
        "(GiB) | step memory (MiB) |",
        "|---:|---|---|---:|---:|---:|---:|",
    ]
    for row in report["results"]:
        if "step_peak_bytes" in row:
            memory = f"{row['step_peak_bytes'] / mib:.0f}"
        else:
            memory = f"{row['saved_activation_bytes'] / mib:.0f} (saved)"
        lines.append(
            f"| {row['batch_size']} | {row['onednn']} | "
            f"{NAMES[row['variant']]} | {row['step_seconds']:.3f} | "
            f"{row['vs_pytorch_nchw']:.2f} | "
            f"{row['peak_rss_bytes'] / gib:.2f} | {memory} |"
        )
    lines += [
        "",
        "PyTorch NCHW runs in every group (batch size, oneDNN setting, XLA) "
        "as the baseline of its ratios. Step memory: TensorFlow's allocator "
        "peak during a step (activations, gradients, temporaries); PyTorch: "
        "the tensors autograd saves for the backward pass (saved).",
    ]
    if report["memory_budget"]:
        budget = report["memory_budget"][0]["budget_bytes"] / gib
        lines += [
            "",
            f"Largest batch whose training process stays within {budget:g} "
            "GiB of peak RSS (3 steps; probes in the JSON):",
            "",
            "| variant | largest batch within budget | smallest batch over |",
            "|---|---:|---:|",
        ]
        for row in report["memory_budget"]:
            lines.append(
                f"| {NAMES[row['variant']]} | "
                f"{row['largest_batch_within_budget']} | "
                f"{row['smallest_batch_over_budget']} |"
            )
    environment = report["environment"]
    lines += [
        "",
        "Load average (1 min) before and after: "
        f"{environment['load_average_before'][0]:.2f}, "
        f"{environment['load_average_after'][0]:.2f}; run time "
        f"{environment['run_seconds'] / 60:.1f} min.",
    ]
    return "\n".join(lines)


def main(argv):
    if _WORKER.value:
        _run_worker(json.loads(_WORKER.value))
        return
    if len(argv) > 1:
        _fail(f"Unexpected arguments: {' '.join(argv[1:])}")
    for name, values in (
        ("batch_sizes", _BATCH_SIZES.value),
        ("xla_batch_sizes", _XLA_BATCH_SIZES.value),
    ):
        if not all(v.isdigit() and int(v) > 0 for v in values):
            _fail(f"--{name} must be positive integers. Received: {values}")
    if not _BATCH_SIZES.value:
        _fail("--batch_sizes must not be empty. Received: ''")
    if not _ONEDNN.value or any(o not in ("on", "off") for o in _ONEDNN.value):
        _fail(f"--onednn must hold on and/or off. Received: {_ONEDNN.value}")
    for flag in (_ROUNDS,):
        if flag.value < 1:
            _fail(f"--{flag.name} must be positive. Received: {flag.value}")
    for flag in (_WARMUP, _THREADS):
        if flag.value < 0:
            _fail(f"--{flag.name} must be >= 0. Received: {flag.value}")
    if _BUDGET.value < 0:
        _fail(f"--budget_gib must be >= 0. Received: {_BUDGET.value}")
    if importlib.util.find_spec("torch") is None:
        _fail("bench.train_step needs PyTorch (pip install torch).")
    report = measure(
        batch_sizes=[int(b) for b in _BATCH_SIZES.value],
        xla_batch_sizes=[int(b) for b in _XLA_BATCH_SIZES.value],
        onednn=_ONEDNN.value,
        rounds=_ROUNDS.value,
        warmup=_WARMUP.value,
        threads=_THREADS.value,
        budget_gib=_BUDGET.value,
    )
    print(markdown_table(report))
    if _OUTPUT.value:
        reporting.write_json(report, _OUTPUT.value)
        print(f"\nWrote {_OUTPUT.value}")


def _fail(message):
    reporting.fail("train_step", message)


if __name__ == "__main__":
    app.run(main)
