"""The options of ``vitmon simulate-train``, apart from :mod:`simulator.train` so that building
``vitmon``'s argument parser (every command) does not import torch."""

from __future__ import annotations

import argparse


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``vitmon simulate-train``."""
    parser.description = ("Retrain the simulator's ViT from scikit-learn's digits and rewrite "
                          "simulator/weights/ (about 95 s on one core).")
    parser.add_argument("--check", action="store_true", help="only verify that the stored "
                        "weights match their checksum and the code's recipe hash")
