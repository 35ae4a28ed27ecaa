"""Trains and evaluates an i-RevNet classifier: `train_and_evaluate(config)`.

A run
1. resolves its settings (flags, else the recipe's, the dataset's and the
   preset's defaults) and checks them, its output directories, the dataset
   and the model, before it writes anything (`train.configs.resolve`,
   `train.data`);
2. takes the model directory's lock, checks that an earlier run there had
   the same settings, and restores its training state, continuing at the
   step it reached (`train.run_files`, `train.callbacks`,
   `train.schedules.fit_phases`);
3. trains with `model.fit` under a `tf.distribute` strategy
   (`train.distribute`): SGD with momentum, coupled L2 weight decay, the
   recipe's learning-rate schedule, batches that are functions of the seed
   and the step (`train.data`); a loss that stops being finite stops it;
4. evaluates in inference mode (`train.evaluation`), saves the model and
   the metrics (`train.run_files`), and exports it for TF Serving if asked.

What `MODEL_DIR` holds (`irevnet_tf.run_directory`):

    config.json                    resolved settings, dataset facts
                                   (classes, image shape, pixel statistics)
    checkpoints/state.weights.h5   training state, every N steps
    logs/                          TensorBoard: train/ and validation/
                                   (loss, accuracy, learning rate),
                                   reconstructions/ (images, error)
    model.keras                    the final model, without optimizer
    metrics.json                   accuracies, reconstruction error, times
    workers/<task>/                multi-worker runs: every other worker's
                                   final model.keras
"""

import contextlib
import dataclasses
import math
import os
import tempfile
import time

import keras
import tensorflow as tf

import irevnet_tf
from irevnet_tf import datasets
from irevnet_tf.cli import UsageError
from irevnet_tf.run_directory import MODEL_FILENAME
from irevnet_tf.run_directory import RunDirectory
from irevnet_tf.run_directory import RunRecord
from train import callbacks as callbacks_lib
from train import data as data_lib
from train import distribute
from train import evaluation
from train import mixed_precision
from train import run_files
from train import schedules
from train.configs import recipes as recipes_lib
from train.configs.base import TrainConfig
from train.configs.resolve import resolve_config
from train.optimizers import SGDWithL2

# Test images shown with their reconstructions in TensorBoard.
NUM_LOGGED_IMAGES = 8


class TrainingDiverged(RuntimeError):
    """The loss or the weights stopped being finite; no model was saved."""


@dataclasses.dataclass
class _Run:
    """Everything set up before training starts."""

    config: TrainConfig
    recipe: recipes_lib.Recipe
    run_dir: RunDirectory
    strategy: tf.distribute.Strategy
    is_chief: bool
    data: data_lib.RunData
    total_steps: int
    record: RunRecord  # what config.json holds, or will
    resuming: bool  # whether the directory holds this run already
    model: irevnet_tf.IRevNetClassifier
    trainee: distribute.FitModel  # what `fit` trains: `model`, wrapped


