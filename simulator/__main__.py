"""``python -m simulator ...``: the same as ``vitmon simulate ...`` (retrain: ``python -m
simulator.train``)."""

import argparse
import sys

from simulator.cli import add_arguments, run

parser = argparse.ArgumentParser(prog="python -m simulator")
add_arguments(parser)
sys.exit(run(parser.parse_args()))
