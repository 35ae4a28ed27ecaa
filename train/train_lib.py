"""Trains and evaluates an i-RevNet classifier: `train_and_evaluate(config)`.

A run
1. resolves its settings (flags, else the recipe's, the dataset's and the
   preset's defaults) and checks them, the dataset and the model, before
   it writes anything (`train.configs.resolve`);
2. restores the training state from `MODEL_DIR/checkpoints` if the same
   command ran before, and continues at the step it reached
   (`train.callbacks.TrainingStateBackup`, `train.schedules.fit_phases`);
3. trains with `model.fit` under a `tf.distribute` strategy
   (`train.distribute`): SGD with momentum, coupled L2 weight decay, the
   recipe's learning-rate schedule;
4. evaluates in inference mode (`train.evaluation`), saves the model and
   the metrics (`train.run_files`), and exports it for TF Serving if asked.

What `MODEL_DIR` holds (`irevnet_tf.run_directory`):

    config.json                    resolved settings, dataset facts
                                   (classes, image shape, normalisation)
    checkpoints/state.weights.h5   training state, every N steps
    logs/                          TensorBoard: train/ and validation/
                                   (loss, accuracy, learning rate),
                                   reconstructions/ (images, error)
    model.keras                    the final model, without optimizer
    metrics.json                   accuracies, reconstruction error, times
    workers/<task>/                multi-worker runs: every other worker's
                                   final model.keras
"""

import dataclasses
import math
import os
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

import irevnet_tf
from irevnet_tf import datasets
from irevnet_tf.cli import UsageError
from irevnet_tf.run_directory import MODEL_FILENAME
from irevnet_tf.run_directory import RunDirectory
from train import callbacks as callbacks_lib
from train import distribute
from train import evaluation
from train import run_files
from train import schedules
from train.configs import recipes as recipes_lib
from train.configs.base import TrainConfig
from train.configs.resolve import resolve_config
from train.optimizers import SGDWithL2

# Test images shown with their reconstructions in TensorBoard.
NUM_LOGGED_IMAGES = 8


@dataclasses.dataclass
class _Run:
    """Everything set up before training starts."""

    config: TrainConfig
    recipe: recipes_lib.Recipe
    run_dir: RunDirectory
    strategy: tf.distribute.Strategy
    is_chief: bool
    info: datasets.DatasetInfo
    load_kwargs: dict
    # The evaluation split and the training split without augmentation, in
    # a fixed order: built once, read by validation and the final metrics.
    eval_data: tf.data.Dataset
    train_eval_data: tf.data.Dataset
    steps_per_epoch: int
    total_steps: int
    model: irevnet_tf.IRevNetClassifier
    trainee: distribute.FitModel  # what `fit` trains: `model`, wrapped


