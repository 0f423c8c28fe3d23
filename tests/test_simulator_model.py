"""The simulator's ViT: architecture, packaged weights, and the guard on the training recipe."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from simulator.images import LOOKS, load_split, render, to_model_input
from simulator.train import (
    META_FILE,
    PROBE_STEPS,
    WEIGHTS_FILE,
    heldout_accuracy,
    load_model,
    recipe_hash,
    train,
)
from simulator.vit import ViT, ViTConfig, corrupt_position_embeddings


@pytest.fixture(scope="module")
def packaged() -> tuple[ViT, dict]:
    torch.set_num_threads(1)
    return load_model()


def test_architecture_is_a_vit_with_width_192(packaged: tuple[ViT, dict]) -> None:
    model, meta = packaged
    cfg = model.cfg
    assert (cfg.width, cfg.image_size, cfg.patch_size) == (192, 32, 8)
    assert model.pos_embed.shape == (1, cfg.n_patches + 1, 192)  # class token + 16 patches
    assert len(model.blocks) == cfg.depth == meta["arch"]["depth"]
    logits, cls = model(torch.zeros(3, 3, 32, 32))
    assert logits.shape == (3, 10) and cls.shape == (3, 192)


def test_weights_are_small_and_match_their_recorded_checksum(packaged: tuple[ViT, dict]) -> None:
    _, meta = packaged
    assert WEIGHTS_FILE.stat().st_size < 4 * 2**20
    assert meta["weights_sha256"]  # load_model verified it against the file
    print(f"\nweights {WEIGHTS_FILE.stat().st_size / 2**20:.2f} MiB, trained in "
          f"{meta['train_seconds']} s, held-out accuracy {meta['heldout_accuracy']}")
    assert meta["train_seconds"] < 120


def test_stored_recipe_hash_matches_the_code() -> None:
    """Changing Recipe or ViTConfig without retraining (`vitmon simulate-train`) fails here."""
    import json

    assert json.loads(META_FILE.read_text())["recipe_hash"] == recipe_hash()


def test_first_training_steps_reproduce_the_recorded_probe(packaged: tuple[ViT, dict]) -> None:
    """A few seeded steps of the real training loop give the losses recorded at training time,
    so a change to the data, augmentation or optimisation code shows up without a full retrain."""
    _, meta = packaged
    _, losses = train(max_steps=PROBE_STEPS)
    np.testing.assert_allclose(losses, meta["probe_losses"], rtol=1e-4)


def test_heldout_accuracy_is_at_least_90_percent(packaged: tuple[ViT, dict]) -> None:
    model, meta = packaged
    accuracy = heldout_accuracy(model)
    print(f"\nheld-out accuracy of the packaged weights: {accuracy:.4f}")
    assert accuracy >= 0.90
    assert accuracy == pytest.approx(meta["heldout_accuracy"], abs=1e-3)


def test_corrupted_canary_is_a_real_regression(packaged: tuple[ViT, dict]) -> None:
    model, _ = packaged
    canary = corrupt_position_embeddings(model, seed=11, strength=0.7)
    digits, labels = load_split("heldout")
    pixels = render(digits, LOOKS["studio"].stack(len(digits)), torch.Generator().manual_seed(3))
    with torch.no_grad():
        good = (model(to_model_input(pixels))[0].argmax(1).numpy() == labels).mean()
        bad = (canary(to_model_input(pixels))[0].argmax(1).numpy() == labels).mean()
    print(f"\nbaseline {good:.3f} vs corrupted canary {bad:.3f}")
    assert good - bad >= 0.10


def test_train_and_heldout_splits_are_disjoint() -> None:
    train_x, _ = load_split("train")
    held_x, _ = load_split("heldout")
    train_rows = {row.numpy().tobytes() for row in train_x}
    overlap = sum(row.numpy().tobytes() in train_rows for row in held_x)
    assert len(train_x) + len(held_x) == 1797
    assert overlap <= 5  # sklearn's digits contain a handful of exact duplicates, no more


def test_fresh_model_config_roundtrip() -> None:
    cfg = ViTConfig(depth=1)
    assert ViTConfig(**cfg.to_dict()) == cfg
