"""Small i-RevNet classifiers of 16x16 digits for tests.

- `trained_classifier`: the "digits" preset after two epochs on
  scikit-learn's digits, trained once per process, in process (about 20 s
  on two cores): accurate enough (about 90% test accuracy) for the analyses
  to show real structure.
- `run_directory`: a training `--model_dir` as the training program leaves
  it (`model.keras` and its `config.json` record), with an untrained model.
- `bijective_classifier`: an untrained model without zero padding.
"""

import atexit
import functools
import shutil
import tempfile

import keras

from irevnet_tf import datasets
from irevnet_tf import files
from irevnet_tf import run_directory as run_directory_lib
from irevnet_tf.datasets.loading import TFDS_DATASETS
from irevnet_tf.models.irevnet import IRevNet
from irevnet_tf.models.irevnet_classifier import IRevNetClassifier
from irevnet_tf.testing.test_case import randomize_batch_norm

EPOCHS = 2
IMAGE_SIZE = 16


@functools.lru_cache(maxsize=None)
def trained_classifier(data_dir: str) -> IRevNetClassifier:
    """The "digits" preset after `EPOCHS` epochs of SGD on the training split.

    Args:
        data_dir: a TensorFlow Datasets directory holding the prepared
            "digits" (or where to prepare them).
    """
    keras.utils.set_random_seed(0)
    train, _ = datasets.load(
        "digits", "train", image_size=IMAGE_SIZE, data_dir=data_dir
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
def run_directory() -> str:
    """A training `--model_dir`: `model.keras` and its `config.json`.

    The model is the untrained "digits" preset with random BatchNorm
    statistics (for tests of plumbing, not of accuracy). The record is a
    `RunRecord` of a digits run with the "resize" preprocessing whose model
    standardises its pixel inputs with the recorded statistics. Removed
    when the process exits.
    """
    directory = tempfile.mkdtemp(prefix="digits-run-")
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    keras.utils.set_random_seed(1)
    statistics = TFDS_DATASETS["digits"]
    model = IRevNetClassifier.from_preset(
        "digits",
        input_mean=list(statistics["mean"]),
        input_std=list(statistics["std"]),
    )
    randomize_batch_norm(model, seed=1)
    run = run_directory_lib.RunDirectory(directory)
    model.save(run.model_path)
    record = run_directory_lib.RunRecord(
        config={"dataset": "digits", "preset": "digits"},
        recipe={"name": "digits", "preprocessing": "resize"},
        dataset=run_directory_lib.DatasetRecord(
            name="digits",
            num_classes=10,
            class_names=[str(i) for i in range(10)],
            image_shape=[IMAGE_SIZE, IMAGE_SIZE, 1],
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
            image_shape=(IMAGE_SIZE, IMAGE_SIZE, 1),
        ),
        10,
    )
    randomize_batch_norm(model, seed)
    return model
