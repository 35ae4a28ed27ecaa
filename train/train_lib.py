"""Trains and evaluates an i-RevNet classifier: `train_and_evaluate(config)`.

A run
1. resolves its settings (flags, else the recipe's, the dataset's and the
   preset's defaults) and checks them, the dataset and the model, before
   it writes anything;
2. restores the training state from `MODEL_DIR/checkpoints` if the same
   command ran before, and continues at the step it reached;
3. trains with `model.fit` under a `tf.distribute` strategy: SGD with
   momentum, coupled L2 weight decay, the recipe's learning-rate schedule;
4. evaluates in inference mode, saves the model and the metrics, and
   exports it for TF Serving if asked.

What `MODEL_DIR` holds:

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
import json
import math
import os
import shutil
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

import irevnet_tf
from irevnet_tf import datasets
from irevnet_tf.models.loading import MODEL_FILENAME
from train import callbacks as callbacks_lib
from train.configs import recipes as recipes_lib
from train.configs.base import STRATEGIES
from train.configs.base import TrainConfig
from train.fit_model import FitModel
from train.optimizers import SGDWithL2

CONFIG_FILENAME = "config.json"
METRICS_FILENAME = "metrics.json"
CHECKPOINT_DIRNAME = "checkpoints"
LOG_DIRNAME = "logs"
# Settings a resumed run must share with the run that wrote the checkpoint:
# they change the weights' shapes or what the model's inputs mean.
RESUME_KEYS = ("dataset", "preset", "image_size", "recipe")
# Test images shown with their reconstructions in TensorBoard.
NUM_LOGGED_IMAGES = 8
# Training examples whose accuracy metrics.json reports (inference mode).
TRAIN_ACCURACY_EXAMPLES = 10_000


class UsageError(ValueError):
    """Bad input: settings, dataset or model directory. Nothing was written.

    The command-line program prints it as one line and exits with status 2.
    """


@dataclasses.dataclass
class _Run:
    """Everything set up before training starts."""

    config: TrainConfig
    recipe: recipes_lib.Recipe
    strategy: tf.distribute.Strategy
    is_chief: bool
    info: datasets.DatasetInfo
    load_kwargs: dict
    steps_per_epoch: int
    total_steps: int
    model: irevnet_tf.IRevNetClassifier
    trainee: FitModel  # what `fit` trains: `model`, wrapped


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
    config = run.config
    model_dir = config.model_dir
    if run.is_chief:
        os.makedirs(model_dir, exist_ok=True)
        _write_json(
            os.path.join(model_dir, CONFIG_FILENAME), _config_record(run)
        )
    with tempfile.TemporaryDirectory() as scratch:
        backup = callbacks_lib.TrainingStateBackup(
            restore_dir=os.path.join(model_dir, CHECKPOINT_DIRNAME),
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
        worker_dir = os.path.join(
            model_dir, "workers", f"{resolver.task_type}-{resolver.task_id}"
        )
        os.makedirs(worker_dir, exist_ok=True)
        _save_model(model, os.path.join(worker_dir, MODEL_FILENAME))
        _wait_for_all_workers(run.strategy)
        return {}
    metrics = _evaluate(run, model)
    metrics.update(
        train_accuracy_last_epoch=history.get("accuracy", [None])[-1],
        initial_step=start_step,
        steps=run.total_steps,
        epochs=math.ceil(run.total_steps / run.steps_per_epoch),
        steps_per_epoch=run.steps_per_epoch,
        train_time_seconds=round(train_time, 2),
    )
    _save_model(model, os.path.join(model_dir, MODEL_FILENAME))
    if config.export_dir:
        metrics["export"] = _export(model, config.export_dir)
    metrics["wall_time_seconds"] = round(time.perf_counter() - start_time, 2)
    _write_json(os.path.join(model_dir, METRICS_FILENAME), metrics)
    if _num_workers(run.strategy) > 1:
        _wait_for_all_workers(run.strategy)
    _say(
        config,
        f"Test accuracy {metrics['test_accuracy']:.4f} on "
        f"{metrics['test_examples']} images; reconstruction error "
        f"{_format(metrics['reconstruction_error'])} (mean "
        "||x - inverse(features(x))|| / ||x|| over "
        f"{metrics['reconstruction_examples']} test images); wall time "
        f"{metrics['wall_time_seconds']:.1f} s. Wrote "
        f"{os.path.join(model_dir, MODEL_FILENAME)} and {METRICS_FILENAME}.",
    )
    return metrics


def resolve_config(
    config: TrainConfig,
) -> tuple[TrainConfig, recipes_lib.Recipe]:
    """Fills the unset fields of `config` and checks every field.

    Returns:
        The completed config (a copy) and its recipe.

    Raises:
        ValueError: naming the first bad setting.
    """
    dataset = config.dataset or ""
    if dataset.startswith(datasets.FOLDER_PREFIX):
        kind = "folder"
        if not dataset[len(datasets.FOLDER_PREFIX) :]:
            raise ValueError(
                "`folder:` needs a path, as in folder:/data/pets. "
                f"Received: dataset={dataset!r}"
            )
    elif dataset in recipes_lib.DEFAULT_RECIPES:
        kind = dataset
    else:
        raise ValueError(
            f"Unknown dataset {dataset!r}. Available datasets: "
            f"{', '.join(datasets.DATASET_NAMES)}. "
            f"Received: dataset={dataset!r}"
        )
    recipe_name = config.recipe or recipes_lib.DEFAULT_RECIPES[kind]
    if recipe_name not in recipes_lib.RECIPES:
        raise ValueError(
            f"Unknown recipe {recipe_name!r}. Available recipes: "
            f"{', '.join(recipes_lib.RECIPES)}. "
            f"Received: recipe={recipe_name!r}"
        )
    recipe = recipes_lib.RECIPES[recipe_name]
    preset = config.preset or recipes_lib.DEFAULT_PRESETS[kind]
    if preset not in irevnet_tf.PRESETS:
        raise ValueError(
            f"Unknown preset {preset!r}. Available presets: "
            f"{', '.join(sorted(irevnet_tf.PRESETS))}. "
            f"Received: preset={preset!r}"
        )
    preset_kwargs = irevnet_tf.PRESETS[preset]
    image_size = config.image_size or preset_kwargs["image_shape"][0]
    _check_positive_int("image_size", image_size)
    factor = preset_kwargs.get("initial_block_size", 2) * 2 ** list(
        preset_kwargs["stage_strides"]
    ).count(2)
    if image_size % factor:
        raise ValueError(
            f"Image size {image_size} is not divisible by {factor}, the "
            f"down-sampling factor of preset {preset!r}; pick a multiple of "
            f"{factor}. Received: image_size={image_size}"
        )
    if config.epochs is not None and config.train_steps is not None:
        raise ValueError(
            "Give the length of the run as epochs or as train_steps, not "
            f"both. Received: epochs={config.epochs}, "
            f"train_steps={config.train_steps}"
        )
    if config.epochs is None and config.train_steps is None:
        epochs, train_steps = recipe.epochs, recipe.train_steps
    else:
        epochs, train_steps = config.epochs, config.train_steps
    resolved = dataclasses.replace(
        config,
        dataset=dataset,
        recipe=recipe_name,
        preset=preset,
        image_size=image_size,
        batch_size=_first(config.batch_size, recipe.batch_size),
        epochs=epochs,
        train_steps=train_steps,
        learning_rate=_first(config.learning_rate, recipe.learning_rate),
        momentum=_first(config.momentum, recipe.momentum),
        weight_decay=_first(config.weight_decay, recipe.weight_decay),
        lr_schedule=config.lr_schedule or recipe.lr_schedule,
        model_dir=config.model_dir or os.path.join("runs", kind),
    )
    for name in ("batch_size", "checkpoint_steps"):
        _check_positive_int(name, getattr(resolved, name))
    for name in ("epochs", "train_steps"):
        if getattr(resolved, name) is not None:
            _check_positive_int(name, getattr(resolved, name))
    if not resolved.learning_rate > 0:
        raise ValueError(
            "`learning_rate` must be positive. "
            f"Received: learning_rate={resolved.learning_rate}"
        )
    if not 0 <= resolved.momentum < 1:
        raise ValueError(
            "`momentum` must be in [0, 1). "
            f"Received: momentum={resolved.momentum}"
        )
    if not resolved.weight_decay >= 0:
        raise ValueError(
            "`weight_decay` must be non-negative. "
            f"Received: weight_decay={resolved.weight_decay}"
        )
    if resolved.lr_schedule not in recipes_lib.LR_SCHEDULES:
        raise ValueError(
            f"Unknown learning-rate schedule {resolved.lr_schedule!r}. "
            f"Available: {', '.join(recipes_lib.LR_SCHEDULES)}. "
            f"Received: lr_schedule={resolved.lr_schedule!r}"
        )
    if resolved.strategy not in STRATEGIES:
        raise ValueError(
            f"Unknown strategy {resolved.strategy!r}. Available: "
            f"{', '.join(STRATEGIES)}. Received: strategy={resolved.strategy!r}"
        )
    if resolved.reconstruction_examples < 0:
        raise ValueError(
            "`reconstruction_examples` must be non-negative. Received: "
            f"reconstruction_examples={resolved.reconstruction_examples}"
        )
    model_dir = resolved.model_dir
    if os.path.exists(model_dir) and not os.path.isdir(model_dir):
        raise ValueError(
            f"The model directory {model_dir} is a file. "
            f"Received: model_dir={model_dir!r}"
        )
    return resolved, recipe


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The `tf.distribute` strategy called `name` (see `STRATEGIES`).

    "auto" is "multi_worker" if `TF_CONFIG` describes a cluster of several
    tasks, "mirrored" with several GPUs, else "one_device". "mirrored" uses
    every local GPU, or, without GPUs, every logical CPU device.
    """
    cluster = json.loads(os.environ.get("TF_CONFIG") or "{}").get("cluster", {})
    num_tasks = sum(len(cluster.get(kind, ())) for kind in ("chief", "worker"))
    if name == "auto":
        gpus = tf.config.list_physical_devices("GPU")
        if num_tasks > 1:
            name = "multi_worker"
        else:
            name = "mirrored" if len(gpus) > 1 else "one_device"
    if name == "multi_worker":
        if not cluster:
            raise ValueError(
                "The multi_worker strategy reads its cluster from the "
                "TF_CONFIG environment variable, which is not set. "
                "Received: strategy='multi_worker'"
            )
        # Created before any other TensorFlow op: it sets up the runtime.
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored":
        devices = gpus or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")


