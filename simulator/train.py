"""Train the simulator's ViT on scikit-learn's bundled digits: the reproducible weight recipe.

``vitmon simulate-train`` (or ``python -m simulator.train``) retrains and rewrites
``simulator/weights/``: ``vit_digits.pt`` (float16 state dict, about 2 MB) and
``vit_digits.json`` (architecture, recipe, recipe hash, sha256 of the weights, held-out accuracy,
training time and a short loss probe). ``tests/test_simulator_model.py`` checks that the stored
recipe hash equals the hash of :data:`RECIPE` and that a few seeded training steps reproduce the
recorded probe, so any change to the recipe or the training code is visible in review.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from simulator.images import MODEL_SIZE, SPLIT_SEED, load_split, render, to_model_input
from simulator.options import add_train_arguments
from simulator.vit import ViT, ViTConfig

WEIGHTS_DIR = Path(__file__).with_name("weights")
WEIGHTS_FILE = WEIGHTS_DIR / "vit_digits.pt"
META_FILE = WEIGHTS_DIR / "vit_digits.json"
PROBE_STEPS = 3


@dataclass(frozen=True)
class Recipe:
    """Everything that determines the trained weights besides the code itself."""

    seed: int = 7
    epochs: int = 25
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_epochs: int = 2
    label_smoothing: float = 0.1
    threads: int = 1  # one core: training must fit a shared 2-core machine
    split_seed: int = SPLIT_SEED


RECIPE = Recipe()
ARCH = ViTConfig()


def recipe_hash(recipe: Recipe = RECIPE, arch: ViTConfig = ARCH) -> str:
    """sha256 of the recipe and architecture (canonical JSON).

    >>> len(recipe_hash())
    64
    """
    blob = json.dumps({"recipe": asdict(recipe), "arch": arch.to_dict()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def random_looks(n: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Training-time colour, exposure and optics augmentation: the range of healthy cameras.

    Incident looks (``simulator.images.LOOKS``) deliberately fall outside these ranges.
    """
    u = lambda lo, hi, *shape: lo + (hi - lo) * torch.rand(n, *shape, generator=gen)
    sizes = torch.tensor([32, 48, 64, 96])
    return {"ink": u(0.65, 1.0, 3), "paper": u(0.0, 0.25, 3), "gain": u(0.8, 1.1),
            "bias": u(-0.06, 0.08), "gamma": u(0.8, 1.3), "blur": u(0.0, 0.8),
            "noise": u(0.0, 0.04), "size": sizes[torch.randint(0, 4, (n,), generator=gen)]}


def _batches(n: int, size: int, gen: torch.Generator) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=gen)
    return [order[i:i + size] for i in range(0, n - size + 1, size)]  # drop the ragged tail


