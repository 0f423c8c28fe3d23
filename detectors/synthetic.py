"""Seeded synthetic ViT-like traffic for calibration tests, examples and the benchmark.

Not a simulator of the product (that is ``vitmon simulate``): just enough structure to exercise
every drift statistic -- continuous, heavy-tailed and discrete image statistics, categorical
attributes, a softmax over classes and low-rank embeddings -- with named shifts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from detectors.batches import make_batch
from monitor.contract import Batch

CAMERAS = np.array([f"cam-{i}" for i in range(8)], dtype=object)
CAMERA_FREQ = np.array([0.3, 0.2, 0.15, 0.1, 0.1, 0.05, 0.05, 0.05])
SIZES = np.array([224.0, 320.0, 640.0, 1024.0])


@dataclass(frozen=True)
class Traffic:
    """A stationary traffic model; :meth:`batch` draws events, optionally shifted.

    Shifts (all 0 = stationary): ``brightness`` (added to image.brightness, sd 0.08),
    ``contrast`` (multiplies image.contrast), ``hardness`` (in [0, 1): shrinks the class logits,
    lowering confidence), ``prior`` (moves that much class mass to class 0), ``embedding`` (mean
    shift of the first latent factor, in its standard deviations), ``camera`` (that much
    probability moved to cam-7).
    """

    seed: int = 0
    dim: int = 64
    n_classes: int = 10
    n_factors: int = 16
    mix: np.ndarray = field(init=False, repr=False, compare=False)
    class_means: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        object.__setattr__(self, "mix", rng.normal(0, 1, (self.n_factors, self.dim)))
        object.__setattr__(self, "class_means",
                           rng.normal(0, 0.5, (self.n_classes, self.n_factors)))

    def batch(self, rng: np.random.Generator, n: int,
              shift: Mapping[str, float] | None = None, embeddings: bool = True) -> Batch:
        s = dict(shift or {})
        prior = np.full(self.n_classes, 1.0 / self.n_classes)
        prior = (1 - s.get("prior", 0.0)) * prior + s.get("prior", 0.0) * np.eye(self.n_classes)[0]
        label = rng.choice(self.n_classes, n, p=prior)
        logits = rng.normal(0, 1, (n, self.n_classes))
        logits += 5.0 * (1 - s.get("hardness", 0.0)) * np.eye(self.n_classes)[label]
        probs = np.exp(logits - logits.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
        cam_p = CAMERA_FREQ * (1 - s.get("camera", 0.0)) + s.get("camera", 0.0) * np.eye(8)[7]
        image = {
            "brightness": rng.beta(8, 8, n) + s.get("brightness", 0.0),
            "contrast": rng.gamma(4.0, 0.05, n) * s.get("contrast", 1.0),
            "sharpness": rng.lognormal(1.0, 0.4, n),
            "width": rng.choice(SIZES, n, p=[0.4, 0.3, 0.2, 0.1]),
        }
        emb = None
        if embeddings:
            z = self.class_means[label] + rng.normal(0, 1, (n, self.n_factors))
            z[:, 0] += s.get("embedding", 0.0)
            emb = z @ self.mix + rng.normal(0, 1, (n, self.dim))
        attrs = {"camera_id": rng.choice(CAMERAS, n, p=cam_p),
                 "device": rng.choice(np.array(["jetson", "x86", "arm"], dtype=object), n,
                                      p=[0.5, 0.3, 0.2])}
        return make_batch(n, rng, probs=probs, embedding=emb, image=image, attrs=attrs)