def learning_rate_schedule(
    name: str,
    learning_rate: float,
    total_steps: int,
    boundaries: tuple = (),
    decay_factor: float = 1.0,
):
    """The learning rate as a function of the optimizer step.

    "step" multiplies it by `decay_factor` at every boundary (fractions of
    `total_steps`): with boundaries (0.3, ...) and 200 epochs, steps of epoch
    61 onwards use the second value, as in the authors' code. "cosine"
    decays it to 0 over the run; "constant" keeps it.
    """
    if name == "constant":
        return learning_rate
    if name == "cosine":
        return keras.optimizers.schedules.CosineDecay(
            learning_rate, decay_steps=total_steps
        )
    # PiecewiseConstantDecay switches once step > boundary; the optimizer
    # passes the number of steps already taken.
    steps = [max(round(f * total_steps) - 1, 0) for f in boundaries]
    values = [learning_rate * decay_factor**i for i in range(len(steps) + 1)]
    return keras.optimizers.schedules.PiecewiseConstantDecay(steps, values)


def fit_phases(
    start_step: int, total_steps: int, steps_per_epoch: int
) -> list[tuple[int, int, int]]:
    """The `fit` calls that take training from `start_step` to the end.

    Returns:
        A list of `(initial_epoch, epochs, steps_per_epoch)`: the rest of an
        interrupted epoch, the whole epochs after it, and a last partial
        epoch if `total_steps` is not a whole number of epochs.
    """
    phases = []
    step = start_step
    while step < total_steps:
        epoch, offset = divmod(step, steps_per_epoch)
        steps = min(steps_per_epoch - offset, total_steps - step)
        if steps == steps_per_epoch:
            count = (total_steps - step) // steps_per_epoch
            phases.append((epoch, epoch + count, steps_per_epoch))
            step += count * steps_per_epoch
        else:
            phases.append((epoch, epoch + 1, steps))
            step += steps
    return phases


