import glob
import json
import os
import tempfile

import keras
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
import torch
from absl.testing import parameterized

from irevnet_tf import IRevNetClassifier
from irevnet_tf.testing.test_case import TestCase
from tests.datasets.digit_files import prepared_digits_dir
from train import train_lib
from train.configs import recipes
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


class ResolveConfigTest(TestCase):
    @parameterized.named_parameters(
        ("digits", "digits", "digits", "digits", 16, 64, 20, None),
        ("cifar10", "cifar10", "cifar", "cifar10", 32, 128, 200, None),
        ("cifar100", "cifar100", "cifar", "cifar10", 32, 128, 200, None),
        (
            "imagenet2012",
            "imagenet2012",
            "imagenet",
            "irevnet301",
            224,
            256,
            None,
            600_000,
        ),
        ("folder", "folder:/data/pets", "cifar", "cifar10", 32, 128, 200, None),
    )
    def test_defaults(
        self, dataset, recipe, preset, image_size, batch, epochs, steps
    ):
        config, resolved_recipe = train_lib.resolve_config(
            TrainConfig(dataset=dataset)
        )
        self.assertEqual(config.recipe, recipe)
        self.assertEqual(resolved_recipe.name, recipe)
        self.assertEqual(config.preset, preset)
        self.assertEqual(config.image_size, image_size)
        self.assertEqual(config.batch_size, batch)
        self.assertEqual(config.epochs, epochs)
        self.assertEqual(config.train_steps, steps)
        self.assertEqual(config.momentum, 0.9)
        self.assertEqual(config.learning_rate, 0.1)

    def test_paper_weight_decay(self):
        for dataset, decay in (("cifar10", 5e-4), ("imagenet2012", 1e-4)):
            with self.subTest(dataset=dataset):
                config, _ = train_lib.resolve_config(TrainConfig(dataset))
                self.assertEqual(config.weight_decay, decay)

    def test_flags_override_the_recipe(self):
        config, _ = train_lib.resolve_config(
            TrainConfig(
                dataset="cifar10",
                recipe="imagenet",
                batch_size=32,
                learning_rate=0.05,
                lr_schedule="cosine",
                train_steps=10,
                image_size=64,
            )
        )
        self.assertEqual(
            (config.batch_size, config.learning_rate, config.lr_schedule),
            (32, 0.05, "cosine"),
        )
        self.assertEqual((config.epochs, config.train_steps), (None, 10))
        self.assertEqual(config.weight_decay, 1e-4)  # From the recipe.
        self.assertEqual(config.image_size, 64)

    @parameterized.named_parameters(
        ("dataset", dict(dataset="mnist"), "Unknown dataset 'mnist'"),
        ("folder_path", dict(dataset="folder:"), "needs a path"),
        ("preset", dict(preset="resnet50"), "Unknown preset 'resnet50'"),
        ("recipe", dict(recipe="fast"), "Unknown recipe 'fast'"),
        ("image_size", dict(image_size=20), "not divisible by 8"),
        ("length", dict(epochs=2, train_steps=5), "not both"),
        ("batch", dict(batch_size=0), "batch_size=0"),
        ("momentum", dict(momentum=1.0), "momentum=1.0"),
        ("rate", dict(learning_rate=-1.0), "learning_rate=-1.0"),
        ("decay", dict(weight_decay=-1e-4), "weight_decay=-0.0001"),
        ("schedule", dict(lr_schedule="linear"), "lr_schedule='linear'"),
        ("strategy", dict(strategy="tpu"), "strategy='tpu'"),
        ("checkpoints", dict(checkpoint_steps=0), "checkpoint_steps=0"),
    )
    def test_bad_settings(self, overrides, message):
        with self.assertRaisesRegex(ValueError, message):
            train_lib.resolve_config(TrainConfig(**overrides))

    def test_model_dir_that_is_a_file(self):
        path = os.path.join(fresh_dir(self), "model")
        open(path, "w").close()
        with self.assertRaisesRegex(ValueError, "is a file"):
            train_lib.resolve_config(TrainConfig(model_dir=path))


