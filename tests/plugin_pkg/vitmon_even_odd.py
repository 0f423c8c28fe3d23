"""Counts even and odd predicted classes per window: a minimal third-party detector."""

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from monitor.contract import Batch, DataclassStateCodec, EvalContext, Finding, Status


@dataclass(frozen=True, slots=True)
class EvenOddState:
    even: int
    odd: int


class EvenOdd(DataclassStateCodec):
    """Share of even predicted classes (a toy, but through the real plugin path).

    >>> from monitor.testing import make_context, synthetic_batch
    >>> d = EvenOdd()
    >>> d.evaluate(d.observe(d.empty(), synthetic_batch(n=50)), make_context())[0].n
    50
    """

    name: ClassVar[str] = "even_odd"
    version: ClassVar[int] = 1
    state_type: ClassVar[type] = EvenOddState
    wide_columns: ClassVar[frozenset[str]] = frozenset({"attrs"})

    def empty(self) -> EvenOddState:
        return EvenOddState(0, 0)

    def observe(self, state: EvenOddState, batch: Batch) -> EvenOddState:
        even = int(np.sum(batch.pred % 2 == 0))
        return EvenOddState(state.even + even, state.odd + len(batch) - even)

    def merge(self, a: EvenOddState, b: EvenOddState) -> EvenOddState:
        return EvenOddState(a.even + b.even, a.odd + b.odd)

    def evaluate(self, state: EvenOddState, context: EvalContext) -> tuple[Finding, ...]:
        n = state.even + state.odd
        if n < context.min_samples:
            return (Finding.insufficient(self, n, context.min_samples),)
        return (Finding(self.name, self.version, Status.OK, score=state.even / max(n, 1), n=n,
                        test="summary"),)


@dataclass(frozen=True, slots=True)
class LabelCountState:
    predictions: int
    labelled: int
    correct: int


class LabelCounts(DataclassStateCodec):
    """Labelled and correctly predicted events per window: exercises ``observe_labels``.

    Two labels arrive for predictions of class 1 and 2, then the second is replaced (-1/+1):

    >>> from types import SimpleNamespace as Labelled
    >>> from monitor.testing import synthetic_batch
    >>> d = LabelCounts()
    >>> s = d.observe(d.empty(), synthetic_batch(n=40))
    >>> s = d.observe_labels(s, Labelled(pred=np.array([1, 2, 2, 2]), label=np.array([1, 2, 2, 0]),
    ...                                  weight=np.array([1, 1, -1, 1])))
    >>> s
    LabelCountState(predictions=40, labelled=2, correct=1)
    """

    name: ClassVar[str] = "label_counts"
    version: ClassVar[int] = 1
    state_type: ClassVar[type] = LabelCountState
    wide_columns: ClassVar[frozenset[str]] = frozenset({"attrs"})

    def empty(self) -> LabelCountState:
        return LabelCountState(0, 0, 0)

    def observe(self, state: LabelCountState, batch: Batch) -> LabelCountState:
        return LabelCountState(state.predictions + len(batch), state.labelled, state.correct)

    def observe_labels(self, state: LabelCountState, batch) -> LabelCountState:
        correct = int(np.sum(batch.weight * (batch.pred == batch.label)))
        return LabelCountState(state.predictions, state.labelled + int(batch.weight.sum()),
                               state.correct + correct)

    def merge(self, a: LabelCountState, b: LabelCountState) -> LabelCountState:
        return LabelCountState(a.predictions + b.predictions, a.labelled + b.labelled,
                               a.correct + b.correct)

    def evaluate(self, state: LabelCountState, context: EvalContext) -> tuple[Finding, ...]:
        if state.predictions < context.min_samples:
            return (Finding.insufficient(self, state.predictions, context.min_samples),)
        return (Finding(self.name, self.version, Status.OK, n=state.predictions, test="summary",
                        details={"labelled": state.labelled, "correct": state.correct,
                                 "n_tests": context.n_tests, "look": context.look}),)
