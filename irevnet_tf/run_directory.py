"""The layout of a training run's directory (`--model_dir`) and its record.

    MODEL_DIR/
        config.json                    RunRecord: settings, recipe, dataset
        checkpoints/state.weights.h5   the training state, every N steps
        logs/                          TensorBoard: train/, validation/,
                                       reconstructions/
        model.keras                    the final model, without optimizer
        metrics.json                   accuracies, reconstruction error
        workers/<task>/model.keras     multi-worker runs: the other workers'

The training program writes it (`train/`); the analyses, the exporter and
`load_classifier` read it. Both sides go through this module.
"""

import dataclasses
import json
import os

CONFIG_FILENAME = "config.json"
METRICS_FILENAME = "metrics.json"
MODEL_FILENAME = "model.keras"
CHECKPOINT_DIRNAME = "checkpoints"
CHECKPOINT_FILENAME = "state.weights.h5"
LOG_DIRNAME = "logs"
WORKERS_DIRNAME = "workers"


@dataclasses.dataclass(frozen=True)
class RunDirectory:
    """The paths of one training run's directory."""

    path: str

    @property
    def config_path(self) -> str:
        return os.path.join(self.path, CONFIG_FILENAME)

    @property
    def metrics_path(self) -> str:
        return os.path.join(self.path, METRICS_FILENAME)

    @property
    def model_path(self) -> str:
        return os.path.join(self.path, MODEL_FILENAME)

    @property
    def checkpoint_dir(self) -> str:
        return os.path.join(self.path, CHECKPOINT_DIRNAME)

    @property
    def checkpoint_path(self) -> str:
        return os.path.join(self.checkpoint_dir, CHECKPOINT_FILENAME)

    @property
    def log_dir(self) -> str:
        return os.path.join(self.path, LOG_DIRNAME)

    def worker_dir(self, task_type: str, task_id: int) -> str:
        """Where a non-chief worker of a multi-worker run saves its model."""
        return os.path.join(
            self.path, WORKERS_DIRNAME, f"{task_type}-{task_id}"
        )

    @classmethod
    def of_model(cls, model_path: str) -> "RunDirectory | None":
        """The run directory a model path belongs to, if any.

        Args:
            model_path: a run directory, or the `model.keras` inside one.
        """
        if os.path.isdir(model_path):
            return cls(model_path)
        if os.path.basename(model_path) == MODEL_FILENAME:
            return cls(os.path.dirname(os.path.abspath(model_path)))
        return None


@dataclasses.dataclass(frozen=True)
class DatasetRecord:
    """What a run recorded about its dataset."""

    name: str
    num_classes: int
    class_names: list
    image_shape: list
    train_examples: int
    eval_split: str
    # True if the model standardises its pixel inputs, (x - mean) / std, as
    # its first layer (`IRevNet(input_mean=mean, input_std=std)`); else its
    # blocks see the pixels in [0, 1]. Either way the model takes pixels.
    normalized: bool
    mean: list
    std: list


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """`config.json`: the resolved settings of a run and its dataset.

    Attributes:
        config: the resolved `TrainConfig` fields, by name.
        recipe: the recipe's fields, by name.
        dataset: facts about the dataset the run trains on.
        steps_per_epoch: optimizer steps per epoch.
        total_steps: optimizer steps of the whole run.
        replicas: replicas in sync.
        training_state_format: what the checkpoints of the run hold; 1
            (the default, for records that do not say) for irevnet-tf 0.1,
            whose optimizer kept momentum in Keras's form and whose models
            took normalised images. `train/run_files.py` writes the current
            one and resumes only that.
    """

    config: dict
    recipe: dict
    dataset: DatasetRecord
    steps_per_epoch: int
    total_steps: int
    replicas: int
    training_state_format: int = 1

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, record: dict) -> "RunRecord":
        """Parses a `config.json` record.

        Raises:
            ValueError: if a field is missing or malformed.
        """
        try:
            fields = dict(record)
            fields["dataset"] = DatasetRecord(**record["dataset"])
            return cls(**fields)
        except (KeyError, TypeError) as error:
            raise ValueError(f"not a run record ({error!r})") from None


def read_run_record(run_dir: str) -> RunRecord | None:
    """The `config.json` of the run directory `run_dir`.

    Returns:
        The record, or None if the directory holds no `config.json`.

    Raises:
        ValueError: naming the file, if it exists but cannot be read.
    """
    path = RunDirectory(run_dir).config_path
    if not os.path.exists(path):
        return None
    try:
        with open(path) as file:
            return RunRecord.from_json(json.load(file))
    except (OSError, ValueError) as error:
        raise ValueError(f"{path} cannot be read: {error}") from None