class LearningRateScheduleTest(TestCase):
    def test_cifar_steps_as_the_authors(self):
        # 200 epochs of one step: epochs 1-60 use 0.1, 61-120 0.02, 121-160
        # 0.004, 161-200 0.0008 (pytorch-i-revnet utils_cifar.learning_rate).
        recipe = recipes.CIFAR
        schedule = train_lib.learning_rate_schedule(
            "step", 0.1, 200, recipe.lr_boundaries, recipe.lr_decay_factor
        )
        for epoch, expected in ((1, 0.1), (60, 0.1), (61, 0.02), (120, 0.02)):
            with self.subTest(epoch=epoch):
                # The update of epoch e sees e - 1 steps taken.
                self.assertAllClose(schedule(epoch - 1), expected)
        for epoch, expected in ((121, 0.004), (161, 0.0008), (200, 0.0008)):
            with self.subTest(epoch=epoch):
                self.assertAllClose(schedule(epoch - 1), expected)

    def test_imagenet_divides_by_ten_every_160k(self):
        recipe = recipes.IMAGENET
        schedule = train_lib.learning_rate_schedule(
            "step", 0.1, 600_000, recipe.lr_boundaries, recipe.lr_decay_factor
        )
        for step, expected in (
            (0, 0.1),
            (159_999, 0.1),
            (160_000, 0.01),
            (320_000, 0.001),
            (480_000, 0.0001),
            (599_999, 0.0001),
        ):
            with self.subTest(step=step):
                self.assertAllClose(schedule(step), expected)

    def test_cosine_and_constant(self):
        cosine = train_lib.learning_rate_schedule("cosine", 0.1, 100)
        self.assertAllClose(cosine(0), 0.1)
        self.assertAllClose(cosine(50), 0.05)
        self.assertAllClose(cosine(100), 0.0)
        self.assertEqual(
            train_lib.learning_rate_schedule("constant", 0.3, 9), 0.3
        )


class FitPhasesTest(TestCase):
    @parameterized.named_parameters(
        ("fresh", 0, 44, 22, [(0, 2, 22)]),
        ("mid_epoch", 5, 44, 22, [(0, 1, 17), (1, 2, 22)]),
        ("epoch_boundary", 22, 44, 22, [(1, 2, 22)]),
        ("last_epoch", 30, 44, 22, [(1, 2, 14)]),
        ("finished", 44, 44, 22, []),
        ("partial_last_epoch", 0, 50, 22, [(0, 2, 22), (2, 3, 6)]),
        ("resumed_partial", 30, 50, 22, [(1, 2, 14), (2, 3, 6)]),
        ("shorter_than_an_epoch", 3, 10, 22, [(0, 1, 7)]),
    )
    def test_phases(self, start, total, per_epoch, expected):
        phases = train_lib.fit_phases(start, total, per_epoch)
        self.assertEqual(phases, expected)
        self.assertEqual(
            sum((end - begin) * steps for begin, end, steps in phases),
            total - start,
        )


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
        with self.assertRaisesRegex(train_lib.UsageError, "Unknown preset"):
            train_lib.train_and_evaluate(
                TrainConfig(preset="tiny", model_dir=model_dir)
            )
        self.assertFalse(os.path.exists(model_dir))

    def test_batch_larger_than_the_training_set(self):
        with self.assertRaisesRegex(
            train_lib.UsageError, "larger than the 1437 training examples"
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
            train_lib.make_strategy("multi_worker")

    def test_resume_with_other_settings_is_refused(self):
        model_dir = fresh_dir(self)
        with open(os.path.join(model_dir, "config.json"), "w") as f:
            json.dump({"config": {"dataset": "digits", "preset": "cifar10"}}, f)
        with self.assertRaisesRegex(
            train_lib.UsageError, "preset='cifar10' \\(now 'digits'\\)"
        ):
            train_lib.train_and_evaluate(
                TrainConfig(model_dir=model_dir, data_dir=prepared_digits_dir())
            )
