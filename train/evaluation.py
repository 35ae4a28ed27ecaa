"""What a run reports about its model: accuracies and the inverse's error.

Everything runs in inference mode (BatchNorm moving statistics, no
dropout), on the un-augmented evaluation pipelines of the run.
"""

import math

import numpy as np
import tensorflow as tf

from irevnet_tf import datasets
from irevnet_tf.reconstruction_error import relative_errors

# Training examples whose accuracy metrics.json reports (inference mode).
TRAIN_ACCURACY_EXAMPLES = 10_000


def evaluate_run(model, data, config, total_steps: int) -> dict:
    """The metrics of a run's model (`evaluate`), with what they are of.

    Args:
        model: the trained `IRevNetClassifier`.
        data: the run's `train.data.RunData`.
        config: the run's resolved `TrainConfig`.
        total_steps: the run's length in optimizer steps.
    """
    metrics = {
        "dataset": config.dataset,
        "preset": config.preset,
        "recipe": config.recipe,
    }
    metrics.update(
        evaluate(
            model,
            data.eval_examples.batch(config.batch_size),
            data.train_examples.take(TRAIN_ACCURACY_EXAMPLES).batch(
                config.batch_size
            ),
            data.info,
            config.reconstruction_examples,
        )
    )
    metrics.update(
        steps=total_steps,
        epochs=math.ceil(total_steps / data.steps_per_epoch),
        steps_per_epoch=data.steps_per_epoch,
    )
    return metrics


def evaluate(
    model,
    test_batches: tf.data.Dataset,
    train_batches: tf.data.Dataset,
    info: datasets.DatasetInfo,
    reconstruction_examples: int,
) -> dict:
    """Accuracies and reconstruction error of `model`, in inference mode.

    Args:
        model: the trained `IRevNetClassifier`.
        test_batches: batches of the evaluation split, one pass.
        train_batches: batches of the first training images (no
            augmentation), one pass.
        info: the training split's `DatasetInfo`.
        reconstruction_examples: test images whose reconstruction error is
            measured.

    Returns:
        The evaluation part of `metrics.json`, with its notes.
    """
    measure = _measurer(model)
    test = measure(test_batches, reconstruction_examples)
    train = measure(train_batches, 0)
    return {
        "train_accuracy": train["accuracy"],
        "train_examples": train["examples"],
        "test_accuracy": test["accuracy"],
        "test_loss": test["loss"],
        "test_examples": test["examples"],
        "test_split": info.eval_split,
        "reconstruction_error": test["reconstruction_error"],
        "reconstruction_error_max": test["reconstruction_error_max"],
        "reconstruction_examples": test["reconstruction_examples"],
        # The model takes pixels and its inverse returns them, whether or
        # not it standardises them first.
        "reconstruction_space": "pixels in [0, 1]",
        "notes": {
            "train_accuracy": (
                "inference mode, no augmentation, on the first "
                f"{train['examples']} training images"
            ),
            "train_accuracy_last_epoch": (
                "Keras's running accuracy over the last epoch's training "
                "batches (training mode, augmented); null if no epoch ran"
            ),
            "reconstruction_error": (
                "mean over test images of ||x - inverse(features(x))|| / "
                "||x||, x and the reconstruction pixel images in [0, 1] "
                "(what the model takes and its inverse returns), inference "
                "mode, float32 model, error computed in float64 "
                "(irevnet_tf.reconstruction_error)"
            ),
            "wall_time_seconds": (
                "this invocation of train_and_evaluate, from settings to "
                "metrics (not interpreter start-up)"
            ),
        },
    }


def _measurer(model):
    """`measure(batches, reconstruction_examples)`: accuracy, loss, error."""

    @tf.function(reduce_retracing=True)
    def classify(images, labels):
        features = model.features(images, training=False)
        logits = model.logits_from_features(features, training=False)
        predictions = tf.argmax(logits, -1, output_type=tf.int32)
        correct = tf.reduce_sum(tf.cast(predictions == labels, tf.int32))
        loss = tf.reduce_sum(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
        )
        return features, correct, loss

    @tf.function(reduce_retracing=True)
    def reconstruct(features):
        return model.inverse(features, training=False)

    def measure(batches, reconstruction_examples):
        correct = examples = 0
        loss_sum = 0.0
        errors = []
        for images, labels in batches:
            features, batch_correct, batch_loss = classify(images, labels)
            correct += int(batch_correct)
            loss_sum += float(batch_loss)
            examples += int(labels.shape[0])
            wanted = reconstruction_examples - len(errors)
            if wanted > 0:
                restored = reconstruct(features)
                errors.extend(relative_errors(images, restored)[:wanted])
        return {
            "accuracy": correct / max(examples, 1),
            "loss": loss_sum / max(examples, 1),
            "examples": examples,
            "reconstruction_error": float(np.mean(errors)) if errors else None,
            "reconstruction_error_max": (
                float(np.max(errors)) if errors else None
            ),
            "reconstruction_examples": len(errors),
        }

    return measure
