"""Images the ViT sees: scikit-learn's bundled digits, rendered through a camera "look".

The 8x8 grey digits that ship inside scikit-learn are resampled (with a per-image affine jitter)
to the camera's native resolution, resized to the model's 32x32 input, coloured (ink on paper),
exposed (gain, bias, gamma), blurred and given sensor noise, then quantised to 8 bits like any
real camera frame. Incidents are nothing but different looks, so their effect on image
statistics, embeddings and accuracy is real rather than scripted.

>>> import torch
>>> digits, labels = load_split("heldout")
>>> x = render(digits[:4], LOOKS["studio"].stack(4), torch.Generator().manual_seed(0))
>>> x.dtype, tuple(x.shape)
(torch.uint8, (4, 3, 32, 32))
>>> sorted(image_stats(x))
['brightness', 'contrast', 'saturation', 'sharpness']
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from simulator.looks import LOOKS, Look, stack_looks  # noqa: F401 - re-exported; LOOKS for the doctest

MODEL_SIZE = 32  # side of the square image fed to the ViT
SPLIT_SEED = 20261101  # fixed: the held-out split must never leak into training
HELDOUT_FRACTION = 0.25


@lru_cache(maxsize=2)
def load_split(which: str) -> tuple[torch.Tensor, np.ndarray]:
    """The ``"train"`` or ``"heldout"`` digits as float [N, 8, 8] in [0, 1] plus labels.

    The split is stratified and fixed by :data:`SPLIT_SEED`; the simulator only ever serves the
    held-out images, so accuracy measured from its labels is an honest held-out figure.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    idx = np.arange(len(data.target))
    train, heldout = train_test_split(idx, test_size=HELDOUT_FRACTION, random_state=SPLIT_SEED,
                                      stratify=data.target)
    chosen = {"train": train, "heldout": heldout}[which]
    images = torch.tensor(data.images[chosen] / 16.0, dtype=torch.float32)
    return images, data.target[chosen].astype(np.int64)


def _affine_jitter(n: int, gen: torch.Generator) -> torch.Tensor:
    """Per-image small rotation, scale and shift (a hand-held camera is never perfectly aligned)."""
    angle = (torch.rand(n, generator=gen) - 0.5) * 0.3  # +-8.6 degrees
    scale = 1.0 + (torch.rand(n, generator=gen) - 0.5) * 0.2
    shift = (torch.rand(n, 2, generator=gen) - 0.5) * 0.25
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    return torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                        torch.stack([sin, cos, shift[:, 1]], 1)], 1)


_GAUSS = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16.0


def _blur(x: torch.Tensor) -> torch.Tensor:
    kernel = _GAUSS.to(x.dtype).expand(x.shape[1], 1, 3, 3)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel, groups=x.shape[1])


def render(digits: torch.Tensor, look: dict[str, torch.Tensor],
           gen: torch.Generator) -> torch.Tensor:
    """Render grey digits ``[N, 8, 8]`` through per-image looks into uint8 ``[N, 3, 32, 32]``.

    ``gen`` drives the affine jitter and the sensor noise, so a seeded generator gives identical
    pixels.
    """
    n = digits.shape[0]
    theta = _affine_jitter(n, gen)
    grey = torch.empty(n, 1, MODEL_SIZE, MODEL_SIZE)
    src = digits[:, None]
    for size in torch.unique(look["size"]).tolist():
        rows = (look["size"] == size).nonzero().flatten()
        grid = F.affine_grid(theta[rows], [len(rows), 1, size, size], align_corners=False)
        native = F.grid_sample(src[rows], grid, mode="bilinear", padding_mode="zeros",
                               align_corners=False)
        grey[rows] = F.interpolate(native, size=(MODEL_SIZE, MODEL_SIZE), mode="bilinear",
                                   antialias=True, align_corners=False)
    ink, paper = look["ink"][:, :, None, None], look["paper"][:, :, None, None]
    x = paper + grey.clamp(0, 1) * (ink - paper)
    x = (x - 0.5) * look["gain"][:, None, None, None] + 0.5 + look["bias"][:, None, None, None]
    x = x.clamp(0, 1) ** look["gamma"][:, None, None, None]
    once = _blur(x)
    twice = _blur(once)
    b = look["blur"][:, None, None, None]
    w0, w2 = (1 - b).clamp(0, 1), (b - 1).clamp(0, 1)
    x = w0 * x + (1 - w0 - w2) * once + w2 * twice
    x = x + torch.randn(x.shape, generator=gen) * look["noise"][:, None, None, None]
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def to_model_input(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 pixels to the float tensor the ViT takes (fixed normalisation, as in training)."""
    return (pixels.float() / 255.0 - 0.5) / 0.25


_LAPLACE = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])[None, None]


def image_stats(pixels: torch.Tensor) -> dict[str, np.ndarray]:
    """Brightness, contrast, saturation and sharpness of uint8 images ``[N, 3, H, W]``.

    Brightness and contrast are the mean and standard deviation of Rec. 601 luma, saturation is
    the mean HSV saturation, sharpness the variance of the Laplacian of luma (a standard focus
    measure); all on the [0, 1] scale of the exact pixels the model received.

    >>> px = torch.full((1, 3, 4, 4), 255, dtype=torch.uint8)
    >>> {k: round(float(v[0]), 3) for k, v in image_stats(px).items()}
    {'brightness': 1.0, 'contrast': 0.0, 'saturation': 0.0, 'sharpness': 0.0}
    """
    x = pixels.float() / 255.0
    luma = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None]
    hi, lo = x.max(dim=1).values, x.min(dim=1).values
    lap = F.conv2d(F.pad(luma, (1, 1, 1, 1), mode="replicate"), _LAPLACE)
    stats = {
        "brightness": luma.mean(dim=(1, 2, 3)),
        "contrast": luma.std(dim=(1, 2, 3), unbiased=False),
        "saturation": ((hi - lo) / hi.clamp_min(1e-6)).mean(dim=(1, 2)),
        "sharpness": lap.var(dim=(1, 2, 3), unbiased=False),
    }
    return {k: v.numpy().astype(np.float64) for k, v in stats.items()}