def _set_up(config: TrainConfig) -> _Run:
    config, recipe = resolve_config(config)
    strategy = make_strategy(config.strategy)
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
    _, info = datasets.load(config.dataset, "train", **load_kwargs)
    datasets.load(config.dataset, info.eval_split, **load_kwargs)
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
    _check_resumable(config)
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
    trainee = FitModel(model, rank_one_logs=_num_workers(strategy) > 1)
    with strategy.scope():
        schedule = learning_rate_schedule(
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
        strategy=strategy,
        is_chief=strategy.extended.should_checkpoint,
        info=info,
        load_kwargs=load_kwargs,
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
        model=model,
        trainee=trainee,
    )


def _wait_for_all_workers(strategy: tf.distribute.Strategy) -> None:
    # A collective: workers that finish early wait for the chief instead of
    # exiting, which the chief's coordination service would take for a crash.
    strategy.reduce("SUM", strategy.run(lambda: tf.constant(1.0)), axis=None)


def _num_workers(strategy: tf.distribute.Strategy) -> int:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return 1
    cluster = resolver.cluster_spec().as_dict()
    return max(1, sum(len(cluster.get(k, ())) for k in ("chief", "worker")))


def _check_resumable(config: TrainConfig) -> None:
    path = os.path.join(config.model_dir, CONFIG_FILENAME)
    if not os.path.exists(path):
        return
    try:
        with open(path) as f:
            previous = json.load(f)["config"]
    except (OSError, ValueError, KeyError) as error:
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
    phases = fit_phases(start_step, run.total_steps, run.steps_per_epoch)
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
    eval_data, _ = datasets.load(
        config.dataset, info.eval_split, **run.load_kwargs
    )
    options = tf.data.Options()
    # Every worker reads the (small) evaluation pipeline and keeps its share
    # of the batches: the files of a tfds split may be fewer than workers.
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA
    )
    eval_batches = eval_data.batch(config.batch_size).with_options(options)
    log_dir = os.path.join(config.model_dir, LOG_DIRNAME)
    logged_images = _first_images(eval_data, NUM_LOGGED_IMAGES)
    history = {}
    for initial_epoch, epochs, steps in phases:
        callbacks = [backup]
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


