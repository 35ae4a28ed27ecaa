"""The training program under faults: real SIGKILLs, concurrent processes,
diverging runs (issue 11, items 1, 3 and 4)."""

import os
import shutil
import signal
import tempfile

import keras
import numpy as np
import pytest
from absl.testing import parameterized

from irevnet_tf.testing import train_runs
from irevnet_tf.testing.digit_files import write_digit_folder
from irevnet_tf.testing.test_case import TestCase

# What metrics.json reports about the model (not times or where it resumed).
MODEL_METRICS = (
    "test_accuracy",
    "test_loss",
    "test_examples",
    "train_accuracy",
    "reconstruction_error",
    "reconstruction_error_max",
    "steps",
    "epochs",
)


def tiny_run_flags(test, model_dir, *extra):
    """A run of 3 epochs of 4 steps on a folder of 48 digits."""
    root = tempfile.mkdtemp(dir=test.get_temp_dir())
    write_digit_folder(root, classes=(0, 1, 2), per_class=16)
    return [
        f"--dataset=folder:{root}",
        "--preset=tiny_dropout",  # Dropout: its masks must resume too.
        "--recipe=cifar",  # Random crops and flips: so must they.
        "--image_size=16",
        "--batch_size=8",
        "--epochs=3",
        "--checkpoint_steps=3",
        "--seed=1",
        f"--model_dir={model_dir}",
        *extra,
    ]


def digits_run_flags(data_dir, model_dir):
    """14 steps in epochs of 5 on scikit-learn's digits, saving every 3.

    The states saved at steps 3, 6, 9 and 12 are all mid-epoch. The first
    run prepares the digits in `data_dir`, as a user's first run does.
    """
    return [
        "--dataset=digits",
        f"--data_dir={data_dir}",
        "--preset=tiny_dropout",  # Dropout: its masks must resume too.
        "--recipe=cifar",  # Random crops and flips: so must they.
        "--image_size=16",
        "--batch_size=256",
        "--train_steps=14",
        "--checkpoint_steps=3",
        "--seed=1",
        "--deterministic",
        f"--model_dir={model_dir}",
    ]


def kill_when(test, flags, condition, what):
    """Starts a run, SIGKILLs it once `condition()` holds."""
    process = train_runs.start(*flags, tiny_dropout=True)
    try:
        train_runs.wait_until(condition, process, what)
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate()
    test.assertEqual(process.returncode, -signal.SIGKILL)


def kill_after_saved_state(test, flags, model_dir, step):
    """Starts a run, SIGKILLs it once its state of `step` is saved."""
    kill_when(
        test,
        flags,
        lambda: train_runs.saved_step(model_dir) >= step,
        f"the state of step {step}",
    )


class SameRunTestCase(TestCase):
    def assert_same_run(self, expected_dir, actual_dir, metric_keys):
        expected = keras.saving.load_model(
            os.path.join(expected_dir, "model.keras")
        )
        actual = keras.saving.load_model(
            os.path.join(actual_dir, "model.keras")
        )
        names = [v.path for v in expected.weights]
        for name, a, b in zip(
            names, expected.get_weights(), actual.get_weights()
        ):
            self.assertAllEqual(a, b, msg=name)  # Bit for bit.
        # The training state too: momentum, seed generators, metrics.
        expected_state = train_runs.checkpoint_arrays(expected_dir)
        actual_state = train_runs.checkpoint_arrays(actual_dir)
        self.assertEqual(sorted(expected_state), sorted(actual_state))
        for name, value in expected_state.items():
            self.assertAllEqual(value, actual_state[name], msg=name)
        expected_metrics = train_runs.read_json(
            os.path.join(expected_dir, "metrics.json")
        )
        actual_metrics = train_runs.read_json(
            os.path.join(actual_dir, "metrics.json")
        )
        for key in metric_keys:
            self.assertEqual(actual_metrics[key], expected_metrics[key], key)


