"""Singular values of the Jacobian of `Phi` at an image (paper, Figure 4).

`J = dPhi/dx (x)` is a `D_out x D_in` matrix (`D_in = H * W * C` pixel
values; `D_out = D_in` for a bijective model, more for an injective one).
Its singular values, sorted and divided by the largest, show how much
`Phi` contracts each direction around `x`; the cumulative energy
`sum_{i<=k} s_i^2 / sum_i s_i^2` tells how much of `||J||_F^2` the first `k`
directions hold.

Two methods, both in inference mode (BatchNorm statistics fixed, no
dropout, so `Phi` is one fixed function and every image of a batch is
processed independently):
- "exact": all `D_in` columns `J e_i` by forward-mode differentiation
  (`tf.autodiff.ForwardAccumulator`), a batch of basis vectors at a time,
  then a dense SVD. Memory is one batch of activations plus `J`.
- "randomized": the top `k` values without forming `J`, by randomised
  subspace iteration (Halko, Martinsson, Tropp 2011, Algorithm 4.4) with a
  Rayleigh-Ritz step: products `J V` (forward mode) and `J^T U`
  (`tf.GradientTape`, reverse mode) on `k + oversampling` vectors, repeated
  until the top `k` estimates change by less than `tolerance`. The total
  energy `||J||_F^2` is estimated from the first products
  (`E ||J w||^2 = ||J||_F^2` for Gaussian `w`).
"auto" picks "exact" up to `EXACT_MAX_DIM` pixel values (CIFAR's 3072)
and "randomized" beyond (ImageNet's 150528). Both are in `jacobian`.
"""

import numpy as np
from absl import flags
from matplotlib import figure as figure_lib

from irevnet_tf.analysis import command_line
from irevnet_tf.analysis import data as data_lib
from irevnet_tf.analysis import outputs
from irevnet_tf.analysis.jacobian import JacobianOperator
from irevnet_tf.analysis.jacobian import exact_singular_values
from irevnet_tf.analysis.jacobian import randomized_singular_values

METHODS = ("auto", "exact", "randomized")
# Largest input ("auto") for which the dense Jacobian is formed: a
# 4096 x 4096 float64 matrix (128 MiB) and its SVD take seconds.
EXACT_MAX_DIM = 4096

# `python -m irevnet_tf.analysis spectrum`: the flags beyond those of every
# analysis (`command_line`).
FLAGS = flags.FlagValues()
_NUM_IMAGES = flags.DEFINE_integer(
    "num_images", 1, "Images analysed.", lower_bound=1, flag_values=FLAGS
)
_FIRST_INDEX = flags.DEFINE_integer(
    "first_index",
    0,
    "Index of the first image in the split.",
    lower_bound=0,
    flag_values=FLAGS,
)
_METHOD = flags.DEFINE_enum(
    "method",
    "auto",
    METHODS,
    "exact (full Jacobian), randomized (top k, matrix-free), or auto: exact "
    f"up to {EXACT_MAX_DIM} pixel values.",
    flag_values=FLAGS,
)
_TOP_K = flags.DEFINE_integer(
    "top_k",
    100,
    "Singular values the randomized method finds.",
    lower_bound=1,
    flag_values=FLAGS,
)
_OVERSAMPLING = flags.DEFINE_integer(
    "oversampling",
    10,
    "Extra vectors of the randomized method.",
    lower_bound=0,
    flag_values=FLAGS,
)
_MAX_ITERATIONS = flags.DEFINE_integer(
    "max_iterations",
    30,
    "Iterations of the randomized method at most.",
    lower_bound=1,
    flag_values=FLAGS,
)
_TOLERANCE = command_line.define_positive_float(
    "tolerance",
    1e-4,
    "The randomized method stops when no value changes more (relative) in "
    "one iteration.",
    FLAGS,
)
_ENERGY_K = command_line.define_integer_list(
    "energy_k",
    [1, 10, 100],
    "k at which the energy fraction is reported.",
    FLAGS,
)


def choose_method(method: str, input_dimensions: int) -> str:
    """Resolves "auto" by input size; validates the name."""
    if method not in METHODS:
        raise ValueError(
            f"Unknown method; expected one of {', '.join(METHODS)}. "
            f"Received: method={method!r}"
        )
    if method == "auto":
        return "exact" if input_dimensions <= EXACT_MAX_DIM else "randomized"
    return method


