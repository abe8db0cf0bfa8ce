"""``aughfl``: AugHFL, robustness-weighted heterogeneous FL with AugMix (RAHFL's predecessor).

Paper: Fang, Ye, Yang, "Robust Heterogeneous Federated Learning under Data Corruption", ICCV 2023
(official code github.com/FangXiuwen/AugHFL, ``HHF/AugHFL.py``, commit ``ac4c64f``). Each round:

1. on every public batch, each client's probabilities on the clean view and on two AugMix views
   (``query.public`` views ``plain``, ``augmix``, ``augmix2``);
2. per batch, client i's robustness weight w_i = u_i / sum_k u_k with
   u_i = 1 / [KL(p_clean,i || p_aug1,i) + KL(p_clean,i || p_aug2,i)] over all K clients
   (:func:`fedsim.trainers.losses.robustness_weights`): clients whose predictions move less under
   augmentation are trusted more;
3. client k takes one Adam step per batch (fresh optimiser, as the official loop) on
   sum_{i != k} w_i KL(p_clean,i || p_clean,k); the server sends t_k = sum_{i != k} w_i p_clean,i (an
   unnormalised mixture with the same gradient as the weighted sum of KLs);
4. local learning: CE + 12 * AugMix-JSD (trainer ``augmix_jsd``, set in the config's ``trainer``
   section; a warning is logged for another trainer).

``paper_code: true`` reproduces the official code as it runs: it clamps the student's log-probabilities
to [1e-7, 1] before the KL, so they become the constant 1e-7, the collaborative gradient is zero and the
official Adam step (no weight decay) changes nothing. The public forwards still run (moving BatchNorm
statistics in ``bn_mode: train``) and the weights are computed and logged, but no update is sent.
By default fedsim implements the intended weighted KL (spec rahfl.md §9, our choice).

Departures: the official loader gives each participant its own (corrupted) augmented public batch; here
every client sees the same batch and views (our choice, as RAHFL). The clean view is the un-augmented
public image (``public_augment: false`` by default) so that clean and AugMix views differ by AugMix only.
The three views are three forwards (the official code makes one over their concatenation).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from fedsim.registry import STRATEGIES
from fedsim.trainers.losses import robustness_weights
from strategies.base import mean_of
from strategies.public import PublicConfig, PublicDataStrategy

log = logging.getLogger("fedsim")

VIEWS = ("plain", "augmix", "augmix2")


@dataclass
class AugHFLConfig(PublicConfig):
    name: str = "aughfl"
    public_augment: bool = False
    #: reproduce the official code's clamp (zero collaborative gradient); see the module docstring
    paper_code: bool = False


def batch_weights(views: dict[str, dict[int, torch.Tensor]], pids: list[int],
                  batch_size: int) -> list[torch.Tensor]:
    """Per public batch, the robustness weights of ``pids`` (a (K,) tensor per batch)."""
    n = len(views["plain"][pids[0]])
    out = []
    for start in range(0, n, batch_size):
        sl = slice(start, start + batch_size)
        out.append(robustness_weights(*([views[v][p][sl] for p in pids] for v in VIEWS)))
    return out


def mixture_targets(clean: dict[int, torch.Tensor], pids: list[int], weights: list[torch.Tensor],
                    batch_size: int) -> dict[int, torch.Tensor]:
    """t_k = sum_{i != k} w_i p_clean,i, batch by batch (rows of each batch use that batch's weights)."""
    targets = {}
    for k in pids:
        parts = []
        for b, w in enumerate(weights):
            sl = slice(b * batch_size, (b + 1) * batch_size)
            parts.append(sum(w[i] * clean[p][sl] for i, p in enumerate(pids) if p != k))
        targets[k] = torch.cat(parts)
    return targets


@STRATEGIES.register("aughfl")
class AugHFL(PublicDataStrategy):
    """AugHFL: KL toward peers weighted by their AugMix stability, then CE + AugMix-JSD locally."""

    name = "aughfl"
    Config = AugHFLConfig

    def setup(self) -> None:
        super().setup()
        if self.cfg.trainer.get("name") != "augmix_jsd":
            log.warning("aughfl: trainer is %r; AugHFL's local loss is CE + AugMix-JSD "
                        "(trainer.name=augmix_jsd)", self.cfg.trainer.get("name"))

    def round(self, r: int) -> dict[str, float]:
        pids = self.ctx.sample(r)
        views = {v: {p: o["probs"] for p, o in self.public_outputs(r, pids, ("probs",), view=v,
                                                                    bn_mode=self.scfg.bn_mode).items()}
                 for v in VIEWS}
        ok = sorted(set.intersection(*(set(views[v]) for v in VIEWS)))
        collab, self.weights = float("nan"), {}
        if len(ok) > 1:
            bs = self.cfg.data.public.batch_size
            weights = batch_weights(views, ok, bs)
            self.weights = {p: float(torch.stack(weights)[:, i].mean()) for i, p in enumerate(ok)}
            if not self.scfg.paper_code:
                targets = mixture_targets(views["plain"], ok, weights, bs)
                collab = mean_of(self.distill(r, targets, "kl", fresh_optimizer=True), "distill_loss")
        return {**self.local_train(r, pids), "collab_loss": collab}

    def evaluate(self, r: int) -> dict[int, dict[str, float]]:
        per_client = super().evaluate(r)
        for pid, w in getattr(self, "weights", {}).items():
            per_client.setdefault(pid, {})["robust_weight"] = w
        return per_client


__all__ = ["AugHFL", "AugHFLConfig", "batch_weights", "mixture_targets"]
