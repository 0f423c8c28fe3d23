"""``vitmon simulate`` and ``vitmon simulate-train``: the ViT traffic simulator."""

from __future__ import annotations

import argparse

from monitor.app.config import Settings
from monitor.cli.common import Subparsers, command


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from simulator import cli as sim_cli

    if args.bootstrap is None:  # the YAML setting, when env gave none
        args.bootstrap = settings.kafka.bootstrap
    return sim_cli.run(args)


def cmd_simulate_train(args: argparse.Namespace, settings: Settings) -> int:
    from simulator.train import run_train

    return run_train(args)


def register(sub: Subparsers) -> None:
    from simulator import cli as sim_cli
    from simulator.options import add_train_arguments

    p = command(sub, "simulate", "publish ViT traffic from a real small ViT to Kafka (or a file)",
                cmd_simulate)
    sim_cli.add_arguments(p)
    p = command(sub, "simulate-train", "retrain the simulator's ViT with the fixed recipe "
                "(--check only verifies the stored weights)", cmd_simulate_train)
    add_train_arguments(p)