def jacobian_spectrum(
    model,
    image,
    method: str = "auto",
    top_k: int = 100,
    oversampling: int = 10,
    max_iterations: int = 30,
    tolerance: float = 1e-4,
    batch_size: int = 32,
    seed: int = 0,
    progress=None,
) -> dict:
    """Normalised, sorted singular values of `dPhi/dx` at `image`.

    Args:
        model: an `IRevNetClassifier` (its backbone is `Phi`).
        image: one image `(H, W, C)` as the model takes it.
        method: "auto", "exact" or "randomized" (see the module docstring).
        top_k: values the randomized method finds (the exact one finds all).
        oversampling, max_iterations, tolerance, seed: of the randomized
            method (`randomized_singular_values`).
        batch_size: vectors per forward pass.
        progress: optional `fn(iterable, total, description)`.

    Returns:
        A dict: "method", "input_dimensions", "output_dimensions",
        "singular_values" (descending), "normalized" (divided by the
        largest), "energy_fraction" (cumulative `s_i^2` over the total, one
        per value), "total_energy" (`||J||_F^2`, estimated if randomized),
        "passes" (batched forward passes), and for the randomized method
        "iterations", "relative_change", "total_energy_stderr".
    """
    operator = JacobianOperator(model.backbone, image, batch_size)
    method = choose_method(method, operator.shape[1])
    if method == "exact":
        result = exact_singular_values(operator, progress)
    else:
        result = randomized_singular_values(
            operator,
            top_k,
            oversampling=oversampling,
            max_iterations=max_iterations,
            tolerance=tolerance,
            seed=seed,
            progress=progress,
        )
    values = result["singular_values"]
    result.update(
        method=method,
        input_dimensions=operator.shape[1],
        output_dimensions=operator.shape[0],
        normalized=values / values[0],
        energy_fraction=np.cumsum(values**2) / result["total_energy"],
        passes=operator.passes,
    )
    return result


def plot_spectrum(spectra: list, labels: list, title: str) -> figure_lib.Figure:
    """Normalised singular values and cumulative energy, one line per image."""
    fig = figure_lib.Figure(figsize=(11, 4.5), layout="constrained")
    values_ax, energy_ax = fig.subplots(1, 2)
    for index, (spectrum, label) in enumerate(zip(spectra, labels)):
        rank = np.arange(1, len(spectrum["normalized"]) + 1)
        values_ax.plot(
            rank, spectrum["normalized"], color=f"C{index}", label=label
        )
        energy_ax.plot(
            rank, spectrum["energy_fraction"], color=f"C{index}", label=label
        )
    values_ax.set_yscale("log")
    values_ax.set_xlabel("index i (sorted)")
    values_ax.set_ylabel("singular value s_i / s_1")
    values_ax.set_title("Normalised singular values of dPhi/dx")
    energy_ax.set_xlabel("k")
    energy_ax.set_ylabel("energy fraction sum_{i<=k} s_i^2 / ||J||_F^2")
    energy_ax.set_ylim(0, 1.05)
    energy_ax.set_title("Cumulative energy")
    for ax in (values_ax, energy_ax):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    return fig


