"""`load_classifier`: an `IRevNetClassifier` from a `.keras` file or run."""

import os

import keras

from irevnet_tf import run_directory
from irevnet_tf.models.irevnet_classifier import IRevNetClassifier
from irevnet_tf.run_directory import MODEL_FILENAME


def load_classifier(path: str) -> IRevNetClassifier:
    """Loads an `IRevNetClassifier` saved with `model.save`.

    Args:
        path: a `.keras` file, or a training `--model_dir` that holds
            `model.keras`.

    Returns:
        The classifier, without optimizer or loss (`compile=False`).

    Raises:
        ValueError: if there is no such file, it cannot be read as a Keras
            model, it holds another kind of model, or its training run
            normalised images outside the model (see `_check_takes_pixels`).
    """
    if os.path.isdir(path):
        model_dir, path = path, os.path.join(path, MODEL_FILENAME)
        if not os.path.isfile(path):
            raise ValueError(
                f"The directory holds no {MODEL_FILENAME}: expected a .keras "
                "file or a training --model_dir with the final model in "
                f"{MODEL_FILENAME}. Received: model={model_dir}"
            )
    elif not os.path.isfile(path):
        raise ValueError(
            "No such file or directory: expected a .keras file or a training "
            f"--model_dir. Received: model={path}"
        )
    elif not path.endswith(".keras"):
        raise ValueError(
            "Expected a .keras file (saved with `model.save`) or a training "
            f"--model_dir. Received: model={path}"
        )
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as error:  # noqa: BLE001
        # Keras raises ValueError, KeyError (a zip without config.json),
        # TypeError (an unknown class) or OSError for unreadable files.
        reason = str(error).strip().splitlines()[0] if str(error) else ""
        raise ValueError(
            f"Could not load the model: {type(error).__name__}: {reason} "
            f"Received: model={path}"
        ) from error
    if not isinstance(model, IRevNetClassifier):
        raise ValueError(
            "The model must be an IRevNetClassifier. Received: "
            f"model={path} holding a {type(model).__name__}"
        )
    _check_takes_pixels(model, path)
    return model


def _check_takes_pixels(model: IRevNetClassifier, path: str) -> None:
    """Refuses the model of a run that normalised images outside it.

    Runs of irevnet-tf 0.1 standardised images in the input pipeline and
    recorded `normalized: true`; their model expects standardised images,
    which nothing downstream (analyses, export, serving) gives it any more.
    Runs since 0.2 record the same flag and put the standardisation in the
    model's first layer.
    """
    run = run_directory.RunDirectory.of_model(path)
    record = run_directory.read_run_record(run.path) if run else None
    if (
        record is not None
        and record.dataset.normalized
        and model.backbone.standardization is None
    ):
        raise ValueError(
            "The run normalised its images outside the model (a run of "
            "irevnet-tf 0.1), but every program now gives the model pixels "
            "in [0, 1]; train it again, or load the .keras file alone and "
            "standardise its inputs yourself with the recorded "
            f"mean={record.dataset.mean} and std={record.dataset.std}. "
            f"Received: model={path}"
        )