def train_and_evaluate(config: TrainConfig) -> dict:
    """Trains, evaluates, saves and (optionally) exports a classifier.

    Started again with the same config after an interruption, it resumes
    from the last saved training state and ends as the uninterrupted run
    would have (bit for bit with `deterministic`); after a finished run it
    only evaluates and saves again (and exports, unless it did already).

    Args:
        config: the run's settings; None fields take the recipe's value.

    Returns:
        The metrics also written to `MODEL_DIR/metrics.json` (chief only;
        other workers of a multi-worker run return `{}`).

    Raises:
        UsageError: bad settings, dataset, output directory, checkpoint, or
            a model directory that holds another run or is in use; nothing
            was written.
        TrainingDiverged: the loss stopped being finite; the last good
            training state is kept, no model or metrics are written.
    """
    start_time = time.perf_counter()
    with contextlib.ExitStack() as stack:
        try:
            run = _set_up(config, stack)
            backup = callbacks_lib.TrainingStateBackup(
                restore_dir=run.run_dir.checkpoint_dir,
                every_steps=run.config.checkpoint_steps,
                # Every worker runs the saving code; the chief's is kept.
                save_dir=None
                if run.is_chief
                else stack.enter_context(tempfile.TemporaryDirectory()),
                steps_per_epoch=run.data.steps_per_epoch,
            )
            with run.strategy.scope():
                start_step = backup.restore(run.trainee)
        except ValueError as error:
            raise UsageError(str(error)) from None
        config, run_dir = run.config, run.run_dir
        if run.is_chief:
            run_files.remove_stale_staging(run_dir)
            if not run.resuming:
                run_files.write_run_record(run_dir, run.record)
        train_start = time.perf_counter()
        history = _fit(run, backup, start_step)
        train_time = time.perf_counter() - train_start
        model = _inference_copy(run.model)
        if not run.is_chief:
            resolver = run.strategy.cluster_resolver
            worker_dir = run_dir.worker_dir(
                resolver.task_type, resolver.task_id
            )
            run_files.save_model(
                model, os.path.join(worker_dir, MODEL_FILENAME)
            )
            distribute.wait_for_all_workers(run.strategy)
            return {}
        metrics = evaluation.evaluate_run(
            model, run.data, config, run.total_steps
        )
        metrics.update(
            train_accuracy_last_epoch=history.get("accuracy", [None])[-1],
            initial_step=start_step,
            train_time_seconds=round(train_time, 2),
        )
        run_files.save_model(model, run_dir.model_path)
        if config.export_dir:
            finished_before = start_step == run.total_steps
            metrics["export"] = (
                finished_before
                and run_files.previous_export(run_dir, config.export_dir)
            ) or _export(model, config.export_dir, run.recipe.preprocessing)
        metrics["wall_time_seconds"] = round(
            time.perf_counter() - start_time, 2
        )
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


def _input_statistics(
    recipe: recipes_lib.Recipe, info: datasets.DatasetInfo
) -> dict:
    """The model's `input_mean`/`input_std`: the training images' ones."""
    if not recipe.normalize:
        return {}
    return {"input_mean": list(info.mean), "input_std": list(info.std)}


