"""E / F / O: the specialisation-vs-forgetting metrics of downstream MLLM tuning.

Paper: Huang et al., "Keeping Yourself is Important in Downstream Tuning Multimodal Large Language
Model", arXiv 2503.04543. Definitions (consistent across the sources we could read):

* E (specialisation) = downstream accuracy after tuning - zero-shot downstream accuracy;
* F (forgetting)     = upstream accuracy after tuning - before (usually <= 0);
* O = E + F.

Our choice (the paper's averaging is not published): accuracies are in points (0-100); E is the
mean over the downstream sets of the per-set gain and F the mean over the upstream sets, every set
weighted equally (a "set" is one question family of the world). Across clients, E, F and O are the
plain mean of the per-client values (:func:`average_efo`). ``avg`` is LoRASculpt's overall score,
½ (downstream mean + upstream mean) after tuning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fedsim.mllm.model import MLLM
from fedsim.mllm.world import MMDataset

Table = Mapping[str, float]  # set name -> accuracy in [0, 1]


@dataclass
class EFO:
    E: float
    F: float
    O: float  # noqa: E741 - the paper's name
    upstream_after: float  # mean upstream accuracy after tuning, points
    downstream_after: float
    avg: float

    def as_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


def _mean_gain(before: Table, after: Table) -> float:
    missing = set(before) ^ set(after)
    if missing:
        raise ValueError(f"before/after tables disagree on sets {sorted(missing)}")
    if not before:
        raise ValueError("no sets to average")
    return 100.0 * sum(after[k] - before[k] for k in before) / len(before)


def _mean(t: Table) -> float:
    return 100.0 * sum(t.values()) / len(t)


def efo(up_before: Table, up_after: Table, down_before: Table, down_after: Table) -> EFO:
    """E, F, O (points) from per-set accuracy tables before and after tuning."""
    e, f = _mean_gain(down_before, down_after), _mean_gain(up_before, up_after)
    up, down = _mean(up_after), _mean(down_after)
    return EFO(E=e, F=f, O=e + f, upstream_after=up, downstream_after=down, avg=(up + down) / 2)


def average_efo(results: Sequence[EFO]) -> EFO:
    """Plain mean over clients of every field."""
    if not results:
        raise ValueError("average_efo: no results")
    keys = results[0].as_dict()
    return EFO(**{k: sum(r.as_dict()[k] for r in results) / len(results) for k in keys})


class EFOMetric:
    """Evaluates a model on fixed upstream and downstream sets; call before and after tuning."""

    def __init__(self, upstream_sets: Mapping[str, MMDataset],
                 downstream_sets: Mapping[str, MMDataset]) -> None:
        if not upstream_sets or not downstream_sets:
            raise ValueError("EFOMetric needs at least one upstream and one downstream set")
        self.upstream_sets = dict(upstream_sets)
        self.downstream_sets = dict(downstream_sets)

    @classmethod
    def from_families(cls, upstream: MMDataset, downstream: MMDataset) -> EFOMetric:
        """One set per question family of each dataset."""
        return cls(upstream.by_family(), downstream.by_family())

    def evaluate(self, mllm: MLLM) -> tuple[dict[str, float], dict[str, float]]:
        """(upstream table, downstream table) of accuracies in [0, 1]."""
        return ({k: mllm.overall_accuracy(d) for k, d in self.upstream_sets.items()},
                {k: mllm.overall_accuracy(d) for k, d in self.downstream_sets.items()})

    def compute(self, before: tuple[Table, Table], after: tuple[Table, Table]) -> EFO:
        return efo(before[0], after[0], before[1], after[1])
