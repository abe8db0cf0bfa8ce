"""The built-in client actions (message types) that strategies compose.

| message type          | does                                                               | mutates |
|-----------------------|--------------------------------------------------------------------|---------|
| ``query.hello``       | partition id and architecture (the server's node -> client map)    | no      |
| ``train``             | local epochs of the client's trainer (+ optional global weights,    | yes     |
|                       | + optional strategy regulariser: ``fedprox`` / ``fedproto``)        |         |
| ``evaluate``          | accuracy/loss on the clean and corrupted test sets                  | no      |
| ``query.acc``         | accuracy on the selection split (``val``) or a test split          | no      |
| ``query.public``      | outputs on public batches (logits, probabilities, embeddings)      | no      |
| ``train.collab``      | one public-data step toward a target, then outputs on the next batch| yes     |
| ``train.distill``     | epochs over all public batches toward per-batch targets             | yes     |
| ``query.prototypes``  | per-class mean embeddings on the private set (FedProto)             | no      |

Tensors travel in ``ArrayRecord``s named in each docstring; every reply carries ``partition-id``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from flwr.app import ArrayRecord

from fedsim.client import ACTIONS, ClientRuntime, Reply, action
from fedsim.data.augment import augmix, public_batch
from fedsim.data.base import to_float
from fedsim.trainers.base import make_optimizer, normalise, seeded_generator
from fedsim.trainers.distill import public_step


def _arrays(**named: torch.Tensor) -> ArrayRecord:
    return ArrayRecord({k: v.detach().cpu().contiguous() for k, v in named.items()})


def tensors(rec: ArrayRecord) -> dict[str, torch.Tensor]:
    return rec.to_torch_state_dict()


@action("query.hello", image_runtime=False)
def hello(rt, conf: dict[str, Any], arrays: dict[str, ArrayRecord]) -> Reply:
    """Identity only (the reply carries ``partition-id``): builds nothing, so any kind of node answers fast."""
    return Reply(config={"arch": rt.cfg.model.arch_for(rt.pid)})


def _fedprox(conf: dict[str, Any], arrays: dict[str, ArrayRecord], rt: ClientRuntime):
    """FedProx proximal term mu/2 * ||w - w_global||^2 (needs the global weights in ``arrays``)."""
    mu = float(conf["prox-mu"])
    anchor = [p.detach().clone() for p in rt.model.parameters()]

    def reg(model, x, y, logits, feats):
        return 0.5 * mu * sum((p - a).pow(2).sum() for p, a in zip(model.parameters(), anchor))

    return reg


def _fedproto(conf: dict[str, Any], arrays: dict[str, ArrayRecord], rt: ClientRuntime):
    """FedProto: lambda * MSE between embeddings and the global prototype of their class."""
    lam = float(conf["proto-lambda"])
    t = tensors(arrays["prototypes"])
    protos, present = t["prototypes"], t["present"].bool()

    def reg(model, x, y, logits, feats):
        emb = model.embed_from_features(feats)
        mask = present[y]
        if not mask.any():
            return emb.sum() * 0
        return lam * F.mse_loss(emb[mask], protos[y[mask]])

    return reg


REGULARIZERS = {"fedprox": _fedprox, "fedproto": _fedproto}


@action("train")
def train(rt: ClientRuntime, conf: dict[str, Any], arrays: dict[str, ArrayRecord]) -> Reply:
    """Local training. ``arrays['arrays']`` (optional): global weights to start from (FedAvg)."""
    if "arrays" in arrays:
        rt.model.load_state_dict(arrays["arrays"].to_torch_state_dict())
    reg_name = conf.get("regularizer", "")
    reg = REGULARIZERS[reg_name](conf, arrays, rt) if reg_name else None
    epochs = int(conf.get("local-epochs", rt.cfg.local_epochs))
    metrics = rt.trainer.fit(rt.data, epochs, rt.round, regularizer=reg)
    out = {"arrays": ArrayRecord(rt.model.state_dict())} if conf.get("return-weights") else {}
    return Reply(metrics=metrics, arrays=out, mutated=True)


@action("evaluate")
def evaluate(rt: ClientRuntime, conf: dict[str, Any], arrays: dict[str, ArrayRecord]) -> Reply:
    """Clean and corrupted test accuracy. ``arrays['arrays']``: evaluate these weights instead."""
    if "arrays" in arrays:
        rt.model.load_state_dict(arrays["arrays"].to_torch_state_dict())
        rt.token = None  # the in-memory model no longer equals the client's saved state
    m: dict[str, float] = {"num-examples": float(len(rt.data.test_clean))}
    for name, split in (("clean", rt.data.test_clean), ("corrupt", rt.data.test_corrupt)):
        m[f"acc_{name}"], m[f"loss_{name}"] = rt.accuracy(split)
    return Reply(metrics=m)


@action("query.acc")
def query_acc(rt: ClientRuntime, conf: dict[str, Any], arrays: dict[str, ArrayRecord]) -> Reply:
    """Accuracy on ``conf['split']``: ``val`` (default), ``test_corrupt`` or ``test_clean``."""
    split = conf.get("split", "val")
    images = getattr(rt.data, split)
    if images is None:
        raise ValueError(f"query.acc: client {rt.pid} has no {split!r} split (data.val_size=0?)")
    acc, loss = rt.accuracy(images)
    return Reply(metrics={"acc": acc, "loss": loss, "num-examples": float(len(images))})


def _public_x(rt: ClientRuntime, conf: dict[str, Any], batch: int) -> torch.Tensor:
    """The public batch every client derives identically from (round seed, batch index).

    ``conf['view']``: ``plain`` (the public augmentation, or none) or ``augmix`` (an AugMix mixture of
    the raw batch, AugHFL's public view; ``augmix2`` draws a second, independent one).
    """
    public = rt.data.public
    if public is None:
        raise ValueError(f"client {rt.pid} has no public data (data.public.source=none)")
    bs, seed = int(conf["public-batch-size"]), int(conf["public-seed"])
    view = conf.get("view", "plain")
    idx, x = public_batch(public, batch, bs, seed, augment=bool(conf.get("public-augment", True)) and view == "plain")
    if view == "plain":
        return x
    g = seeded_generator("public-augmix", seed, batch, view)
    return to_float(augmix(public.x[idx], g), public.mean, public.std)


@torch.no_grad()
def _outputs(rt: ClientRuntime, x: torch.Tensor, mode: str) -> dict[str, torch.Tensor]:
    """Outputs on public images. ``mode='train'`` uses batch statistics (and moves BN running stats)."""
    rt.model.train(mode == "train")
    logits, feats = rt.model.forward_all(x)
    return {"logits": logits, "probs": logits.softmax(1), "features": feats}


@action("query.public")
def query_public(rt: ClientRuntime, conf: dict[str, Any], arrays: dict[str, ArrayRecord]) -> Reply:
    """Outputs on public batches ``conf['batches']`` (list of ints), concatenated.

    ``conf['outputs']``: which of logits/probs/features to return; ``conf['bn-mode']``: ``eval``
    (default) or ``train`` (official RAHFL: BatchNorm in train mode, running stats move).
    """
    want = list(conf.get("outputs", ["logits"]))
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in want}
    for b in conf["batches"]:
        out = _outputs(rt, _public_x(rt, conf, int(b)), conf.get("bn-mode", "eval"))
        for k in want:
            parts[k].append(out[k])
    mutated = conf.get("bn-mode", "eval") == "train"
    return Reply(arrays={"outputs": _arrays(**{k: torch.cat(v) for k, v in parts.items()})}, mutated=mutated)


@action("train.collab")
def train_collab(rt: ClientRuntime, conf: dict[str, Any], arrays: dict[str, ArrayRecord]) -> Reply:
    """One collaborative step of RAHFL's public phase, then outputs on the next batch.

    If ``arrays['target']`` is present: one step of ``conf['loss']`` toward it on batch
    ``conf['update-batch']`` with a fresh optimiser (official code). Then, if ``conf['next-batch']``
    >= 0, the probabilities on that batch in ``conf['bn-mode']`` (default ``train``) are returned, so
    one round trip per public batch serves both halves of the sequential loop.
    """
    metrics: dict[str, float] = {}
    if "target" in arrays:
        x = _public_x(rt, conf, int(conf["update-batch"]))
        target = tensors(arrays["target"])["target"]
        opt = make_optimizer(rt.trainer.cfg, rt.model.parameters())
        metrics["collab_loss"] = public_step(rt.model, x, target, conf.get("loss", "kl"), opt,
                                             float(conf.get("weight", 1.0)))
    out: dict[str, ArrayRecord] = {}
    nxt = int(conf.get("next-batch", -1))
    if nxt >= 0:
        o = _outputs(rt, _public_x(rt, conf, nxt), conf.get("bn-mode", "train"))
        out["outputs"] = _arrays(probs=o["probs"], logits=o["logits"])
    return Reply(metrics=metrics, arrays=out, mutated=True)


@action("train.distill")
def train_distill(rt: ClientRuntime, conf: dict[str, Any], arrays: dict[str, ArrayRecord]) -> Reply:
    """``conf['epochs']`` passes over public batches ``conf['batches']`` toward ``arrays['target']``.

    The target holds one row per public image of the concatenated batches (logits or probabilities,
    as the loss expects). One optimiser for the whole call unless ``conf['fresh-optimizer']``.
    """
    target = tensors(arrays["target"])["target"]
    batches = [int(b) for b in conf["batches"]]
    bs = int(conf["public-batch-size"])
    opt = make_optimizer(rt.trainer.cfg, rt.model.parameters())
    losses = []
    for _ in range(int(conf.get("epochs", 1))):
        for i, b in enumerate(batches):
            if conf.get("fresh-optimizer"):
                opt = make_optimizer(rt.trainer.cfg, rt.model.parameters())
            x = _public_x(rt, conf, b)
            losses.append(public_step(rt.model, x, target[i * bs : i * bs + len(x)], conf.get("loss", "kl"), opt,
                                      float(conf.get("weight", 1.0)), reuse_forward=False))
    return Reply(metrics={"distill_loss": float(np.mean(losses)) if losses else 0.0}, mutated=True)


@action("query.prototypes")
@torch.no_grad()
def query_prototypes(rt: ClientRuntime, conf: dict[str, Any], arrays: dict[str, ArrayRecord]) -> Reply:
    """Per-class mean embedding on the private set and class counts (FedProto)."""
    rt.model.eval()
    train = rt.data.train
    c = train.num_classes
    sums, counts = None, torch.zeros(c)
    for i in range(0, len(train), 256):
        feats = rt.model.features(normalise(train.x[i : i + 256], train))
        emb = rt.model.embed_from_features(feats)
        y = train.y[i : i + 256]
        if sums is None:
            sums = torch.zeros(c, emb.shape[1])
        sums.index_add_(0, y, emb)
        counts += torch.bincount(y, minlength=c).float()
    protos = sums / counts.clamp(min=1).unsqueeze(1)
    return Reply(arrays={"prototypes": _arrays(prototypes=protos, counts=counts)})


__all__ = ["ACTIONS", "tensors"]
