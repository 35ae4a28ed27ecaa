"""The training program as users run it: real processes, real files."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import keras
import pytest
from absl.testing import parameterized

from irevnet_tf.testing.digit_files import prepared_digits_dir
from irevnet_tf.testing.digit_files import write_digit_folder
from irevnet_tf.testing.test_case import TestCase
from irevnet_tf.testing.train_runs import REPO
from irevnet_tf.testing.train_runs import TIMEOUT
from irevnet_tf.testing.train_runs import environment
from irevnet_tf.testing.train_runs import optimizer_steps
from irevnet_tf.testing.train_runs import run
from irevnet_tf.testing.train_runs import train_command


def fresh_dir(test):
    return tempfile.mkdtemp(dir=test.get_temp_dir())


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def digit_folder(test):
    root = fresh_dir(test)
    write_digit_folder(root, classes=(0, 1, 2), per_class=16)
    return root


# Flags of a tiny run on a folder of 48 digits.
def tiny_folder_flags(root, model_dir):
    return [
        f"--dataset=folder:{root}",
        "--preset=digits",
        "--recipe=digits",
        "--image_size=16",
        f"--model_dir={model_dir}",
        "--batch_size=8",
        "--train_steps=4",
        "--checkpoint_steps=2",
        "--memory_saving=false",
        "--seed=1",
    ]


@pytest.mark.large
class DigitsRunTest(TestCase):
    def test_short_digits_run_and_export(self):
        model_dir = os.path.join(fresh_dir(self), "run")
        export_dir = os.path.join(fresh_dir(self), "serving")
        result = run(
            f"--model_dir={model_dir}",
            f"--data_dir={prepared_digits_dir()}",
            "--epochs=2",
            # Two epochs sit on the steep part of the learning curve, where
            # thread-order rounding differences moved the accuracy by 5%.
            "--deterministic",
            f"--export_dir={export_dir}",
        )
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        self.assertNotIn("Traceback", result.stderr)
        self.assertIn("Epoch 2/2", result.stdout)  # Keras's progress bar.
        self.assertRegex(
            result.stdout,
            r"Test accuracy 0\.\d+ on 360 images; "
            r"reconstruction error \S+",
        )
        with open(os.path.join(model_dir, "metrics.json")) as f:
            metrics = json.load(f)
        # Two epochs of the default recipe already classify most digits.
        self.assertGreater(metrics["test_accuracy"], 0.8)
        self.assertEqual(metrics["test_examples"], 360)
        self.assertEqual(metrics["reconstruction_examples"], 360)
        self.assertLess(metrics["reconstruction_error"], 1e-5)
        self.assertEqual((metrics["epochs"], metrics["steps"]), (2, 44))
        self.assertGreater(metrics["wall_time_seconds"], 0)
        with open(os.path.join(model_dir, "config.json")) as f:
            config = json.load(f)
        self.assertTrue(config["config"]["memory_saving"])
        self.assertEqual(config["dataset"]["image_shape"], [16, 16, 1])
        model = keras.saving.load_model(os.path.join(model_dir, "model.keras"))
        self.assertEqual(model.backbone.stage_depths, [2, 2, 2])
        # The export program's layout: forward and inverse, version 1.
        self.assertEqual(
            metrics["export"]["forward_dir"],
            os.path.join(export_dir, "irevnet_forward", "1"),
        )
        for key in ("forward_dir", "inverse_dir", "models_config"):
            self.assertTrue(os.path.exists(metrics["export"][key]), key)


@pytest.mark.large
class KillAndResumeTest(TestCase):
    def test_sigkill_mid_epoch_then_same_command_resumes(self):
        model_dir = os.path.join(fresh_dir(self), "run")
        flags = [
            f"--model_dir={model_dir}",
            f"--data_dir={prepared_digits_dir()}",
            "--epochs=2",  # 22 steps per epoch, 44 in all.
            "--checkpoint_steps=5",
        ]
        state = os.path.join(model_dir, "checkpoints", "state.weights.h5")
        process = subprocess.Popen(
            train_command(*flags),
            cwd=REPO,
            env=environment(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + TIMEOUT
            while not os.path.exists(state):
                self.assertIsNone(process.poll(), "finished before a save")
                self.assertLess(time.monotonic(), deadline)
                time.sleep(0.2)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
        self.assertEqual(process.returncode, -signal.SIGKILL)
        saved = optimizer_steps(model_dir)
        self.assertBetween(saved, 5, 43)  # A checkpoint inside the run...
        self.assertFalse(os.path.exists(os.path.join(model_dir, "model.keras")))

        result = run(*flags)  # ...and the same command again.
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        self.assertIn(
            f"Resuming from the checkpoint at step {saved} of 44", result.stdout
        )
        with open(os.path.join(model_dir, "metrics.json")) as f:
            metrics = json.load(f)
        self.assertEqual(metrics["initial_step"], saved)
        self.assertEqual((metrics["epochs"], metrics["steps"]), (2, 44))
        # Exactly the missing steps ran: an interrupted epoch is finished,
        # not replayed from its start.
        self.assertEqual(optimizer_steps(model_dir), 44)
        self.assertGreater(metrics["test_accuracy"], 0.8)

        # A run of another model is refused and leaves the directory as is.
        files = ("config.json", "model.keras", "metrics.json")
        before = [os.path.getmtime(os.path.join(model_dir, f)) for f in files]
        refused = run(*flags, "--preset=cifar10", "--image_size=32")
        self.assertEqual(refused.returncode, 2, refused.stderr[-3000:])
        self.assertEqual(
            refused.stderr.strip(),
            f"train: error: The model directory {model_dir} holds a run with "
            "other settings: preset='digits' (now 'cifar10'), image_size=16 "
            "(now 32). Pass the same settings to resume it or another model "
            f"directory. Received: model_dir='{model_dir}'",
        )
        after = [os.path.getmtime(os.path.join(model_dir, f)) for f in files]
        self.assertEqual(before, after)


@pytest.mark.large
class DistributedTest(TestCase):
    def test_two_workers_finish_with_identical_weights(self):
        root = digit_folder(self)
        model_dir = os.path.join(fresh_dir(self), "run")
        cluster = {"worker": [f"127.0.0.1:{free_port()}" for _ in range(2)]}
        processes = []
        for index in range(2):
            tf_config = {
                "cluster": cluster,
                "task": {"type": "worker", "index": index},
            }
            processes.append(
                subprocess.Popen(
                    train_command(
                        *tiny_folder_flags(root, model_dir),
                        "--strategy=multi_worker",
                    ),
                    cwd=REPO,
                    env=environment(TF_CONFIG=json.dumps(tf_config)),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
            )
        outputs = [p.communicate(timeout=TIMEOUT)[0] for p in processes]
        for process, output in zip(processes, outputs):
            self.assertEqual(process.returncode, 0, output[-3000:])
        with open(os.path.join(model_dir, "config.json")) as f:
            self.assertEqual(json.load(f)["replicas"], 2)
        self.assertEqual(optimizer_steps(model_dir), 4)
        chief = keras.saving.load_model(os.path.join(model_dir, "model.keras"))
        worker = keras.saving.load_model(
            os.path.join(model_dir, "workers", "worker-1", "model.keras")
        )
        # Every variable, BatchNorm moving statistics included.
        names = [v.path for v in chief.weights]
        self.assertEqual(names, [v.path for v in worker.weights])
        for name, a, b in zip(names, chief.get_weights(), worker.get_weights()):
            self.assertAllEqual(a, b, msg=name)
        initial = keras.saving.load_model(
            os.path.join(model_dir, "model.keras")
        )
        self.assertTrue(initial.backbone.synchronized_batch_norm)

    def test_mirrored_on_two_logical_cpus(self):
        root = digit_folder(self)
        model_dir = os.path.join(fresh_dir(self), "run")
        script = f"""
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from irevnet_tf.cli import UsageError
from train import train_lib
from train.configs.base import TrainConfig
config = dict(dataset="folder:{root}", preset="digits", recipe="digits",
              image_size=16, train_steps=3, strategy="mirrored",
              model_dir="{model_dir}", memory_saving=False, verbose=0)
