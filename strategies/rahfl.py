"""RAHFL's asymmetric heterogeneous FL (AsymHFL): selective one-way learning on public data.

Paper: Fang, Ye, Du, "Robust Asymmetric Heterogeneous Federated Learning with Corrupted Clients",
TPAMI 2025 (arXiv 2503.09206); official code github.com/FangXiuwen/RAHFL (``HHF/RAHFL.py``).

Each round (one communication epoch): (1) a quality query gives every client's accuracy a_k;
(2) the transfer matrix M[k][j] = 1 iff j != k and a_k <= a_j (ties count both ways); (3) for each
public batch, all clients compute softmax outputs on the *same* augmented batch in train-mode BatchNorm,
and every client k with a non-empty peer set S_k takes one Adam step (fresh optimiser) on
mean_{j in S_k} KL(P_j || p_k); the strictly best client takes none; (4) one local epoch of the client's
trainer (``dcl``: CE + 12 JSD + DCL). No weights travel.

Departures (spec rahfl.md §7): ``selection: val`` (default) scores clients on a held-out validation split
corrupted at the test rate instead of the test set (``selection: test`` is the official code's leak);
the server sends the mean of the selected peers' probabilities, which has the same gradient as the mean
of the KLs; one message per public batch carries both the step on batch b and the outputs on batch b+1,
and the loss forward on batch b keeps BatchNorm running statistics untouched so that they move once per
batch as in the official single forward. ``collab: cheap`` (one query, one pass with stale targets) is
ours, for fast tests. ``symmetric: true`` is the Sym-HFL ablation (learn from every other client).
"""

from __future__ import annotations

from dataclasses import dataclass

from flwr.app import ArrayRecord

from fedsim.config import choice
from fedsim.registry import STRATEGIES
from strategies.base import mean_of
from strategies.public import PublicConfig, PublicDataStrategy, mean_stack


@dataclass
class RAHFLConfig(PublicConfig):
    name: str = "rahfl"
    #: where the quality query scores clients: ``val`` (held-out split) or ``test`` (official code)
    selection: str = choice("val", "test")
    #: Sym-HFL ablation: every client learns from all others equally
    symmetric: bool = False
    #: ``faithful``: one step per public batch with fresh peer outputs; ``cheap``: stale targets
    collab: str = choice("faithful", "cheap")


def transfer_matrix(acc: dict[int, float], symmetric: bool = False) -> dict[int, list[int]]:
    """S_k = {j != k : acc_k <= acc_j} (RAHFL), or all j != k (symmetric ablation)."""
    return {k: [j for j in acc if j != k and (symmetric or acc[k] <= acc[j])] for k in acc}


@STRATEGIES.register("rahfl")
class RAHFL(PublicDataStrategy):
    """RAHFL: learn only from peers at least as accurate as oneself, then local DCL."""

    name = "rahfl"
    Config = RAHFLConfig

    def round(self, r: int) -> dict[str, float]:
        pids = self.ctx.sample(r)
        split = "val" if self.scfg.selection == "val" else "test_corrupt"
        replies = self.ctx.broadcast("query.acc", r, pids, {"split": split})
        accs = {pid: rep.metrics["acc"] for pid, rep in replies.items()}
        peers = transfer_matrix(accs, self.scfg.symmetric)  # failed clients are not in accs: left out
        self.last_selection = {k: {"selection_acc": accs[k], "num_teachers": float(len(v))} for k, v in peers.items()}
        collab = self._faithful(r, peers) if self.scfg.collab == "faithful" else self._cheap(r, peers)
        metrics = self.local_train(r, pids)
        return {**metrics, "collab_loss": collab, "learners": float(sum(bool(v) for v in peers.values()))}

    def _faithful(self, r: int, peers: dict[int, list[int]]) -> float:
        """One round trip per public batch: step on batch b toward fresh peer outputs, outputs on b+1."""
        pids = list(peers)
        replies = self.ctx.broadcast("train.collab", r, pids, self.public_conf(r, **{"next-batch": 0,
                                                                                      "bn-mode": self.scfg.bn_mode}))
        losses = []
        for b in range(self.num_batches):
            probs = {pid: rep.tensors()["probs"] for pid, rep in replies.items()}
            nxt = b + 1 if b + 1 < self.num_batches else -1
            conf = self.public_conf(r, **{"update-batch": b, "next-batch": nxt, "bn-mode": self.scfg.bn_mode,
                                          "loss": "kl", "weight": self.scfg.collab_weight})
            requests = {}
            for k in pids:
                teachers = [probs[j] for j in peers[k] if j in probs]
                arrays = {"target": ArrayRecord({"target": mean_stack(teachers)})} if teachers and k in probs else {}
                requests[k] = (conf, arrays)
            replies = self.ctx.send("train.collab", r, requests)
            losses.append(mean_of(replies, "collab_loss"))
        valid = [v for v in losses if v == v]
        return sum(valid) / len(valid) if valid else float("nan")

    def _cheap(self, r: int, peers: dict[int, list[int]]) -> float:
        """One query for all public outputs, then one pass toward those (stale) targets."""
        outs = self.public_outputs(r, list(peers), outputs=("probs",), bn_mode=self.scfg.bn_mode)
        targets = {k: mean_stack([outs[j]["probs"] for j in v if j in outs]) for k, v in peers.items()
                   if any(j in outs for j in v)}
        replies = self.distill(r, targets, loss="kl", fresh_optimizer=True)
        return mean_of(replies, "distill_loss")

    def evaluate(self, r: int) -> dict[int, dict[str, float]]:
        per_client = super().evaluate(r)
        for pid, extra in getattr(self, "last_selection", {}).items():
            per_client.setdefault(pid, {}).update(extra)
        return per_client


__all__ = ["RAHFL", "RAHFLConfig", "transfer_matrix"]