@pytest.mark.large
class ExactResumeTest(SameRunTestCase):
    def test_sigkill_at_any_moment_then_same_command_is_bit_identical(self):
        base = tempfile.mkdtemp(dir=self.get_temp_dir())
        data_dir = os.path.join(base, "tfds")
        reference_dir = os.path.join(base, "uninterrupted")
        model_dir = os.path.join(base, "killed")
        evaluated_dir = os.path.join(base, "killed_evaluating")
        flags = digits_run_flags(data_dir, model_dir)
        evaluated_flags = digits_run_flags(data_dir, evaluated_dir)
        result = train_runs.run(
            *digits_run_flags(data_dir, reference_dir), tiny_dropout=True
        )
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        reference = train_runs.read_json(
            os.path.join(reference_dir, "metrics.json")
        )
        self.assertEqual(
            (reference["steps"], reference["steps_per_epoch"]), (14, 5)
        )

        # Killed in the first epochs, after its state at step 3 was saved...
        kill_after_saved_state(self, flags, model_dir, 3)
        self.assertIn(train_runs.optimizer_steps(model_dir), (3, 6, 9))
        self.assertFalse(os.path.exists(os.path.join(model_dir, "model.keras")))
        # ...then again in the last epoch, after its state at step 12 (the
        # third of epoch 3) was saved.
        kill_after_saved_state(self, flags, model_dir, 12)
        self.assertEqual(train_runs.optimizer_steps(model_dir), 12)

        # Another directory goes on from here to be killed after training,
        # while evaluating, before metrics.json.
        shutil.copytree(model_dir, evaluated_dir)
        kill_when(
            self,
            evaluated_flags,
            lambda: train_runs.saved_step(evaluated_dir) == 14,
            "the end of training",
        )
        self.assertFalse(
            os.path.exists(os.path.join(evaluated_dir, "metrics.json"))
        )

        result = train_runs.run(*flags, tiny_dropout=True)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        self.assertIn(
            "Resuming from the checkpoint at step 12 of 14", result.stdout
        )
        # The last epoch resumed mid-way: even its running training accuracy
        # is the uninterrupted run's.
        self.assert_same_run(
            reference_dir,
            model_dir,
            MODEL_METRICS + ("train_accuracy_last_epoch",),
        )

        result = train_runs.run(*evaluated_flags, tiny_dropout=True)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        self.assertIn("Training already finished; evaluating.", result.stdout)
        self.assert_same_run(reference_dir, evaluated_dir, MODEL_METRICS)


@pytest.mark.large
class Float16ResumeTest(SameRunTestCase):
    def test_sigkill_then_same_command_is_bit_identical(self):
        # The loss scale and its counter of steps since the last change are
        # training state too: the comparison covers them.
        base = tempfile.mkdtemp(dir=self.get_temp_dir())
        reference_dir = os.path.join(base, "uninterrupted")
        model_dir = os.path.join(base, "killed")
        reference_flags = tiny_run_flags(
            self, reference_dir, "--mixed_precision=float16", "--deterministic"
        )
        flags = [
            f"--model_dir={model_dir}" if f.startswith("--model_dir=") else f
            for f in reference_flags
        ]
        result = train_runs.run(*reference_flags, tiny_dropout=True)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        # The run scaled its loss: its state is a LossScaleOptimizer's.
        state = train_runs.checkpoint_arrays(reference_dir)
        self.assertTrue(
            any(name.startswith("optimizer/inner_optimizer/") for name in state)
        )

        kill_after_saved_state(self, flags, model_dir, 3)
        self.assertIn(train_runs.optimizer_steps(model_dir), (3, 6, 9))
        self.assertFalse(os.path.exists(os.path.join(model_dir, "model.keras")))
        result = train_runs.run(*flags, tiny_dropout=True)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        self.assertIn("Resuming from the checkpoint at step", result.stdout)
        self.assert_same_run(reference_dir, model_dir, MODEL_METRICS)


