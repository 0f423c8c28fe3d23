"""Rendered frames and the ViT's real outputs for them, memoised per (look, model variant).

Every frame is rendered and classified for real, in torch batches. To keep long runs fast, each
(look, variant) pair keeps up to ``capacity`` distinct frames: the first ``capacity`` requests
render fresh frames (a short run never repeats an input) and later requests re-serve a random
frame from the pool, like a camera that keeps seeing the same scenes. Statistics, softmax and
embedding always belong to the exact pixels the model received.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch

from simulator.images import image_stats, load_split, render, to_model_input
from simulator.looks import Look, stack_looks
from simulator.samples import SampleStore
from simulator.vit import ViT

STAT_NAMES = ("brightness", "contrast", "saturation", "sharpness")
INFER_BATCH = 256


@dataclass(frozen=True)
class Frames:
    """Per-frame columns: one row per served event."""

    image_index: np.ndarray  # int64 into the held-out split (the true class comes from it)
    label: np.ndarray  # int64 true class
    sha256: np.ndarray  # object[str] sha256 of the uint8 pixels fed to the model
    stats: np.ndarray  # float64 [N, 4] in STAT_NAMES order
    size: np.ndarray  # int64 native capture side in pixels
    probs: np.ndarray  # float32 [N, classes] softmax
    embedding: np.ndarray  # float32 [N, width] CLS embedding

    def take(self, rows: np.ndarray) -> Frames:
        return Frames(*(getattr(self, f)[rows] for f in self.__dataclass_fields__))


def concat(parts: list[Frames]) -> Frames:
    return Frames(*(np.concatenate([getattr(p, f) for p in parts])
                    for f in Frames.__dataclass_fields__))


@torch.no_grad()
def classify(model: ViT, looks: list[Look], images: np.ndarray,
             gen: torch.Generator, store: SampleStore | None = None) -> Frames:
    """Render held-out digits ``images`` through ``looks`` and run the model on them in batches
    (each frame also goes to ``store`` when given)."""
    digits, labels = load_split("heldout")
    parts = []
    for lo in range(0, len(images), INFER_BATCH):
        rows = images[lo:lo + INFER_BATCH]
        batch_looks = looks[lo:lo + INFER_BATCH]
        pixels = render(digits[torch.as_tensor(rows)], stack_looks(batch_looks), gen)
        logits, cls = model(to_model_input(pixels))
        stats = image_stats(pixels)
        raw = pixels.numpy()
        sha = np.array([hashlib.sha256(img.tobytes()).hexdigest() for img in raw], dtype=object)
        if store is not None:
            for digest, img in zip(sha.tolist(), raw, strict=True):
                store.write(digest, img)
        parts.append(Frames(
            image_index=rows.astype(np.int64), label=labels[rows], sha256=sha,
            stats=np.stack([stats[k] for k in STAT_NAMES], axis=1),
            size=np.array([look.size for look in batch_looks], dtype=np.int64),
            probs=torch.softmax(logits, dim=1).numpy(), embedding=cls.numpy()))
    return concat(parts)


class FramePool:
    """Frames per (look, variant), grown on demand up to ``capacity`` and then re-served.

    Deterministic: the same sequence of :meth:`serve` calls with equally seeded generators gives
    the same frames.
    """

    def __init__(self, models: dict[str, ViT], capacity: int = 2048,
                 store: SampleStore | None = None) -> None:
        self.models = models
        self.capacity = capacity
        self.store = store
        self._pools: dict[tuple[Look, str], Frames] = {}
        self.rendered = 0  # frames that went through the model (for the benchmark)

    def serve(self, looks: np.ndarray, variants: np.ndarray, rng: np.random.Generator) -> Frames:
        """One frame per event for ``looks`` (object array of Look) and ``variants`` (str)."""
        n = len(looks)
        keys = list(zip(looks.tolist(), variants.tolist(), strict=True))
        groups: dict[tuple[Look, str], list[int]] = {}
        for row, key in enumerate(keys):
            groups.setdefault(key, []).append(row)
        order = np.empty(n, dtype=np.int64)
        parts: list[Frames] = []
        offset = 0
        n_images = len(load_split("heldout")[1])
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        for key in sorted(groups, key=repr):  # a stable order keeps generator use reproducible
            rows = np.asarray(groups[key])
            pool = self._pools.get(key)
            have = 0 if pool is None else len(pool.label)
            fresh = min(len(rows), self.capacity - have)
            if fresh > 0:
                new = classify(self.models[key[1]], [key[0]] * fresh,
                               rng.integers(0, n_images, fresh), gen, self.store)
                self.rendered += fresh
                pool = new if pool is None else concat([pool, new])
                self._pools[key] = pool
            assert pool is not None
            picks = np.concatenate([np.arange(have, have + fresh),
                                    rng.integers(0, len(pool.label), len(rows) - fresh)])
            parts.append(pool.take(picks))
            order[rows] = np.arange(offset, offset + len(rows))
            offset += len(rows)
        return concat(parts).take(order)
