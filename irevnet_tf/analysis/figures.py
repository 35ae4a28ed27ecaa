"""Shared figure pieces: images on axes.

Figures are `matplotlib.figure.Figure` objects (no pyplot state), rendered
with the Agg backend when saved.
"""

import numpy as np


def displayable(images) -> np.ndarray:
    """Pixels in [0, 1], single-channel images without their channel axis."""
    images = np.clip(np.asarray(images, np.float32), 0.0, 1.0)
    if images.shape[-1] == 1:
        images = images[..., 0]
    return images


def show_image(ax, image) -> None:
    """One image from `displayable`, without ticks."""
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])


def show_reconstructions(
    fig, originals, reconstructions, differences, label: str
) -> None:
    """Rows of originals, reconstructions and |differences| on `fig`.

    Args:
        fig: a `Figure` or `SubFigure`.
        originals, reconstructions: `[0, 1]` pixels `(n, H, W, C)`.
        differences: `x - Phi^-1(Phi x)` in pixels; shown
            as the largest absolute value over channels, on a shared scale.
    """
    originals = displayable(originals)
    reconstructions = displayable(reconstructions)
    magnitude = np.max(np.abs(np.asarray(differences, np.float64)), axis=-1)
    n = len(originals)
    axes = fig.subplots(3, n, squeeze=False)
    scale = max(float(magnitude.max()), np.finfo(np.float32).tiny)
    for i in range(n):
        show_image(axes[0, i], originals[i])
        show_image(axes[1, i], reconstructions[i])
        shown = axes[2, i].imshow(
            magnitude[i], cmap="magma", vmin=0, vmax=scale
        )
        axes[2, i].set_xticks([])
        axes[2, i].set_yticks([])
    axes[0, 0].set_ylabel("x")
    axes[1, 0].set_ylabel("reconstruction")
    axes[2, 0].set_ylabel("|difference|")
    fig.colorbar(
        shown,
        ax=axes.ravel().tolist(),
        shrink=0.6,
        label="|x - Phi^-1(Phi x)|, max over channels",
    )
    fig.suptitle(f"{label}: examples")
