"""The data of a run: every pipeline built once, the training batches by step.

`load_run_data` reads the dataset's facts and builds the evaluation
pipelines (the evaluation split and the un-augmented training split, each
in a fixed order) and checks that the dataset can train a classifier.
`training_batches(start_step)` gives the augmented training batches from an
optimizer step on: which examples a step sees and how they are augmented
are functions of the seed and the step alone, so a resumed run sees exactly
the batches an uninterrupted one would (`irevnet_tf.datasets.load`).
"""

import dataclasses

import numpy as np
import tensorflow as tf

from irevnet_tf import datasets
from train.configs import recipes as recipes_lib
from train.configs.base import TrainConfig


@dataclasses.dataclass
class RunData:
    """The pipelines of a run and what they hold.

    Attributes:
        info: the training split's `DatasetInfo`.
        eval_examples: the evaluation split, unbatched, one pass.
        train_examples: the training split without augmentation, unbatched,
            one pass (for the training accuracy in inference mode).
        steps_per_epoch: optimizer steps per pass over the training split.
    """

    config: TrainConfig
    load_kwargs: dict
    info: datasets.DatasetInfo
    eval_examples: tf.data.Dataset
    train_examples: tf.data.Dataset
    steps_per_epoch: int

    def training_batches(
        self, strategy: tf.distribute.Strategy, start_step: int
    ) -> tf.distribute.DistributedDataset:
        """Global batches for optimizer steps `start_step`, `start_step + 1`...

        Every input pipeline has consumed `batch_size / pipelines` examples
        of its stream per step, so it starts after that many per step.
        """
        config = self.config

        def dataset_fn(context: tf.distribute.InputContext):
            consumed = start_step * (
                config.batch_size // context.num_input_pipelines
            )
            dataset, _ = datasets.load(
                config.dataset,
                "train",
                training=True,
                seed=config.seed,
                input_context=context,
                start=consumed,
                # The order of the examples is part of the run's result.
                deterministic=True,
                **self.load_kwargs,
            )
            batch = context.get_per_replica_batch_size(config.batch_size)
            return dataset.batch(batch, drop_remainder=True)

        return strategy.distribute_datasets_from_function(dataset_fn)

    def first_eval_images(self, count: int) -> np.ndarray:
        """The first `count` images of the evaluation split."""
        examples = self.eval_examples.take(count).as_numpy_iterator()
        return np.stack([image for image, _ in examples])

    def validation_batches(self) -> tf.data.Dataset:
        options = tf.data.Options()
        # Every worker reads the (small) evaluation pipeline and keeps its
        # share of the batches: a tfds split may have fewer files than
        # there are workers.
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA
        )
        batches = self.eval_examples.batch(self.config.batch_size)
        return batches.with_options(options)


def load_run_data(config: TrainConfig, recipe: recipes_lib.Recipe) -> RunData:
    """Builds the run's evaluation pipelines and checks the dataset.

    Raises:
        ValueError: the dataset cannot be read, has fewer than two classes,
            an empty evaluation split, or fewer training examples than a
            batch.
    """
    load_kwargs = dict(
        image_size=config.image_size,
        preprocessing=recipe.preprocessing,
        data_dir=config.data_dir,
        manual_dir=config.manual_dir,
    )
    train_examples, info = datasets.load(config.dataset, "train", **load_kwargs)
    if info.num_classes < 2:
        raise ValueError(
            f"{config.dataset} holds {info.num_classes} class"
            f"{'es' if info.num_classes != 1 else ''}; a classifier needs at "
            "least two (for a folder, one sub-folder of images per class). "
            f"Received: dataset={config.dataset!r}"
        )
    eval_examples, eval_info = datasets.load(
        config.dataset, info.eval_split, **load_kwargs
    )
    if eval_info.num_examples == 0:
        raise ValueError(
            f"The {info.eval_split} split of {config.dataset} is empty, so "
            "the run could not be evaluated: add images (about one in five "
            "of a folder's images is held out for testing), or give the "
            "folder train/ and test/ sub-folders. "
            f"Received: dataset={config.dataset!r}"
        )
    steps_per_epoch = info.num_examples // config.batch_size
    if steps_per_epoch == 0:
        raise ValueError(
            f"The batch size {config.batch_size} is larger than the "
            f"{info.num_examples} training examples of {config.dataset}. "
            f"Received: batch_size={config.batch_size}"
        )
    return RunData(
        config=config,
        load_kwargs=load_kwargs,
        info=info,
        eval_examples=eval_examples,
        train_examples=train_examples,
        steps_per_epoch=steps_per_epoch,
    )
