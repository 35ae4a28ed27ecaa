"""train_and_evaluate in process, and the optimizer it trains with."""

import glob
import json
import os
import re
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
import torch
from absl.testing import parameterized

from irevnet_tf import IRevNetClassifier
from irevnet_tf.cli import UsageError
from irevnet_tf.testing.digit_files import prepared_digits_dir
from irevnet_tf.testing.digit_files import write_digit_folder
from irevnet_tf.testing.test_case import TestCase
from train import distribute
from train import run_files
from train import train_lib
from train.configs.base import TrainConfig
from train.optimizers import SGDWithL2


def fresh_dir(test):
    return tempfile.mkdtemp(dir=test.get_temp_dir())


def summary_tags(log_dir):
    """`{run: {tag: plugin}}` of the TensorBoard event files under log_dir."""
    tags = {}
    for path in glob.glob(os.path.join(log_dir, "*", "events.out.tfevents*")):
        run = os.path.basename(os.path.dirname(path))
        for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
            event = tf.compat.v1.Event.FromString(record)
            for value in event.summary.value:
                plugin = value.metadata.plugin_data.plugin_name
                tags.setdefault(run, {})[value.tag] = plugin
    return tags


def manual_dir_with_archives(test):
    manual_dir = fresh_dir(test)
    for name in ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar"):
        open(os.path.join(manual_dir, name), "w").close()
    return manual_dir


class SGDWithL2Test(TestCase):
    def test_matches_pytorch_sgd_weight_decay(self):
        # PyTorch's SGD(weight_decay=wd, momentum=m): the authors' optimizer.
        rng = np.random.default_rng(0)
        initial = rng.normal(size=(3, 4)).astype(np.float32)
        targets = [rng.normal(size=(3, 4)).astype(np.float32) for _ in range(6)]

        weight = torch.tensor(initial, requires_grad=True)
        reference = torch.optim.SGD(
            [weight], lr=0.1, momentum=0.9, weight_decay=5e-4
        )
        for target in targets:
            reference.zero_grad()
            loss = 0.5 * ((weight - torch.tensor(target)) ** 2).sum()
            loss.backward()
            reference.step()

        variable = keras.Variable(initial)
        optimizer = SGDWithL2(l2=5e-4, learning_rate=0.1, momentum=0.9)
        for target in targets:
            optimizer.apply([variable - target], [variable])
        self.assertAllClose(variable, weight.detach().numpy(), atol=1e-6)

    def test_decay_reaches_every_variable(self):
        # A zero gradient still shrinks every weight: w <- w (1 - lr * l2).
        variable = keras.Variable(np.ones(3, np.float32))
        SGDWithL2(l2=0.5, learning_rate=0.1).apply([tf.zeros(3)], [variable])
        self.assertAllClose(variable, np.full(3, 0.95))

    def test_serialization(self):
        optimizer = SGDWithL2(l2=1e-4, learning_rate=0.2, momentum=0.9)
        clone = SGDWithL2.from_config(optimizer.get_config())
        self.assertEqual(clone.l2, 1e-4)
        self.assertEqual(clone.get_config(), optimizer.get_config())

    def test_negative_decay(self):
        with self.assertRaisesRegex(ValueError, "l2=-1"):
            SGDWithL2(l2=-1)


