"""RAHFL's server logic: the transfer matrix, who learns in the public phase, identical public batches."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fedsim.client import open_runtime
from strategies.rahfl import RAHFL, transfer_matrix

TINY = Path(__file__).parent.parent / "configs" / "tiny.yaml"


def test_transfer_matrix_rule_and_ties():
    m = transfer_matrix({0: 0.5, 1: 0.7, 2: 0.7, 3: 0.9})
    assert m == {0: [1, 2, 3], 1: [2, 3], 2: [1, 3], 3: []}  # ties learn from each other; best learns nothing
    assert all(k not in v for k, v in m.items())  # diagonal is 0
    assert transfer_matrix({0: 0.5, 1: 0.5}) == {0: [1], 1: [0]}
    assert transfer_matrix({0: 0.9, 1: 0.1, 2: 0.5}, symmetric=True) == {0: [1, 2], 1: [0, 2], 2: [0, 1]}


def _strategy(ctx, **kw):
    scfg = RAHFL.Config(**kw)
    s = RAHFL(scfg, ctx)
    s.setup()
    return s


def _weights(ctx, pid, r):
    return {k: v.clone() for k, v in open_runtime(ctx.cfg, pid, str(ctx.run_dir), r).model.state_dict().items()}


def _changed(before, after, params_only=True):
    keys = [k for k in before if not params_only or ("running" not in k and "num_batches" not in k)]
    return any(not torch.equal(before[k], after[k]) for k in keys)


def test_best_client_takes_no_public_step_and_batches_are_identical(make_context):
    ctx = make_context("model.archs=[cnn,cnn,resnet10]", "trainer.name=supervised")
    s = _strategy(ctx, collab="faithful", selection="val")
    # make client 2 clearly the best: copy nothing, just pin accuracies through a fake quality query
    accs = {0: 0.2, 1: 0.4, 2: 0.9}
    real_broadcast = ctx.broadcast

    def broadcast(action, r, pids, conf=None, arrays=None):
        if action == "query.acc":
            from fedsim.server import ClientReply

            return {p: ClientReply(p, {"acc": accs[p]}, {}, {}) for p in pids}
        return real_broadcast(action, r, pids, conf, arrays)

    ctx.broadcast = broadcast
    before = {p: _weights(ctx, p, 0) for p in ctx.pids}
    s.local_train = lambda r, pids, conf=None, arrays=None: {"train_loss": 0.0}  # isolate the public phase
    s.round(1)
    after = {p: _weights(ctx, p, 1) for p in ctx.pids}
    assert not _changed(before[2], after[2])  # the best client: no collaborative update
    assert _changed(before[0], after[0]) and _changed(before[1], after[1])
    collab = ctx.sent("train.collab")
    assert len(collab) == 3 * (s.num_batches + 1)  # one round trip per batch, plus the first outputs
    assert not any("target" in m.arrays for m in collab if m.pid == 2)
    # all clients are asked for the same batches with the same seed: identical public inputs
    for step in range(s.num_batches + 1):
        confs = [m.conf for m in collab[3 * step : 3 * step + 3]]
        assert all(c["public-seed"] == confs[0]["public-seed"] and c.get("next-batch") == confs[0].get("next-batch")
                   for c in confs)
    from fedsim.actions import _public_x

    rts = [open_runtime(ctx.cfg, p, str(ctx.run_dir), 1) for p in ctx.pids]
    xs = [_public_x(rt, collab[0].conf, 0) for rt in rts]
    assert torch.equal(xs[0], xs[1]) and torch.equal(xs[0], xs[2])


def test_worst_client_learns_from_mean_of_better_peers():
    probs = {0: torch.tensor([[0.2, 0.8]]), 1: torch.tensor([[0.6, 0.4]]), 2: torch.tensor([[1.0, 0.0]])}
    peers = transfer_matrix({0: 0.1, 1: 0.5, 2: 0.5})
    from strategies.public import mean_stack

    target0 = mean_stack([probs[j] for j in peers[0]])
    assert torch.allclose(target0, torch.tensor([[0.8, 0.2]]))


def test_full_round_with_dcl_and_a_failed_client(make_context):
    ctx = make_context("model.archs=[cnn,resnet10,cnn]", "trainer.name=dcl", "trainer.batch_size=32")
    s = _strategy(ctx, collab="cheap")
    ctx.fail = {1}
    metrics = s.round(1)
    assert metrics["learners"] == 1.0  # of the two answering clients, only the weaker one learns
    per_client = s.evaluate(1)
    assert set(per_client) == {0, 2} and set(s.last_selection) == {0, 2}
    assert all(0 <= m["acc_corrupt"] <= 1 for m in per_client.values())


@pytest.mark.ray
def test_rahfl_two_rounds_on_ray_with_four_architectures(tmp_path):
    """The whole method through Flower's simulation engine on Ray: 4 different models, DCL, faithful collab."""
    import fedsim

    cfg = fedsim.load_config(TINY, [
        "num_clients=4", "rounds=2", "local_epochs=1", "pretrain_epochs=1", "strategy.name=rahfl",
        "strategy.collab=faithful", "trainer.name=dcl", "trainer.batch_size=32",
        "model.archs=[resnet10,resnet12,shufflenetv2,mobilenetv2]", "model.width=0.125",
        "data.partition.samples_per_client=96", "data.public.source=synthetic", "data.public.size=64",
        "data.public.batch_size=32", f"cache_dir={tmp_path / 'cache'}"])
    result = fedsim.run(cfg, tmp_path / "run")
    s = result.summary
    assert s["status"] == "completed" and s["rounds_completed"] == 2
    archs = {fedsim.load_config(result.run_dir / "config.yaml").model.arch_for(i) for i in range(4)}
    assert len(archs) == 4
    rows = [r for r in result.metrics if r["client"] is not None]
    assert {r["client"] for r in rows} == {0, 1, 2, 3}
    assert all({"acc_clean", "acc_corrupt", "selection_acc", "num_teachers"} <= set(r) for r in rows)
    # the best client of each round has no teacher; everyone else has at least one
    for rnd in (1, 2):
        teachers = sorted(r["num_teachers"] for r in rows if r["round"] == rnd)
        assert teachers[0] == 0 or len(set(r["selection_acc"] for r in rows if r["round"] == rnd)) < 4
        assert teachers[-1] >= 1
    assert (result.run_dir / "plots" / "acc_corrupt.png").is_file()
