"""ACGKD over Flower: the client node action and the graph data both sides of a run share.

A client of the ``acgkd`` strategy (:mod:`strategies.acgkd`) is a graph-classification node, not an
image classifier, so its action is registered with ``image_runtime=False``: it gets the experiment
config and its partition id and builds only what it needs, inside the function (torch_geometric is
imported on first use, never when the strategy module is imported by an unrelated run).

Data (our choice, spec acgkd.md §6): the strategy's ``data`` section describes one graph dataset; a
seeded split holds ``test_fraction`` of it out as the server's test graphs, and the rest is cut into
``num_clients`` label-skewed shards by Dirichlet(``alpha``) (:func:`fedsim.graph.data.label_skew_split`).
The graphs are built once and cached under the run's cache dir (keyed by the data section and the
seed), so Ray actors load them instead of regenerating; every node derives the same split from the
seed. No client graph ever leaves its node: a client uploads model weights only.

``train.gnn_teacher`` (:func:`train_teacher`): the client trains its GNN teacher on its own shard for
``teacher.epochs`` epochs, continuing from its previous round's teacher (kept in the run dir under
``checkpoints/gnn/<pid>/r<round>.pt``, so ``--resume`` and later rounds find it), and uploads either
the teacher (``mode: server_ensemble``) or, with ``mode: client_compress``, the student that ACGKD
distils from it locally without data (the teacher stays on the node; its test accuracy is reported as
a metric). The upload travels as an ``ArrayRecord`` (state_dict) plus the architecture as JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from flwr.app import ArrayRecord

from fedsim.client import Reply, action
from fedsim.errors import ConfigError

ACTION = "train.gnn_teacher"
STATE_DIR = ("checkpoints", "gnn")


def acgkd_section(cfg: Any) -> Any:
    """The ``strategy`` section of an acgkd run (``strategies.acgkd.ACGKDStrategyConfig``)."""
    scfg = cfg.strategy_config()
    if not all(hasattr(scfg, k) for k in ("data", "teacher", "distill", "mode", "alpha")):
        raise ConfigError(f"strategy.name: {ACTION} needs the acgkd strategy, got {scfg.name!r}")
    return scfg


@dataclass
class GraphSplit:
    """Held-out test graphs (the server's) and one training shard per client."""

    test: list
    shards: list[list]
    in_dim: int
    num_classes: int


def graphs_cache_path(cfg: Any, scfg: Any) -> Path:
    from fedsim.federation import cache_root

    key = hashlib.sha256(repr((asdict(scfg.data), cfg.seed)).encode()).hexdigest()[:12]
    return cache_root(cfg) / "graphs" / f"{key}.pt"


def cached_graphs(cfg: Any, scfg: Any) -> list:
    """The run's whole graph dataset, built once (seeded) and cached on disk for every process."""
    from fedsim.federation import atomic_torch_save
    from fedsim.graph.data import load_graphs

    path = graphs_cache_path(cfg, scfg)
    if path.is_file():
        return torch.load(path, weights_only=False)
    graphs = load_graphs(scfg.data)
    atomic_torch_save(graphs, path)
    return graphs


def graph_split(cfg: Any) -> GraphSplit:
    """The seeded test split and Dirichlet label-skewed client shards every node agrees on."""
    from fedsim.graph.data import label_skew_split, num_classes, train_test_split

    scfg = acgkd_section(cfg)
    graphs = cached_graphs(cfg, scfg)
    train, test = train_test_split(graphs, scfg.data.test_fraction, cfg.seed)
    shards = label_skew_split(train, cfg.num_clients, scfg.alpha, cfg.seed)
    return GraphSplit(test, shards, int(graphs[0].x.shape[1]), num_classes(graphs))


# -- model transport ---------------------------------------------------------------------------

def pack_model(model: Any) -> tuple[dict[str, str], dict[str, ArrayRecord]]:
    """(config entries, arrays) that carry a GraphNet in a Flower message."""
    from fedsim.graph.federated import export_model

    spec, state = export_model(model)
    return {"model-spec": json.dumps(spec)}, {"model": ArrayRecord(state)}


def unpack_model(config: dict[str, Any], arrays: dict[str, ArrayRecord]) -> Any:
    from fedsim.graph.federated import import_model

    return import_model(json.loads(config["model-spec"]), arrays["model"].to_torch_state_dict())


# -- client side -------------------------------------------------------------------------------

def teacher_dir(run_dir: str, pid: int) -> Path:
    return Path(run_dir).joinpath(*STATE_DIR, str(pid))


def previous_teacher(run_dir: str, pid: int, round_idx: int) -> Path | None:
    """The newest teacher state this client wrote in a round before ``round_idx`` (None: first round).

    Rounds at or after ``round_idx`` are ignored, so a rerun of an interrupted round starts from the
    same state as the first attempt."""
    d = teacher_dir(run_dir, pid)
    rounds = [int(p.stem[1:]) for p in d.glob("r*.pt") if p.stem[1:].isdigit()] if d.is_dir() else []
    done = [r for r in rounds if r < round_idx]
    return d / f"r{max(done)}.pt" if done else None


def save_teacher(model: Any, run_dir: str, pid: int, round_idx: int) -> None:
    """Write this round's teacher; keep the previous round's too (what a resumed round restarts from)."""
    from fedsim.federation import atomic_torch_save

    d = teacher_dir(run_dir, pid)
    atomic_torch_save(model.state_dict(), d / f"r{round_idx}.pt")
    for p in d.glob("r*.pt"):
        if p.stem[1:].isdigit() and int(p.stem[1:]) < round_idx - 1:
            os.unlink(p)


def client_teacher(cfg: Any, scfg: Any, split: GraphSplit, pid: int, run_dir: str, round_idx: int) -> Any:
    """This client's teacher: seeded fresh init, or its previous round's weights."""
    from fedsim.graph.gnn import GNNSpec, GraphNet

    t = scfg.teacher
    torch.manual_seed(cfg.seed * 1000 + pid)
    model = GraphNet(GNNSpec(split.in_dim, split.num_classes, arch=t.arch, hidden=t.hidden, layers=t.layers))
    prev = previous_teacher(run_dir, pid, round_idx)
    if prev is not None:
        model.load_state_dict(torch.load(prev, weights_only=True))
    return model


def class_counts(graphs: list, num_classes: int) -> list[int]:
    return torch.bincount(torch.tensor([int(g.y) for g in graphs], dtype=torch.long),
                          minlength=num_classes).tolist()


@action(ACTION, image_runtime=False)
def train_teacher(rt: Any, conf: dict[str, Any], arrays: dict[str, ArrayRecord]) -> Reply:
    """Client side: train the local GNN teacher on this node's shard; upload it (or its ACGKD student)."""
    from fedsim.graph.federated import compress_client
    from fedsim.graph.gnn import accuracy, train_supervised

    cfg, pid, r = rt.cfg, rt.pid, int(conf["server-round"])
    scfg = acgkd_section(cfg)
    split = graph_split(cfg)
    shard = split.shards[pid]
    if not shard:
        raise ConfigError(f"strategy.alpha: client {pid} got no training graphs; raise alpha or data.num_graphs")
    teacher = client_teacher(cfg, scfg, split, pid, conf["run-dir"], r)
    seed = cfg.seed * 1000 + pid * 100 + r
    t = scfg.teacher
    fit = train_supervised(teacher, shard, t.epochs, lr=t.lr, batch_size=t.batch_size, seed=seed)
    save_teacher(teacher, conf["run-dir"], pid, r)
    metrics = {"train_loss": fit["train_loss"], "num-examples": float(len(shard)),
               "shard_acc": accuracy(teacher, shard),
               **{f"class{c}_graphs": float(n) for c, n in enumerate(class_counts(shard, split.num_classes))}}
    upload = teacher
    if scfg.mode == "client_compress":
        metrics["teacher_acc"] = accuracy(teacher, split.test)  # the teacher never leaves the node
        upload, kd = compress_client(teacher, scfg.distill, seed=seed)
        metrics.update({f"compress_{k}": float(v) for k, v in kd.items()})
    metrics["upload_params"] = float(sum(p.numel() for p in upload.parameters()))
    config, out = pack_model(upload)
    return Reply(metrics=metrics, config=config, arrays=out)