class TrainAndEvaluateTest(TestCase):
    """End to end, in process, on generated data (tiny model, 2 steps)."""

    def check_run(self, model_dir, metrics, normalized):
        for name in (
            "config.json",
            "metrics.json",
            "model.keras",
            "checkpoints/state.weights.h5",
        ):
            self.assertTrue(os.path.exists(os.path.join(model_dir, name)), name)
        with open(os.path.join(model_dir, "metrics.json")) as f:
            self.assertEqual(json.load(f), metrics)
        self.assertEqual(metrics["steps"], 2)
        self.assertBetween(metrics["test_accuracy"], 0.0, 1.0)
        self.assertLess(metrics["reconstruction_error"], 1e-5)
        with open(os.path.join(model_dir, "config.json")) as f:
            record = json.load(f)
        self.assertEqual(record["dataset"]["normalized"], normalized)
        model = keras.saving.load_model(os.path.join(model_dir, "model.keras"))
        self.assertIsInstance(model, IRevNetClassifier)
        # The model standardises its pixel inputs with the training images'
        # statistics, recorded beside them; or takes the pixels as they are.
        backbone = model.backbone
        if normalized:
            self.assertEqual(backbone.input_mean, record["dataset"]["mean"])
            self.assertEqual(backbone.input_std, record["dataset"]["std"])
        else:
            self.assertIsNone(backbone.standardization)
        self.assertEqual(metrics["reconstruction_space"], "pixels in [0, 1]")
        tags = summary_tags(os.path.join(model_dir, "logs"))
        for tag in ("epoch_loss", "epoch_accuracy", "epoch_learning_rate"):
            self.assertIn(tag, tags["train"])
        self.assertIn("epoch_accuracy", tags["validation"])
        self.assertEqual(tags["reconstructions"]["reconstructions"], "images")
        self.assertIn("reconstruction_error", tags["reconstructions"])
        return model

    def test_cifar10_mock(self):
        model_dir = fresh_dir(self)
        with tfds.testing.mock_data(num_examples=16):
            metrics = train_lib.train_and_evaluate(
                TrainConfig(
                    dataset="cifar10",
                    preset="digits",
                    memory_saving=False,
                    image_size=16,
                    batch_size=8,
                    train_steps=2,
                    model_dir=model_dir,
                    data_dir=fresh_dir(self),
                    verbose=0,
                )
            )
        self.assertEqual(metrics["recipe"], "cifar")
        self.assertEqual(metrics["test_examples"], 16)
        model = self.check_run(model_dir, metrics, normalized=True)
        self.assertEqual(model.backbone.image_shape, (16, 16, 3))

    def test_imagenet2012_mock(self):
        model_dir = fresh_dir(self)
        with tfds.testing.mock_data(num_examples=16):
            metrics = train_lib.train_and_evaluate(
                TrainConfig(
                    dataset="imagenet2012",
                    preset="digits",
                    memory_saving=False,
                    image_size=32,
                    batch_size=8,
                    train_steps=2,
                    model_dir=model_dir,
                    data_dir=fresh_dir(self),
                    manual_dir=manual_dir_with_archives(self),
                    verbose=0,
                )
            )
        self.assertEqual(metrics["recipe"], "imagenet")
        self.assertEqual(metrics["test_split"], "validation")
        model = self.check_run(model_dir, metrics, normalized=True)
        self.assertEqual(model.num_classes, 1000)

    def test_digits_finished_run_is_evaluated_again_not_retrained(self):
        model_dir = fresh_dir(self)
        config = TrainConfig(
            train_steps=2,
            batch_size=16,
            model_dir=model_dir,
            data_dir=prepared_digits_dir(),
            memory_saving=False,
            verbose=0,
        )
        first = train_lib.train_and_evaluate(config)
        self.check_run(model_dir, first, normalized=False)
        self.assertEqual(first["initial_step"], 0)
        weights = keras.saving.load_model(
            os.path.join(model_dir, "model.keras")
        ).get_weights()
        second = train_lib.train_and_evaluate(config)
        self.assertEqual(second["initial_step"], 2)
        self.assertIsNone(second["train_accuracy_last_epoch"])
        self.assertEqual(second["test_accuracy"], first["test_accuracy"])
        again = keras.saving.load_model(
            os.path.join(model_dir, "model.keras")
        ).get_weights()
        for expected, actual in zip(weights, again):
            self.assertAllEqual(expected, actual)

    def test_bad_input_writes_nothing(self):
        model_dir = os.path.join(fresh_dir(self), "run")
        with self.assertRaisesRegex(UsageError, "Unknown preset"):
            train_lib.train_and_evaluate(
                TrainConfig(preset="tiny", model_dir=model_dir)
            )
        self.assertFalse(os.path.exists(model_dir))

    def test_batch_larger_than_the_training_set(self):
        with self.assertRaisesRegex(
            UsageError, "larger than the 1437 training examples"
        ):
            train_lib.train_and_evaluate(
                TrainConfig(
                    batch_size=5000,
                    model_dir=os.path.join(fresh_dir(self), "run"),
                    data_dir=prepared_digits_dir(),
                )
            )

    def test_multi_worker_needs_a_cluster(self):
        with self.assertRaisesRegex(ValueError, "TF_CONFIG"):
            distribute.make_strategy("multi_worker")

    def test_resume_with_other_settings_is_refused(self):
        model_dir = fresh_dir(self)
        with open(os.path.join(model_dir, "config.json"), "w") as f:
            json.dump(
                {
                    "config": {"dataset": "digits", "preset": "cifar10"},
                    "training_state_format": run_files.TRAINING_STATE_FORMAT,
                },
                f,
            )
        with self.assertRaisesRegex(
            UsageError, "preset='cifar10' \\(now 'digits'\\)"
        ):
            train_lib.train_and_evaluate(
                TrainConfig(model_dir=model_dir, data_dir=prepared_digits_dir())
            )


