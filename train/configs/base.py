"""The settings of a training run, one field per flag of `train.train`.

    python -m train.train --dataset=digits --model_dir=runs/digits

Fields left None take their value from the recipe, the dataset or the
preset when the run starts (`train_lib.resolve_config`).
"""

import dataclasses

# The `tf.distribute` strategies a run can use (see train_lib.make_strategy).
STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker")


@dataclasses.dataclass
class TrainConfig:
    """A training run. See the flags of `train.train` for each field."""

    dataset: str = "digits"
    preset: str | None = None
    image_size: int | None = None
    batch_size: int | None = None
    epochs: int | None = None
    train_steps: int | None = None
    learning_rate: float | None = None
    momentum: float | None = None
    weight_decay: float | None = None
    lr_schedule: str | None = None
    recipe: str | None = None
    memory_saving: bool = True
    strategy: str = "auto"
    model_dir: str | None = None
    data_dir: str | None = None
    manual_dir: str | None = None
    seed: int = 0
    deterministic: bool = False
    checkpoint_steps: int = 200
    reconstruction_examples: int = 1000
    export_dir: str | None = None
    verbose: int = 1