def run_spectrum(
    model,
    output_dir: str,
    model_name: str = "model",
    settings: data_lib.DataSettings | None = None,
    split: str | None = None,
    num_images: int = 1,
    first_index: int = 0,
    method: str = "auto",
    top_k: int = 100,
    oversampling: int = 10,
    max_iterations: int = 30,
    tolerance: float = 1e-4,
    energy_k=(1, 10, 100),
    batch_size: int = 32,
    seed: int = 0,
) -> dict:
    """Jacobian spectra at a few images; writes spectrum.json/.png.

    Args:
        model: an `IRevNetClassifier`.
        output_dir: where the outputs go.
        model_name: how the outputs name the model.
        settings: a `DataSettings`, or None for uniform-noise images.
        split: the dataset split; None for the dataset's evaluation split.
        num_images: how many images, from `first_index` on.
        first_index: index of the first image in the split.
        method, top_k, oversampling, max_iterations, tolerance, batch_size:
            as in `jacobian_spectrum`.
        energy_k: the `k` at which the record reports the energy fraction.
        seed: seeds the randomized method (and the noise).

    Returns:
        The record written to spectrum.json.
    """
    if not isinstance(num_images, int) or num_images < 1 or first_index < 0:
        raise ValueError(
            "`num_images` must be positive and `first_index` non-negative. "
            f"Received: num_images={num_images!r}, first_index={first_index!r}"
        )
    record = {
        "analysis": "spectrum",
        "model": outputs.model_record(model, model_name),
    }
    if settings is not None:
        split = split or data_lib.eval_split(settings.dataset)
        count = first_index + num_images
        images, labels, info = data_lib.load_examples(
            model,
            settings,
            split,
            count,
            too_few=lambda size: (
                f"{settings.dataset} {split} has {size} images. Received: "
                f"first_index={first_index}, num_images={num_images}"
            ),
        )
        images, labels = images[first_index:], labels[first_index:]
        names = [
            f"{settings.dataset} {split} #{first_index + i} (class {label})"
            for i, label in enumerate(labels)
        ]
        record["data"] = outputs.data_record(settings, info, split, num_images)
        source = f"{settings.dataset} {split}"
    else:
        shape = data_lib.image_shape(model, None)
        images = np.random.default_rng(seed).random(
            (num_images,) + shape, dtype=np.float32
        )
        names = [f"uniform noise #{i}" for i in range(num_images)]
        record["noise"] = {
            "distribution": "uniform pixels in [0, 1)",
            "image_shape": list(shape),
            "seed": seed,
        }
        source = "uniform noise"
    spectra = []
    for image in images:
        spectra.append(
            jacobian_spectrum(
                model,
                image,
                method=method,
                top_k=top_k,
                oversampling=oversampling,
                max_iterations=max_iterations,
                tolerance=tolerance,
                batch_size=batch_size,
                seed=seed,
                progress=data_lib.progress,
            )
        )
    record["images"] = [
        dict(
            spectrum,
            image=name,
            energy_fraction_at={
                k: float(spectrum["energy_fraction"][k - 1])
                for k in energy_k
                if 1 <= k <= len(spectrum["energy_fraction"])
            },
        )
        for name, spectrum in zip(names, spectra)
    ]
    record["notes"] = {
        "jacobian": (
            "J = dPhi/dx at each image, D_out x D_in, inference mode; "
            "'normalized' is s_i / s_1"
        ),
        "energy_fraction": (
            "cumulative sum of s_i^2 divided by total_energy = ||J||_F^2 "
            "(for 'randomized': an unbiased estimate from Gaussian probes, "
            "with its standard error, so fractions may exceed 1 slightly)"
        ),
        "randomized": (
            "top_k values by randomised subspace iteration with Rayleigh-"
            "Ritz, stopped when no value changed by more than the "
            "tolerance (relative) in one iteration"
        ),
    }
    method_name = spectra[0]["method"]
    fig = plot_spectrum(
        spectra,
        names,
        f"Jacobian spectrum of {model_name} at {source} ({method_name})",
    )
    outputs.write_outputs(output_dir, "spectrum", record, fig)
    return record


def main(inputs: command_line.Inputs) -> str:
    """Runs the analysis from its flags; returns a one-line summary."""
    record = run_spectrum(
        inputs.model,
        inputs.output_dir,
        model_name=inputs.model_name,
        settings=inputs.settings,
        split=inputs.split,
        num_images=_NUM_IMAGES.value,
        first_index=_FIRST_INDEX.value,
        method=_METHOD.value,
        top_k=_TOP_K.value,
        oversampling=_OVERSAMPLING.value,
        max_iterations=_MAX_ITERATIONS.value,
        tolerance=_TOLERANCE.value,
        energy_k=_ENERGY_K.value,
        batch_size=inputs.batch_size,
        seed=inputs.seed,
    )
    return "; ".join(
        f"{image['image']}: {len(image['singular_values'])} singular "
        f"values ({image['method']}), s_1 = "
        f"{image['singular_values'][0]:.4g}, energy fraction "
        + ", ".join(
            f"k={k} {v:.3f}" for k, v in image["energy_fraction_at"].items()
        )
        for image in record["images"]
    )