def train_and_evaluate(config: TrainConfig) -> dict:
    """Trains, evaluates, saves and (optionally) exports a classifier.

    Started again with the same config after an interruption, it resumes
    from the last saved training state; after a finished run it only
    evaluates, saves and exports again.

    Args:
        config: the run's settings; None fields take the recipe's value.

    Returns:
        The metrics also written to `MODEL_DIR/metrics.json` (chief only;
        other workers of a multi-worker run return `{}`).

    Raises:
        UsageError: bad settings, dataset or model directory; nothing was
            written to the model directory.
    """
    start_time = time.perf_counter()
    try:
        run = _set_up(config)
    except ValueError as error:
        raise UsageError(str(error)) from None
    config, run_dir = run.config, run.run_dir
    if run.is_chief:
        run_files.write_run_record(
            run_dir,
            run_files.run_record(
                config,
                run.recipe,
                run.info,
                run.steps_per_epoch,
                run.total_steps,
                run.strategy.num_replicas_in_sync,
            ),
        )
    with tempfile.TemporaryDirectory() as scratch:
        backup = callbacks_lib.TrainingStateBackup(
            restore_dir=run_dir.checkpoint_dir,
            every_steps=config.checkpoint_steps,
            save_dir=None if run.is_chief else scratch,
        )
        with run.strategy.scope():
            start_step = backup.restore(run.trainee)
        train_start = time.perf_counter()
        history = _fit(run, backup, start_step)
        train_time = time.perf_counter() - train_start
    model = _inference_copy(run.model)
    if not run.is_chief:
        resolver = run.strategy.cluster_resolver
        worker_dir = run_dir.worker_dir(resolver.task_type, resolver.task_id)
        run_files.save_model(model, os.path.join(worker_dir, MODEL_FILENAME))
        distribute.wait_for_all_workers(run.strategy)
        return {}
    metrics = {
        "dataset": config.dataset,
        "preset": config.preset,
        "recipe": config.recipe,
    }
    metrics.update(
        evaluation.evaluate(
            model,
            run.eval_data.batch(config.batch_size),
            run.train_eval_data.take(evaluation.TRAIN_ACCURACY_EXAMPLES).batch(
                config.batch_size
            ),
            run.info,
            config.reconstruction_examples,
        )
    )
    metrics.update(
        train_accuracy_last_epoch=history.get("accuracy", [None])[-1],
        initial_step=start_step,
        steps=run.total_steps,
        epochs=math.ceil(run.total_steps / run.steps_per_epoch),
        steps_per_epoch=run.steps_per_epoch,
        train_time_seconds=round(train_time, 2),
    )
    run_files.save_model(model, run_dir.model_path)
    if config.export_dir:
        metrics["export"] = _export(model, config.export_dir)
    metrics["wall_time_seconds"] = round(time.perf_counter() - start_time, 2)
    run_files.write_metrics(run_dir, metrics)
    if distribute.num_workers(run.strategy) > 1:
        distribute.wait_for_all_workers(run.strategy)
    _say(
        config,
        f"Test accuracy {metrics['test_accuracy']:.4f} on "
        f"{metrics['test_examples']} images; reconstruction error "
        f"{_format(metrics['reconstruction_error'])} (mean "
        "||x - inverse(features(x))|| / ||x|| over "
        f"{metrics['reconstruction_examples']} test images); wall time "
        f"{metrics['wall_time_seconds']:.1f} s. Wrote "
        f"{run_dir.model_path} and {os.path.basename(run_dir.metrics_path)}.",
    )
    return metrics


