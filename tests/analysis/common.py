"""A small i-RevNet trained on scikit-learn's digits, shared by the tests.

Trained once per test process, in process, for a few epochs (about 20 s on
two cores): accurate enough (about 90% test accuracy) for the analyses to
show real structure, and saved as a training run would leave it.
"""

import atexit
import functools
import shutil
import tempfile

import keras

from irevnet_tf import IRevNet
from irevnet_tf import IRevNetClassifier
from irevnet_tf import datasets
from irevnet_tf import files
from irevnet_tf import run_directory
from irevnet_tf.analysis import DataSettings
from irevnet_tf.datasets.loading import TFDS_DATASETS
from irevnet_tf.testing.test_case import randomize_batch_norm
from tests.datasets.digit_files import prepared_digits_dir

EPOCHS = 2


def digits_settings(**overrides) -> DataSettings:
    """`DataSettings` of the digits at 16x16 from the tests' tfds dir."""
    return DataSettings("digits", data_dir=prepared_digits_dir(), **overrides)


@functools.lru_cache(maxsize=None)
def trained_classifier() -> IRevNetClassifier:
    """The "digits" preset after a few epochs of SGD on the training split."""
    keras.utils.set_random_seed(0)
    train, _ = datasets.load(
        "digits", "train", image_size=16, data_dir=prepared_digits_dir()
    )
    # Plain autodiff: faster to train, and the function is the same.
    model = IRevNetClassifier.from_preset("digits", memory_saving=False)
    model.compile(
        keras.optimizers.SGD(0.05, momentum=0.9),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(
        train.shuffle(1437, seed=0).batch(64),
        epochs=EPOCHS,
        shuffle=False,  # The pipeline shuffles.
        verbose=0,
    )
    return model


@functools.lru_cache(maxsize=None)
def model_dir() -> str:
    """A training `--model_dir`: `model.keras` and a `config.json`.

    The model is the untrained "digits" preset with random BatchNorm
    statistics (the command-line tests check plumbing, not accuracy). The
    config.json is a `RunRecord` as the training program writes it, and
    says the images are normalised.
    """
    directory = tempfile.mkdtemp(prefix="analysis-model-")
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    keras.utils.set_random_seed(1)
    model = IRevNetClassifier.from_preset("digits")
    randomize_batch_norm(model, seed=1)
    run = run_directory.RunDirectory(directory)
    model.save(run.model_path)
    statistics = TFDS_DATASETS["digits"]
    record = run_directory.RunRecord(
        config={"dataset": "digits", "preset": "digits"},
        recipe={"name": "digits", "preprocessing": "resize"},
        dataset=run_directory.DatasetRecord(
            name="digits",
            num_classes=10,
            class_names=[str(i) for i in range(10)],
            image_shape=[16, 16, 1],
            train_examples=1437,
            eval_split="test",
            normalized=True,
            mean=list(statistics["mean"]),
            std=list(statistics["std"]),
        ),
        steps_per_epoch=23,
        total_steps=0,
        replicas=1,
    )
    files.write_json(run.config_path, record.to_json())
    return directory


def bijective_classifier(seed: int = 0) -> IRevNetClassifier:
    """An untrained bijective model of 16x16x1 images (no zero padding).

    16x16x1 -> 4x4x16 (initial down-sampling) -> 8+8 channels, width 8 ->
    stride 2: 2x2x64, width 32. Features hold exactly 256 values.
    """
    keras.utils.set_random_seed(seed)
    model = IRevNetClassifier(
        IRevNet(
            stage_depths=[1, 1],
            stage_filters=[8, 32],
            stage_strides=[1, 2],
            initial_block_size=4,
            image_shape=(16, 16, 1),
        ),
        10,
    )
    randomize_batch_norm(model, seed)
    return model