def _lr_at(step: int, total: int, warmup: int, base: float) -> float:
    """Linear warm-up then cosine decay (the usual ViT schedule)."""
    if step < warmup:
        return base * (step + 1) / warmup
    return base * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def train(recipe: Recipe = RECIPE, arch: ViTConfig = ARCH, max_steps: int | None = None,
          progress: bool = False) -> tuple[ViT, list[float]]:
    """Train from scratch; returns the model and the per-step training losses.

    ``max_steps`` stops early (the recipe test runs :data:`PROBE_STEPS` steps).
    """
    torch.manual_seed(recipe.seed)
    torch.set_num_threads(recipe.threads)
    gen = torch.Generator().manual_seed(recipe.seed)
    digits, labels = load_split("train")
    targets = torch.as_tensor(labels)
    model = ViT(arch)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    steps_per_epoch = len(digits) // recipe.batch_size
    total = steps_per_epoch * recipe.epochs
    losses: list[float] = []
    step = 0
    for epoch in range(recipe.epochs):
        model.train()
        for idx in _batches(len(digits), recipe.batch_size, gen):
            for group in opt.param_groups:
                group["lr"] = _lr_at(step, total, recipe.warmup_epochs * steps_per_epoch,
                                     recipe.lr)
            pixels = render(digits[idx], random_looks(len(idx), gen), gen)
            logits, _ = model(to_model_input(pixels))
            loss = F.cross_entropy(logits, targets[idx], label_smoothing=recipe.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            step += 1
            if max_steps is not None and step >= max_steps:
                return model.eval(), losses
        if progress:
            recent = np.mean(losses[-steps_per_epoch:])
            print(f"epoch {epoch + 1}/{recipe.epochs} loss {recent:.3f}", flush=True)
    return model.eval(), losses


@torch.no_grad()
def heldout_accuracy(model: ViT, seed: int = 0) -> float:
    """Accuracy on the held-out digits rendered through random healthy-camera looks."""
    gen = torch.Generator().manual_seed(seed)
    digits, labels = load_split("heldout")
    pixels = render(digits, random_looks(len(digits), gen), gen)
    logits, _ = model.eval()(to_model_input(pixels))
    return float((logits.argmax(1).numpy() == labels).mean())


def save(model: ViT, meta: dict[str, Any], weights: Path = WEIGHTS_FILE,
         meta_path: Path = META_FILE) -> dict[str, Any]:
    """Write the float16 state dict and its metadata (with the file's sha256)."""
    weights.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(torch.float16) for k, v in model.state_dict().items()}
    torch.save(state, weights)
    meta = {**meta, "weights_file": weights.name,
            "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest()}
    meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return meta


def load_model(weights: Path = WEIGHTS_FILE, meta_path: Path = META_FILE) -> tuple[ViT, dict]:
    """Load the packaged ViT (float32 on CPU, eval mode), verifying the recorded sha256.

    Raises
    ------
    ValueError
        When the weights file does not match the checksum recorded at training time.
    """
    meta = json.loads(meta_path.read_text())
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    if digest != meta["weights_sha256"]:
        raise ValueError(f"{weights} sha256 {digest} != recorded {meta['weights_sha256']}; "
                         "retrain with `vitmon simulate-train`")
    model = ViT(ViTConfig(**meta["arch"]))
    state = torch.load(weights, map_location="cpu", weights_only=True)
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model.eval(), meta


def retrain(recipe: Recipe = RECIPE, progress: bool = True) -> dict[str, Any]:
    """Train, reload through the stored float16 file, measure, and record everything."""
    started = time.perf_counter()
    model, losses = train(recipe, ARCH, progress=progress)
    seconds = time.perf_counter() - started
    meta = {"arch": ARCH.to_dict(), "recipe": asdict(recipe), "recipe_hash": recipe_hash(recipe),
            "train_seconds": round(seconds, 1), "probe_losses": losses[:PROBE_STEPS],
            "image_size": MODEL_SIZE, "torch_version": torch.__version__}
    meta = save(model, meta)
    reloaded, _ = load_model()
    meta["heldout_accuracy"] = round(heldout_accuracy(reloaded), 4)
    META_FILE.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return meta


def run_train(args: argparse.Namespace) -> int:
    """Run ``vitmon simulate-train``; returns the process exit code."""
    if args.check:
        try:
            _, meta = load_model()
        except (OSError, ValueError) as exc:
            print(f"vitmon simulate-train: {exc}", file=sys.stderr)
            return 1
        if meta["recipe_hash"] != recipe_hash():
            print("vitmon simulate-train: the training recipe changed since the weights were "
                  "built; retrain with `vitmon simulate-train`", file=sys.stderr)
            return 1
        print(f"weights ok: sha256 {meta['weights_sha256']}, recipe {meta['recipe_hash'][:12]}, "
              f"held-out accuracy {meta['heldout_accuracy']}")
        return 0
    meta = retrain()
    print(f"trained in {meta['train_seconds']} s, held-out accuracy {meta['heldout_accuracy']}, "
          f"sha256 {meta['weights_sha256']}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m simulator.train")
    add_train_arguments(parser)
    sys.exit(run_train(parser.parse_args()))