@pytest.mark.large
class LockTest(TestCase):
    def test_a_second_run_on_the_directory_is_refused_and_writes_nothing(self):
        model_dir = os.path.join(
            tempfile.mkdtemp(dir=self.get_temp_dir()), "run"
        )
        flags = tiny_run_flags(self, model_dir)
        first = train_runs.start(*flags, tiny_dropout=True)
        try:
            train_runs.wait_until(
                lambda: os.path.exists(os.path.join(model_dir, "config.json")),
                first,
                "config.json",
            )
            # Frozen while it holds the lock, so that its own writes cannot
            # be taken for the second run's.
            first.send_signal(signal.SIGSTOP)
            before = snapshot(model_dir)
            for onednn in ("0", "1"):
                second = train_runs.run(
                    *flags,
                    env=train_runs.environment(onednn=onednn),
                    tiny_dropout=True,
                )
                lines = second.stderr.strip().splitlines()
                self.assertEqual(second.returncode, 2, second.stderr[-2000:])
                self.assertLen(lines, 1, second.stderr[-2000:])
                self.assertEqual(
                    lines[0],
                    f"train: error: Another process is training in the model "
                    f"directory {model_dir} (it holds the directory's lock); "
                    "wait for it to finish or pass another model directory. "
                    f"Received: model_dir='{model_dir}'",
                )
                self.assertEqual(snapshot(model_dir), before)
            first.send_signal(signal.SIGCONT)
            first.communicate(timeout=train_runs.TIMEOUT)
        finally:
            if first.poll() is None:
                first.send_signal(signal.SIGKILL)
                first.communicate()
        self.assertEqual(first.returncode, 0)
        # Released with the process: the same command now finds it done.
        again = train_runs.run(*flags, tiny_dropout=True)
        self.assertEqual(again.returncode, 0, again.stderr[-2000:])
        self.assertIn("Training already finished", again.stdout)


def snapshot(directory):
    """`{relative path: (size, mtime)}` of every entry under `directory`."""
    entries = {}
    for root, dirs, names in os.walk(directory):
        for name in dirs + names:
            path = os.path.join(root, name)
            status = os.stat(path)
            entries[os.path.relpath(path, directory)] = (
                status.st_size if name in names else None,
                status.st_mtime_ns,
            )
    return entries


@pytest.mark.large
class DivergenceTest(TestCase):
    @parameterized.named_parameters(("onednn_off", "0"), ("onednn_on", "1"))
    def test_non_finite_loss_stops_the_run_and_saves_no_model(self, onednn):
        model_dir = os.path.join(
            tempfile.mkdtemp(dir=self.get_temp_dir()), "run"
        )
        flags = tiny_run_flags(self, model_dir, "--learning_rate=1e6")
        result = train_runs.run(
            *flags, env=train_runs.environment(onednn=onednn), tiny_dropout=True
        )
        lines = result.stderr.strip().splitlines()
        self.assertEqual(result.returncode, 1, result.stderr[-2000:])
        self.assertRegex(
            lines[-1],
            r"^train: error: The loss became (nan|inf) at step (\d+) of 12: "
            r"training diverged, so no model was saved\. Try a lower "
            r"--learning_rate \(this run's: 1000000\.0\); ",
        )
        for name in ("model.keras", "metrics.json"):
            self.assertFalse(os.path.exists(os.path.join(model_dir, name)))
        # Stopped at once: the last good state is from before it diverged.
        diverged_at = int(lines[-1].split(" at step ")[1].split()[0])
        if os.path.exists(train_runs.checkpoint_path(model_dir)):
            self.assertIn("the last good training state, at step", lines[-1])
            self.assertLess(train_runs.optimizer_steps(model_dir), diverged_at)
            for name, value in train_runs.checkpoint_arrays(model_dir).items():
                self.assertTrue(np.all(np.isfinite(value)), name)
        else:
            self.assertIn("no training state was saved", lines[-1])