def _evaluate(run: _Run, model) -> dict:
    """Accuracies and reconstruction error, in inference mode."""
    config, info = run.config, run.info
    measure = _measurer(model)
    eval_data, _ = datasets.load(
        config.dataset, info.eval_split, **run.load_kwargs
    )
    test = measure(
        eval_data.batch(config.batch_size), config.reconstruction_examples
    )
    train_data, _ = datasets.load(config.dataset, "train", **run.load_kwargs)
    train = measure(
        train_data.take(TRAIN_ACCURACY_EXAMPLES).batch(config.batch_size), 0
    )
    space = (
        "model input: pixels normalised per channel, (x - mean) / std"
        if info.normalized
        else "model input: pixels in [0, 1]"
    )
    return {
        "dataset": config.dataset,
        "preset": config.preset,
        "recipe": config.recipe,
        "train_accuracy": train["accuracy"],
        "train_examples": train["examples"],
        "test_accuracy": test["accuracy"],
        "test_loss": test["loss"],
        "test_examples": test["examples"],
        "test_split": info.eval_split,
        "reconstruction_error": test["reconstruction_error"],
        "reconstruction_error_max": test["reconstruction_error_max"],
        "reconstruction_examples": test["reconstruction_examples"],
        "reconstruction_space": space,
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
                "||x||, inference mode, float32"
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
                errors.extend(
                    callbacks_lib.relative_errors(images, restored)[:wanted]
                )
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


def _save_model(model, path: str) -> None:
    # Written beside the target and renamed: a kill never leaves half a file.
    directory = os.path.dirname(os.path.abspath(path))
    staging = tempfile.mkdtemp(prefix=".saving-", dir=directory)
    try:
        staged = os.path.join(staging, os.path.basename(path))
        model.save(staged)
        os.replace(staged, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


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


def _config_record(run: _Run) -> dict:
    info = run.info
    return {
        "config": dataclasses.asdict(run.config),
        "recipe": dataclasses.asdict(run.recipe),
        "dataset": {
            "name": info.name,
            "num_classes": info.num_classes,
            "class_names": list(info.class_names or []),
            "image_shape": list(info.image_shape),
            "train_examples": info.num_examples,
            "eval_split": info.eval_split,
            # The model takes (x - mean) / std if normalized, else x in [0, 1].
            "normalized": info.normalized,
            "mean": list(info.mean),
            "std": list(info.std),
        },
        "steps_per_epoch": run.steps_per_epoch,
        "total_steps": run.total_steps,
        "replicas": run.strategy.num_replicas_in_sync,
    }


def _write_json(path: str, record: dict) -> None:
    staged = f"{path}.tmp"
    with open(staged, "w") as f:
        json.dump(record, f, indent=2)
        f.write("\n")
    os.replace(staged, path)


def _say(config: TrainConfig, message: str) -> None:
    if config.verbose:
        print(message, flush=True)


def _format(value) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def _first(value, default):
    return default if value is None else value


def _check_positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"`{name}` must be a positive integer. Received: {name}={value!r}"
        )
