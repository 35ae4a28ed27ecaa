"""The files a run writes into its `--model_dir`, and the checks on them.

The layout and the `config.json` schema are `irevnet_tf.run_directory`'s;
this module is the writer's side: the `RunRecord` of a run, the final
model and `metrics.json`, each written atomically (`irevnet_tf.files`); the
exclusive lock of the directory; the check that a directory's earlier run
is the one being resumed.
"""

import contextlib
import dataclasses
import fcntl
import json
import math
import os
from typing import Iterator

from irevnet_tf import datasets
from irevnet_tf import files
from irevnet_tf.run_directory import DatasetRecord
from irevnet_tf.run_directory import RunDirectory
from irevnet_tf.run_directory import RunRecord
from train.configs import recipes as recipes_lib
from train.configs.base import TrainConfig

# Dataset facts a resumed run must find unchanged (a folder may have
# gained images since): they change the weights' shapes or the batches.
RESUME_DATASET_KEYS = ("num_classes", "class_names", "image_shape")
RESUME_RUN_KEYS = ("steps_per_epoch", "total_steps")
# Version of what a run's checkpoints hold. 2 (irevnet-tf 0.2): `SGDWithL2`
# keeps PyTorch's momentum buffer (gradients, not steps) and models
# standardise their pixel inputs themselves. Checkpoints of another format
# would restore into the wrong meaning, so they are not resumed.
TRAINING_STATE_FORMAT = 2
# The directories of an export, as `metrics.json` records them.
EXPORT_DIR_KEYS = ("forward_dir", "inverse_dir")


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
            normalized=recipe.normalize,
            mean=list(info.mean),
            std=list(info.std),
        ),
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
        replicas=replicas,
        training_state_format=TRAINING_STATE_FORMAT,
    )


def write_run_record(run_dir: RunDirectory, record: RunRecord) -> None:
    """Writes `config.json`; a resumed run keeps the one it found."""
    os.makedirs(run_dir.path, exist_ok=True)
    files.write_json(run_dir.config_path, record.to_json())


def remove_stale_staging(run_dir: RunDirectory) -> None:
    """Removes what a killed process was writing (hold the lock)."""
    for directory in (run_dir.path, run_dir.checkpoint_dir):
        files.remove_stale_staging(directory)


@contextlib.contextmanager
def exclusive(run_dir: RunDirectory) -> Iterator[None]:
    """Holds the run directory's lock: one training process at a time.

    The lock is `flock` on the directory itself, so taking it writes
    nothing, and the operating system releases it when the process ends,
    however it ends. The directory is created if needed.

    Raises:
        ValueError: if another process holds it.
    """
    os.makedirs(run_dir.path, exist_ok=True)
    descriptor = os.open(run_dir.path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValueError(
                f"Another process is training in the model directory "
                f"{run_dir.path} (it holds the directory's lock); wait for it "
                "to finish or pass another model directory. "
                f"Received: model_dir={run_dir.path!r}"
            ) from None
        yield
    finally:
        os.close(descriptor)


def check_resumable(run_dir: RunDirectory, record: RunRecord) -> bool:
    """Checks that `run_dir` is new or holds a run of the same settings.

    Call it holding the directory's lock. Settings declared `may_differ`
    (`TrainConfig`) are not compared.

    Args:
        run_dir: the run directory.
        record: the record this run would write.

    Returns:
        True if the directory holds an earlier run of these settings.

    Raises:
        ValueError: naming each setting that differs with its recorded and
            its new value; for an unreadable `config.json`; or for training
            state or a model without a `config.json`.
    """
    received = f"Received: model_dir={run_dir.path!r}"
    path = run_dir.config_path
    if not os.path.exists(path):
        for found in (run_dir.checkpoint_path, run_dir.model_path):
            if os.path.exists(found):
                raise ValueError(
                    f"The model directory {run_dir.path} holds {found} but no "
                    f"{os.path.basename(path)}, so the settings it was "
                    "trained with are unknown; pass another model directory "
                    f"(or delete {found} to start over). {received}"
                )
        return False
    try:
        # An older record's other fields need not parse: read what is
        # compared.
        with open(path) as file:
            previous = json.load(file)
        previous_config = previous["config"]
        if not isinstance(previous_config, dict):
            raise TypeError("`config` is not an object")
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"{path} cannot be read ({error}); pass another model directory. "
            f"{received}"
        ) from None
    recorded_format = previous.get("training_state_format", 1)
    if recorded_format != TRAINING_STATE_FORMAT:
        raise ValueError(
            f"The model directory {run_dir.path} holds a run of an earlier "
            f"irevnet-tf (training state format {recorded_format}, now "
            f"{TRAINING_STATE_FORMAT}: the optimizer's momentum and the "
            "model's input standardisation changed), which cannot be "
            f"resumed; pass another model directory. {received}"
        )
    config = TrainConfig(**record.config)
    changed = config.differences(previous_config)
    if changed:
        settings = ", ".join(
            f"{name}={old!r} (now {new!r})" for name, old, new in changed
        )
        raise ValueError(
            f"The model directory {run_dir.path} holds a run with other "
            f"settings: {settings}. Pass the same settings to resume it or "
            f"another model directory. {received}"
        )
    facts = dataclasses.asdict(record.dataset)
    recorded_facts = previous.get("dataset") or {}
    changed = [
        (key, recorded_facts.get(key), facts[key])
        for key in RESUME_DATASET_KEYS
        if key in recorded_facts and recorded_facts[key] != facts[key]
    ] + [
        (key, previous.get(key), getattr(record, key))
        for key in RESUME_RUN_KEYS
        if key in previous and previous[key] != getattr(record, key)
    ]
    if changed:
        facts_text = ", ".join(
            f"{name}={old!r} (now {new!r})" for name, old, new in changed
        )
        raise ValueError(
            f"The dataset {config.dataset} has changed since the run in "
            f"{run_dir.path} started: {facts_text}. Pass another model "
            f"directory. {received}"
        )
    return True


def save_model(model, path: str) -> None:
    """Saves `model` to the `.keras` file `path`; never half a file."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with files.atomic_path(path) as staged:
        model.save(staged)


def write_metrics(run_dir: RunDirectory, metrics: dict) -> None:
    """Writes `metrics.json` as strict JSON: non-finite numbers as null."""
    files.write_json(run_dir.metrics_path, _finite_or_none(metrics))


def previous_export(run_dir: RunDirectory, export_dir: str) -> dict | None:
    """The export `metrics.json` records into `export_dir`, if still there."""
    try:
        with open(run_dir.metrics_path) as file:
            export = json.load(file).get("export") or {}
    except (OSError, ValueError, AttributeError):
        return None
    if export.get("export_dir") != os.path.abspath(export_dir):
        return None
    if all(os.path.isdir(export.get(k) or "") for k in EXPORT_DIR_KEYS):
        return export
    return None


def _finite_or_none(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    return value
