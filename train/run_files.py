"""The files a run writes into its `--model_dir`, and the checks on them.

The layout and the `config.json` schema are `irevnet_tf.run_directory`'s;
this module is the writer's side: the `RunRecord` of a run, the final
model and `metrics.json`, each written atomically (`irevnet_tf.files`), and
the check that a directory's earlier run is the one being resumed.
"""

import dataclasses
import json
import os

from irevnet_tf import datasets
from irevnet_tf import files
from irevnet_tf.run_directory import DatasetRecord
from irevnet_tf.run_directory import RunDirectory
from irevnet_tf.run_directory import RunRecord
from train.configs import recipes as recipes_lib
from train.configs.base import TrainConfig

# Settings a resumed run must share with the run that wrote the checkpoint:
# they change the weights' shapes or what the model's inputs mean.
RESUME_KEYS = ("dataset", "preset", "image_size", "recipe")


def run_record(
    config: TrainConfig,
    recipe: recipes_lib.Recipe,
    info: datasets.DatasetInfo,
    steps_per_epoch: int,
    total_steps: int,
    replicas: int,
) -> RunRecord:
    """The `config.json` record of a run."""
    return RunRecord(
        config=dataclasses.asdict(config),
        recipe=dataclasses.asdict(recipe),
        dataset=DatasetRecord(
            name=info.name,
            num_classes=info.num_classes,
            class_names=list(info.class_names or []),
            image_shape=list(info.image_shape),
            train_examples=info.num_examples,
            eval_split=info.eval_split,
            normalized=info.normalized,
            mean=list(info.mean),
            std=list(info.std),
        ),
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
        replicas=replicas,
    )


def write_run_record(run_dir: RunDirectory, record: RunRecord) -> None:
    os.makedirs(run_dir.path, exist_ok=True)
    files.write_json(run_dir.config_path, record.to_json())


def check_resumable(run_dir: RunDirectory, config: TrainConfig) -> None:
    """Checks that `run_dir` is empty or holds a run of the same settings.

    Raises:
        ValueError: naming each setting that differs, or an unreadable
            `config.json`.
    """
    path = run_dir.config_path
    if not os.path.exists(path):
        return
    try:
        # Only the settings are compared: an older record's other fields
        # need not parse.
        with open(path) as file:
            previous = json.load(file)["config"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"{path} cannot be read ({error}); pass another model directory. "
            f"Received: model_dir={config.model_dir!r}"
        ) from None
    current = dataclasses.asdict(config)
    changed = [k for k in RESUME_KEYS if previous.get(k) != current[k]]
    if changed:
        settings = ", ".join(
            f"{k}={previous.get(k)!r} (now {current[k]!r})" for k in changed
        )
        raise ValueError(
            f"The model directory {config.model_dir} holds a run with other "
            f"settings: {settings}. Pass the same settings to resume it or "
            f"another model directory. Received: model_dir={config.model_dir!r}"
        )


def save_model(model, path: str) -> None:
    """Saves `model` to the `.keras` file `path`; never half a file."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with files.atomic_path(path) as staged:
        model.save(staged)


def write_metrics(run_dir: RunDirectory, metrics: dict) -> None:
    files.write_json(run_dir.metrics_path, metrics)
