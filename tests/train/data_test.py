"""The run's data: training batches as functions of the seed and the step."""

import os
import tempfile

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from irevnet_tf.testing.digit_files import prepared_digits_dir
from irevnet_tf.testing.digit_files import write_digit_folder
from irevnet_tf.testing.test_case import TestCase
from train import data as data_lib
from train.configs.base import TrainConfig
from train.configs.resolve import resolve_config


def run_data(**overrides):
    config, recipe = resolve_config(
        TrainConfig(
            **dict(
                dict(
                    image_size=8,
                    batch_size=64,
                    recipe="cifar",  # Random crops and flips.
                    data_dir=prepared_digits_dir(),
                    model_dir=os.path.join(
                        tempfile.gettempdir(), "never-written"
                    ),
                    seed=5,
                ),
                **overrides,
            )
        )
    )
    return data_lib.load_run_data(config, recipe)


def global_batches(strategy, data, start_step, count):
    """`count` global batches as arrays, the replicas' parts concatenated."""
    batches = []
    iterator = iter(data.training_batches(strategy, start_step))
    for _ in range(count):
        images, labels = next(iterator)
        parts = strategy.experimental_local_results(images)
        batches.append(np.concatenate([p.numpy() for p in parts]))
    return np.stack(batches)


class TrainingBatchesTest(TestCase):
    @parameterized.named_parameters(
        (f"{strategy}_step{start_step}", strategy, start_step)
        for strategy in ("one_device", "mirrored")
        for start_step in (3, 22, 30)  # 22 steps per epoch.
    )
    def test_resumed_batches_are_the_uninterrupted_ones(
        self, strategy, start_step
    ):
        if strategy == "mirrored":
            devices = tf.config.list_logical_devices("CPU")
            strategy = tf.distribute.MirroredStrategy([d.name for d in devices])
        else:
            strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
        data = run_data()
        self.assertEqual(data.steps_per_epoch, 22)
        uninterrupted = global_batches(strategy, data, 0, start_step + 3)
        resumed = global_batches(strategy, data, start_step, 3)
        self.assertAllEqual(resumed, uninterrupted[start_step:])
        # Not one batch repeated: the steps see different examples.
        self.assertNotAllEqual(uninterrupted[0], uninterrupted[1])


class RunDataTest(TestCase):
    def folder(self, **kwargs):
        root = tempfile.mkdtemp(dir=self.get_temp_dir())
        write_digit_folder(root, **kwargs)
        return f"folder:{root}"

    def test_one_class_is_refused(self):
        with self.assertRaisesRegex(
            ValueError, "holds 1 class; a classifier needs at least two"
        ):
            run_data(
                dataset=self.folder(classes=(0,), per_class=10), batch_size=2
            )

    def test_empty_test_split_is_refused(self):
        # One image per class: by the folder's path rule, none is held out.
        dataset = self.folder(classes=(0, 1), per_class=1)
        with self.assertRaisesRegex(ValueError, "The test split .* is empty"):
            run_data(dataset=dataset, batch_size=1)

    def test_batch_larger_than_the_training_set(self):
        with self.assertRaisesRegex(
            ValueError, "larger than the 1437 training examples"
        ):
            run_data(batch_size=5000)