try:
    train_lib.train_and_evaluate(TrainConfig(batch_size=15, **config))
except UsageError as error:
    print("USAGE_ERROR", error)
metrics = train_lib.train_and_evaluate(TrainConfig(batch_size=8, **config))
print("METRICS", json.dumps(metrics))
"""
        result = subprocess.run(
            [sys.executable, "-c", script],
            cwd=REPO,
            env=environment(),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        self.assertIn(
            "USAGE_ERROR The global batch size 15 is not divisible by the 2 "
            "replicas",
            result.stdout,
        )
        metrics_line = [
            line for line in result.stdout.splitlines() if "METRICS" in line
        ]
        metrics = json.loads(metrics_line[0].split(" ", 1)[1])
        self.assertEqual(metrics["steps"], 3)
        self.assertLess(metrics["reconstruction_error"], 1e-5)
        with open(os.path.join(model_dir, "config.json")) as f:
            self.assertEqual(json.load(f)["replicas"], 2)
        self.assertEqual(optimizer_steps(model_dir), 3)


def corrupt_folder(base):
    root = os.path.join(base, "corrupt")
    write_digit_folder(root, classes=(0, 1), per_class=3)
    broken = os.path.join(root, "digit1", "broken.png")
    with open(broken, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\nnot an image")
    return [
        f"--dataset=folder:{root}"
    ], f"Image {broken} cannot be read or decoded"


def unreadable_folder(base):
    root = os.path.join(base, "unreadable")
    write_digit_folder(root, classes=(0, 1), per_class=3)
    os.makedirs(os.path.join(root, "digit0", "folder.jpg"))
    return [f"--dataset=folder:{root}"], "folder.jpg cannot be read"


def empty_folder(base):
    root = os.path.join(base, "empty")
    os.makedirs(root)
    return [f"--dataset=folder:{root}"], "holds no class folders"


def one_class_folder(base):
    root = os.path.join(base, "one_class")
    write_digit_folder(root, classes=(7,), per_class=10)
    return (
        [f"--dataset=folder:{root}", "--batch_size=2"],
        "holds 1 class; a classifier needs at least two",
    )


def folder_without_test_images(base):
    # One image per class: by the folder's path rule, none is held out.
    root = os.path.join(base, "tiny")
    write_digit_folder(root, classes=(0, 1), per_class=1)
    return (
        [f"--dataset=folder:{root}", "--batch_size=1"],
        f"The test split of folder:{root} is empty",
    )


def imagenet_without_archives(base):
    manual = os.path.join(base, "manual")
    os.makedirs(manual)
    return (
        ["--dataset=imagenet2012", f"--manual_dir={manual}"],
        "lacks ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar",
    )


def a_file(base):
    path = os.path.join(base, "a_file")
    open(path, "w").close()
    return path


def fixed(flags, message):
    return lambda base: (flags, message)


# Each: fn(base directory) -> (flags, what the error line says).
BAD_INPUT = {
    "unknown_dataset": fixed(["--dataset=mnist"], "Unknown dataset 'mnist'"),
    "unknown_preset": fixed(["--preset=resnet50"], "Unknown preset"),
    "image_size": fixed(["--image_size=30"], "is not divisible by 8"),
    "imagenet_manual_dir": imagenet_without_archives,
    "missing_folder": lambda base: (
        [f"--dataset=folder:{base}/nowhere"],
        "does not exist",
    ),
    "empty_folder": empty_folder,
    "corrupt_image": corrupt_folder,
    "unreadable_image": unreadable_folder,
    "one_class": one_class_folder,
    "no_test_images": folder_without_test_images,
    "enum_flag": fixed(
        ["--recipe=fast"], "flag --recipe=fast: value should be one of"
    ),
    "integer_flag": fixed(["--batch_size=many"], "--batch_size"),
    "stray_argument": fixed(["train"], "Unexpected arguments: train"),
    "infinite_learning_rate": fixed(
        ["--learning_rate=inf"], "`learning_rate` must be finite"
    ),
    "nan_weight_decay": fixed(["--weight_decay=nan"], "weight_decay=nan"),
    "model_dir_is_a_file": lambda base: (
        [f"--model_dir={a_file(base)}"],
        "`model_dir` must be a directory",
    ),
    "export_dir_is_a_file": lambda base: (
        [f"--export_dir={a_file(base)}"],
        "`export_dir` must be a directory",
    ),
}


@pytest.mark.large
class BadInputTest(TestCase):
    """One line on stderr, exit status 2, no traceback, nothing written.

    With oneDNN on and off, and without TF_CPP_MIN_LOG_LEVEL: TensorFlow's
    notices would be lines of their own.
    """

    @parameterized.named_parameters(
        (f"{case}_onednn{onednn}", case, onednn)
        for case in sorted(BAD_INPUT)
        for onednn in ("0", "1")
    )
    def test_bad_input(self, case, onednn):
        base = fresh_dir(self)
        flags, message = BAD_INPUT[case](base)
        model_dir = os.path.join(base, "runs", "run")
        result = run(
            f"--model_dir={model_dir}",
            f"--data_dir={prepared_digits_dir()}",
            *flags,
            env=environment(onednn=onednn),
        )
        lines = result.stderr.strip().splitlines()
        self.assertEqual(result.returncode, 2, result.stderr[-2000:])
        self.assertLen(lines, 1, result.stderr[-2000:])
        self.assertTrue(lines[0].startswith("train: error: "))
        self.assertIn(message, lines[0])
        self.assertFalse(os.path.exists(model_dir))

    @parameterized.named_parameters(
        ("model_dir", ["--model_dir={locked}/run"], "model_dir"),
        (
            "export_dir",
            ["--model_dir={free}/run", "--export_dir={locked}/serving"],
            "export_dir",
        ),
    )
    def test_unwritable_directory(self, flag_templates, flag):
        # Root writes anywhere: the program drops to `nobody` once imported,
        # as a user without write access to the directory would run it.
        base = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, base, ignore_errors=True)
        os.chmod(base, 0o755)
        locked = os.path.join(base, "locked")
        free = os.path.join(base, "free")
        os.mkdir(locked, 0o755)
        os.mkdir(free)
        os.chmod(free, 0o777)
        flags = [f.format(locked=locked, free=free) for f in flag_templates]
        script = (
            "import os, sys\n"
            "from train import train, train_lib  # Imported as root.\n"
            "os.setgid(65534); os.setuid(65534)\n"
            "sys.argv = ['train', *sys.argv[1:]]\n"
            "train.run()\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", script, *flags],
            cwd=REPO,
            env=environment(),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        lines = result.stderr.strip().splitlines()
        self.assertEqual(result.returncode, 2, result.stderr[-2000:])
        self.assertLen(lines, 1, result.stderr[-2000:])
        self.assertRegex(
            lines[0],
            f"train: error: Cannot write to {locked} .* Received: {flag}=",
        )
        self.assertEqual(os.listdir(locked), [])
        self.assertEqual(os.listdir(free), [])