def tiny_digits(model_dir, **overrides):
    return TrainConfig(
        **dict(
            dict(
                train_steps=2,
                batch_size=16,
                model_dir=model_dir,
                data_dir=prepared_digits_dir(),
                memory_saving=False,
                reconstruction_examples=16,
                verbose=0,
            ),
            **overrides,
        )
    )


def snapshot(directory):
    """`{relative path: bytes}` of every file under `directory`."""
    files = {}
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                files[os.path.relpath(path, directory)] = f.read()
    return files


class RunDirectoryTest(TestCase):
    """Another command on a finished run's directory (issue 11, 2 and 5)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.finished = tempfile.mkdtemp()
        cls.metrics = train_lib.train_and_evaluate(tiny_digits(cls.finished))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.finished, ignore_errors=True)
        super().tearDownClass()

    def copy_of_finished_run(self):
        model_dir = os.path.join(fresh_dir(self), "run")
        shutil.copytree(self.finished, model_dir)
        return model_dir

    @parameterized.named_parameters(
        (
            "learning_rate",
            dict(learning_rate=0.001),
            "learning_rate=0.1 (now 0.001)",
        ),
        ("batch_size", dict(batch_size=32), "batch_size=16 (now 32)"),
        (
            "longer",
            dict(train_steps=None, epochs=3),
            "epochs=None (now 3), train_steps=2 (now None)",
        ),
        ("seed", dict(seed=1), "seed=0 (now 1)"),
        (
            "memory_saving",
            dict(memory_saving=True),
            "memory_saving=False (now True)",
        ),
    )
    def test_other_settings_are_refused_and_nothing_written(
        self, overrides, message
    ):
        model_dir = self.copy_of_finished_run()
        before = snapshot(model_dir)
        with self.assertRaisesRegex(
            UsageError,
            f"holds a run with other settings: {re.escape(message)}\\. Pass",
        ):
            train_lib.train_and_evaluate(tiny_digits(model_dir, **overrides))
        self.assertEqual(snapshot(model_dir), before)

    def test_settings_that_do_not_change_the_model_may_differ(self):
        model_dir = self.copy_of_finished_run()
        config_json = snapshot(model_dir)["config.json"]
        metrics = train_lib.train_and_evaluate(
            tiny_digits(
                model_dir, checkpoint_steps=7, reconstruction_examples=8
            )
        )
        self.assertEqual(metrics["initial_step"], 2)
        self.assertEqual(metrics["reconstruction_examples"], 8)
        self.assertEqual(
            metrics["test_accuracy"], self.metrics["test_accuracy"]
        )
        # config.json still describes the run that trained the model.
        self.assertEqual(snapshot(model_dir)["config.json"], config_json)

    def test_run_of_an_earlier_version_is_refused_and_nothing_written(self):
        # irevnet-tf 0.1 wrote no training_state_format; its checkpoints
        # hold momentum in Keras's form.
        model_dir = self.copy_of_finished_run()
        config_path = os.path.join(model_dir, "config.json")
        with open(config_path) as f:
            record = json.load(f)
        del record["training_state_format"]
        with open(config_path, "w") as f:
            json.dump(record, f)
        before = snapshot(model_dir)
        with self.assertRaisesRegex(
            UsageError,
            r"holds a run of an earlier irevnet-tf \(training state format "
            r"1, now 2: .*cannot be resumed",
        ):
            train_lib.train_and_evaluate(tiny_digits(model_dir))
        self.assertEqual(snapshot(model_dir), before)

    def test_checkpoints_without_config_json_are_refused(self):
        model_dir = self.copy_of_finished_run()
        os.remove(os.path.join(model_dir, "config.json"))
        before = snapshot(model_dir)
        with self.assertRaisesRegex(
            UsageError, "holds .*state.weights.h5 but no config.json"
        ):
            train_lib.train_and_evaluate(tiny_digits(model_dir, image_size=24))
        self.assertEqual(snapshot(model_dir), before)

    def test_truncated_checkpoint_is_named_and_nothing_written(self):
        model_dir = self.copy_of_finished_run()
        path = os.path.join(model_dir, "checkpoints", "state.weights.h5")
        with open(path, "r+b") as f:
            f.truncate(1000)
        before = snapshot(model_dir)
        with self.assertRaisesRegex(
            UsageError,
            f"The checkpoint {re.escape(path)} cannot be read .* Delete it",
        ):
            train_lib.train_and_evaluate(tiny_digits(model_dir))
        self.assertEqual(snapshot(model_dir), before)

    def test_stale_staging_is_removed(self):
        model_dir = self.copy_of_finished_run()
        for where in ("", "checkpoints"):
            os.makedirs(
                os.path.join(model_dir, where, ".staging-killed", "x.h5")
            )
        train_lib.train_and_evaluate(tiny_digits(model_dir))
        for where in ("", "checkpoints"):
            self.assertNotIn(
                ".staging-killed", os.listdir(os.path.join(model_dir, where))
            )

    def test_finished_run_is_exported_once(self):
        model_dir = self.copy_of_finished_run()
        export_dir = os.path.join(fresh_dir(self), "serving")
        first = train_lib.train_and_evaluate(
            tiny_digits(model_dir, export_dir=export_dir)
        )
        again = train_lib.train_and_evaluate(
            tiny_digits(model_dir, export_dir=export_dir)
        )
        self.assertEqual(first["export"]["version"], 1)
        self.assertEqual(again["export"], first["export"])
        self.assertEqual(
            os.listdir(os.path.join(export_dir, "irevnet_forward")), ["1"]
        )

    def test_unwritable_output_directories(self):
        a_file = os.path.join(fresh_dir(self), "file")
        open(a_file, "w").close()
        model_dir = os.path.join(fresh_dir(self), "run")
        for overrides, message in (
            (dict(export_dir=a_file), "`export_dir` must be a directory"),
            (
                dict(export_dir=os.path.join(a_file, "serving")),
                "lies under the file",
            ),
        ):
            with self.assertRaisesRegex(UsageError, message):
                train_lib.train_and_evaluate(
                    tiny_digits(model_dir, **overrides)
                )
        self.assertFalse(os.path.exists(model_dir))


class FolderDatasetTest(TestCase):
    def test_grayscale_folder_with_the_cifar_recipe_trains(self):
        root = fresh_dir(self)
        write_digit_folder(root, classes=(0, 1, 2), per_class=10)
        metrics = train_lib.train_and_evaluate(
            TrainConfig(
                dataset=f"folder:{root}",
                preset="digits",  # One channel.
                image_size=16,
                batch_size=4,
                train_steps=2,
                model_dir=os.path.join(fresh_dir(self), "run"),
                memory_saving=False,
                verbose=0,
            )
        )
        self.assertEqual(metrics["recipe"], "cifar")  # Random crops.
        self.assertEqual(metrics["steps"], 2)