def _set_up(config: TrainConfig, stack: contextlib.ExitStack) -> _Run:
    """Checks everything and builds the model; writes nothing.

    The chief then takes the run directory's lock, held until `stack`
    closes, and checks the directory's earlier run again under it.
    """
    config, recipe = resolve_config(config)
    strategy = distribute.make_strategy(config.strategy)
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise ValueError(
            f"The global batch size {config.batch_size} is not divisible by "
            f"the {replicas} replicas of the {config.strategy} strategy. "
            f"Received: batch_size={config.batch_size}"
        )
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    data = data_lib.load_run_data(config, recipe)
    info = data.info
    if config.train_steps is not None:
        total_steps = config.train_steps
    else:
        total_steps = config.epochs * data.steps_per_epoch
    run_dir = RunDirectory(config.model_dir)
    record = run_files.run_record(
        config, recipe, info, data.steps_per_epoch, total_steps, replicas
    )
    # Every worker, before the model is built: all refuse another run
    # alike, and a run of another preset is named as such, not failed on.
    run_files.check_resumable(run_dir, record)
    # Seeded just before the weights are drawn, so that they do not depend
    # on what ran before (preparing a dataset draws random numbers too).
    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        model = irevnet_tf.IRevNetClassifier.from_preset(
            config.preset,
            image_shape=info.image_shape,
            num_classes=info.num_classes,
            seed=config.seed,
            memory_saving=config.memory_saving,
            dtype=mixed_precision.dtype_policy(config.mixed_precision),
            # With several replicas, statistics of the global batch: the run
            # computes what one device would, and every replica keeps the
            # same moving statistics.
            synchronized_batch_norm=replicas > 1,
            # The model standardises its pixel inputs itself, so that it
            # (and every SavedModel of it) takes and returns pixels.
            **_input_statistics(recipe, info),
        )
    # Created outside the scope on purpose (see FitModel).
    trainee = distribute.FitModel(
        model,
        rank_one_logs=distribute.num_workers(strategy) > 1,
        dtype=model.dtype_policy,
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
            optimizer=mixed_precision.training_optimizer(
                config.mixed_precision,
                SGDWithL2(
                    l2=config.weight_decay,
                    learning_rate=schedule,
                    momentum=config.momentum,
                ),
            ),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        trainee.build_for_training(info.image_shape)
    is_chief = strategy.extended.should_checkpoint
    resuming = False
    if is_chief:  # The other workers share its directory.
        stack.enter_context(run_files.exclusive(run_dir))
        resuming = run_files.check_resumable(run_dir, record)
    return _Run(
        config=config,
        recipe=recipe,
        run_dir=run_dir,
        strategy=strategy,
        is_chief=is_chief,
        data=data,
        total_steps=total_steps,
        record=record,
        resuming=resuming,
        model=model,
        trainee=trainee,
    )


def _fit(run: _Run, backup, start_step: int) -> dict:
    """Runs `model.fit` from `start_step`; returns the merged history.

    Raises:
        TrainingDiverged: if the loss or the weights stop being finite.
    """
    config, info = run.config, run.data.info
    steps_per_epoch = run.data.steps_per_epoch
    total_epochs = math.ceil(run.total_steps / steps_per_epoch)
    replicas = run.strategy.num_replicas_in_sync
    _say(
        config,
        f"Training preset {config.preset!r} on {config.dataset} "
        f"({info.num_examples} images of {info.image_shape}, "
        f"{info.num_classes} classes), recipe {config.recipe!r}: "
        f"{run.total_steps} steps of {steps_per_epoch} per epoch "
        f"({total_epochs} epoch(s)), global batch {config.batch_size} over "
        f"{replicas} replica(s).",
    )
    phases = schedules.fit_phases(start_step, run.total_steps, steps_per_epoch)
    if start_step:
        epoch, offset = divmod(start_step, steps_per_epoch)
        _say(
            config,
            f"Resuming from the checkpoint at step {start_step} of "
            f"{run.total_steps} (epoch {epoch + 1}, step {offset} of "
            f"{steps_per_epoch}).",
        )
    if not phases:
        _say(config, "Training already finished; evaluating.")
        return {}
    validation = run.data.validation_batches()
    log_dir = run.run_dir.log_dir
    logged_images = run.data.first_eval_images(NUM_LOGGED_IMAGES)
    guard = callbacks_lib.DivergenceGuard()
    history = {}
    step = start_step  # Where the next phase starts.
    for initial_epoch, epochs, steps in phases:
        # The guard goes first: it stops the run before anything is saved.
        callbacks = [guard, backup]
        if run.is_chief:
            callbacks.append(
                keras.callbacks.TensorBoard(
                    log_dir, write_graph=False, profile_batch=0
                )
            )
            callbacks.append(
                callbacks_lib.ReconstructionImages(
                    run.model,
                    logged_images,
                    os.path.join(log_dir, "reconstructions"),
                )
            )
        verbose = config.verbose if run.is_chief else 0
        if verbose:
            callbacks.append(callbacks_lib.RunProgbar(total_epochs))
        with run.strategy.scope():
            result = run.trainee.fit(
                run.data.training_batches(run.strategy, step),
                initial_epoch=initial_epoch,
                epochs=epochs,
                steps_per_epoch=steps,
                validation_data=validation,
                callbacks=callbacks,
                verbose=verbose,
                shuffle=False,  # The pipeline shuffles.
            )
        for key, values in result.history.items():
            history.setdefault(key, []).extend(values)
        _check_finite(run, guard, backup)
        step += (epochs - initial_epoch) * steps
    return history


def _check_finite(run: _Run, guard, backup) -> None:
    """Raises `TrainingDiverged` if the loss or the weights diverged."""
    if guard.step is None and backup.refused_step is None:
        return
    if guard.step is not None:
        what = f"The loss became {guard.loss} at step {guard.step}"
    else:
        what = f"The weights stopped being finite by step {backup.refused_step}"
    kept = (
        f"the last good training state, at step {backup.last_saved_step}, is "
        f"kept in {backup.state_path}"
        if os.path.exists(backup.state_path)
        else "no training state was saved"
    )
    raise TrainingDiverged(
        f"{what} of {run.total_steps}: training diverged, so no model was "
        "saved. Try a lower --learning_rate (this run's: "
        f"{run.config.learning_rate}); {kept}."
    )


def _inference_copy(model) -> irevnet_tf.IRevNetClassifier:
    """The trained model outside the strategy, without optimizer or loss."""
    copy = irevnet_tf.IRevNetClassifier.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    return copy


def _export(model, export_dir: str, preprocessing: str) -> dict:
    from export import export_lib

    result = export_lib.export_for_serving(
        model, export_dir, preprocessing=preprocessing
    )
    print(f"Exported {result.forward_dir} and {result.inverse_dir}")
    return {
        "export_dir": os.path.abspath(export_dir),
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