def _set_up(config: TrainConfig) -> _Run:
    config, recipe = resolve_config(config)
    strategy = distribute.make_strategy(config.strategy)
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise ValueError(
            f"The global batch size {config.batch_size} is not divisible by "
            f"the {replicas} replicas of the {config.strategy} strategy. "
            f"Received: batch_size={config.batch_size}"
        )
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    load_kwargs = dict(
        image_size=config.image_size,
        preprocessing=recipe.preprocessing,
        normalize=recipe.normalize,
        data_dir=config.data_dir,
        manual_dir=config.manual_dir,
        deterministic=config.deterministic,
    )
    train_eval_data, info = datasets.load(
        config.dataset, "train", **load_kwargs
    )
    eval_data, _ = datasets.load(config.dataset, info.eval_split, **load_kwargs)
    steps_per_epoch = info.num_examples // config.batch_size
    if steps_per_epoch == 0:
        raise ValueError(
            f"The batch size {config.batch_size} is larger than the "
            f"{info.num_examples} training examples of {config.dataset}. "
            f"Received: batch_size={config.batch_size}"
        )
    if config.train_steps is not None:
        total_steps = config.train_steps
    else:
        total_steps = config.epochs * steps_per_epoch
    run_dir = RunDirectory(config.model_dir)
    run_files.check_resumable(run_dir, config)
    with strategy.scope():
        model = irevnet_tf.IRevNetClassifier.from_preset(
            config.preset,
            image_shape=info.image_shape,
            num_classes=info.num_classes,
            seed=config.seed,
            memory_saving=config.memory_saving,
            # With several replicas, statistics of the global batch: the run
            # computes what one device would, and every replica keeps the
            # same moving statistics.
            synchronized_batch_norm=replicas > 1,
        )
    # Created outside the scope on purpose (see FitModel).
    trainee = distribute.FitModel(
        model, rank_one_logs=distribute.num_workers(strategy) > 1
    )
    with strategy.scope():
        schedule = schedules.learning_rate_schedule(
            config.lr_schedule,
            config.learning_rate,
            total_steps,
            recipe.lr_boundaries,
            recipe.lr_decay_factor,
        )
        trainee.compile(
            optimizer=SGDWithL2(
                l2=config.weight_decay,
                learning_rate=schedule,
                momentum=config.momentum,
            ),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        trainee.build_for_training(info.image_shape)
    return _Run(
        config=config,
        recipe=recipe,
        run_dir=run_dir,
        strategy=strategy,
        is_chief=strategy.extended.should_checkpoint,
        info=info,
        load_kwargs=load_kwargs,
        eval_data=eval_data,
        train_eval_data=train_eval_data,
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
        model=model,
        trainee=trainee,
    )


def _fit(run: _Run, backup, start_step: int) -> dict:
    """Runs `model.fit` from `start_step`; returns the merged history."""
    config, info = run.config, run.info
    total_epochs = math.ceil(run.total_steps / run.steps_per_epoch)
    replicas = run.strategy.num_replicas_in_sync
    _say(
        config,
        f"Training preset {config.preset!r} on {config.dataset} "
        f"({info.num_examples} images of {info.image_shape}, "
        f"{info.num_classes} classes), recipe {config.recipe!r}: "
        f"{run.total_steps} steps of {run.steps_per_epoch} per epoch "
        f"({total_epochs} epoch(s)), global batch {config.batch_size} over "
        f"{replicas} replica(s).",
    )
    phases = schedules.fit_phases(
        start_step, run.total_steps, run.steps_per_epoch
    )
    if start_step:
        epoch, offset = divmod(start_step, run.steps_per_epoch)
        _say(
            config,
            f"Resuming from the checkpoint at step {start_step} of "
            f"{run.total_steps} (epoch {epoch + 1}, step {offset} of "
            f"{run.steps_per_epoch}).",
        )
    if not phases:
        _say(config, "Training already finished; evaluating.")
        return {}
    seed = config.seed + start_step  # A resumed run draws other batches.

    def train_dataset(context):
        dataset, _ = datasets.load(
            config.dataset,
            "train",
            training=True,
            seed=seed,
            input_context=context,
            **run.load_kwargs,
        )
        batch = context.get_per_replica_batch_size(config.batch_size)
        return dataset.batch(batch, drop_remainder=True)

    train_data = run.strategy.distribute_datasets_from_function(train_dataset)
    options = tf.data.Options()
    # Every worker reads the (small) evaluation pipeline and keeps its share
    # of the batches: the files of a tfds split may be fewer than workers.
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA
    )
    eval_batches = run.eval_data.batch(config.batch_size).with_options(options)
    logged_images = _first_images(run.eval_data, NUM_LOGGED_IMAGES)
    history = {}
    for initial_epoch, epochs, steps in phases:
        callbacks = [backup]
        if run.is_chief:
            callbacks.append(
                keras.callbacks.TensorBoard(
                    run.run_dir.log_dir, write_graph=False, profile_batch=0
                )
            )
            callbacks.append(
                callbacks_lib.ReconstructionImages(
                    run.model,
                    logged_images,
                    os.path.join(run.run_dir.log_dir, "reconstructions"),
                    to_pixels=info.denormalize,
                )
            )
        verbose = config.verbose if run.is_chief else 0
        if verbose:
            callbacks.append(callbacks_lib.RunProgbar(total_epochs))
        with run.strategy.scope():
            result = run.trainee.fit(
                train_data,
                initial_epoch=initial_epoch,
                epochs=epochs,
                steps_per_epoch=steps,
                validation_data=eval_batches,
                callbacks=callbacks,
                verbose=verbose,
                shuffle=False,  # The pipeline shuffles.
            )
        for key, values in result.history.items():
            history.setdefault(key, []).extend(values)
    return history


def _first_images(dataset: tf.data.Dataset, count: int) -> np.ndarray:
    images = [image for image, _ in dataset.take(count).as_numpy_iterator()]
    return np.stack(images)


def _inference_copy(model) -> irevnet_tf.IRevNetClassifier:
    """The trained model outside the strategy, without optimizer or loss."""
    copy = irevnet_tf.IRevNetClassifier.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    return copy


def _export(model, export_dir: str) -> dict:
    from export import export_lib

    result = export_lib.export_for_serving(model, export_dir)
    print(f"Exported {result.forward_dir} and {result.inverse_dir}")
    return {
        "forward_dir": result.forward_dir,
        "inverse_dir": result.inverse_dir,
        "models_config": result.models_config,
        "version": result.version,
    }


def _say(config: TrainConfig, message: str) -> None:
    if config.verbose:
        print(message, flush=True)


def _format(value) -> str:
    return "n/a" if value is None else f"{value:.3g}"
