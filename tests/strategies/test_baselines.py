"""The heterogeneous-FL baselines of RAHFL's tables, run in-process on tiny federations (no Ray).

:class:`fedsim.testing.InProcessContext` runs the client actions in this process on the clients' real
runtimes and logs every request and reply, so tests can check what the server sent. Every baseline runs
one round and must change the client models; method-specific checks follow.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import fedsim.actions  # noqa: F401  (registers the client actions)
import fedsim.actions_extra  # noqa: F401
from fedsim.client import open_runtime
from fedsim.config import load_config
from fedsim.errors import ConfigError
from fedsim.registry import STRATEGIES
from fedsim.testing import InProcessContext
from fedsim.trainers.sce import reverse_cross_entropy, sce_loss
from strategies.aughfl import batch_weights, mixture_targets
from strategies.fedproto import aggregate_prototypes
from strategies.kt_pfl import coefficient_objective, project_simplex, update_coefficients
from strategies.rhfl import confidence_weights, weighted_targets

TINY = Path(__file__).parent.parent / "configs" / "tiny.yaml"
K = 3
TRAINER = {"rhfl": "sce", "aughfl": "augmix_jsd"}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def make(name, tmp_path, cache, *extra):
    torch.manual_seed(0)
    overrides = [f"num_clients={K}", "local_epochs=1", "data.val_size=20", "data.test_size=40",
                 "data.partition.samples_per_client=64", "data.public.source=synthetic",
                 "data.public.size=64", "data.public.batch_size=32", f"cache_dir={cache}",
                 f"strategy.name={name}", f"trainer.name={TRAINER.get(name, 'supervised')}", *extra]
    cfg = load_config(TINY, overrides)
    ctx = InProcessContext.open(cfg, tmp_path / "run")
    strategy = STRATEGIES.get(name)(cfg.strategy_config(), ctx)
    strategy.setup()
    return strategy, ctx


def params(ctx, r, buffers=False):
    out = {}
    for pid in range(K):
        model = open_runtime(ctx.cfg, pid, str(ctx.run_dir), r).model
        items = model.state_dict().items() if buffers else model.named_parameters()
        out[pid] = {k: v.detach().clone() for k, v in items}
    return out


def changed(before, after):
    return {pid: any(not torch.equal(before[pid][k], after[pid][k]) for k in before[pid]) for pid in before}


BASELINES = ["fedmd", "feddf", "fccl", "rhfl", "fedproto", "kt_pfl", "aughfl"]


@pytest.mark.parametrize("name", BASELINES)
def test_one_round_changes_every_client(name, tmp_path, cache):
    strategy, ctx = make(name, tmp_path, cache)
    before = params(ctx, 0)
    metrics = strategy.round(1)
    assert all(changed(before, params(ctx, 1)).values())
    assert math.isfinite(metrics["train_loss"])
    per_client = strategy.evaluate(1)
    assert sorted(per_client) == list(range(K))
    assert all(0 <= m["acc_corrupt"] <= 1 for m in per_client.values())


def _query_logits(ctx):
    return {pid: rep.tensors()["logits"] for _, pid, _, _, rep in ctx.sent("query.public")}


def test_fedmd_digests_the_mean_logits_with_l1(tmp_path, cache):
    strategy, ctx = make("fedmd", tmp_path, cache, "strategy.digest_epochs=2")
    strategy.round(1)
    logits = _query_logits(ctx)
    mean = torch.stack([logits[p] for p in range(K)]).mean(0)
    for _, _, conf, arrays, _ in ctx.sent("train.distill"):
        assert conf["loss"] == "l1" and conf["epochs"] == 2
        torch.testing.assert_close(arrays["target"].to_torch_state_dict()["target"], mean)
    assert [a for a, *_ in ctx.log] == ["query.public"] * K + ["train.distill"] * K + ["train"] * K


def test_feddf_trains_first_then_distils_to_the_softened_ensemble(tmp_path, cache):
    strategy, ctx = make("feddf", tmp_path, cache, "strategy.temperature=2.0")
    strategy.round(1)
    assert [a for a, *_ in ctx.log][:K] == ["train"] * K
    logits = _query_logits(ctx)
    target = (torch.stack([logits[p] for p in range(K)]).mean(0) / 2.0).softmax(1)
    for _, _, conf, arrays, _ in ctx.sent("train.distill"):
        assert conf["loss"] == "kl"
        torch.testing.assert_close(arrays["target"].to_torch_state_dict()["target"], target)


@pytest.mark.parametrize("target", ["all", "others"])
def test_fccl_targets_and_fresh_optimiser(target, tmp_path, cache):
    strategy, ctx = make("fccl", tmp_path, cache, f"strategy.target={target}")
    strategy.round(1)
    logits = _query_logits(ctx)
    for _, pid, conf, arrays, _ in ctx.sent("train.distill"):
        peers = [logits[j] for j in range(K) if target == "all" or j != pid]
        sent = arrays["target"].to_torch_state_dict()["target"]
        torch.testing.assert_close(sent, torch.stack(peers).mean(0))
        assert conf["loss"] == "fccl" and conf["fresh-optimizer"] is True
    assert all(conf["regularizer"] == "fccl_nfd" for _, _, conf, _, _ in ctx.sent("train"))


def test_fccl_non_forgetting_term_vanishes_at_the_teachers(tmp_path, cache):
    _, ctx = make("fccl", tmp_path, cache)
    rt = open_runtime(ctx.cfg, 0, str(ctx.run_dir), 0)  # round-0 model = both teachers
    reg = fedsim.actions_extra.fccl_nfd({"nfd-temperature": 2.0}, {}, rt)
    x, y = rt.data.train.x[:16], rt.data.train.y[:16]
    rt.model.eval()
    xf = fedsim.trainers.base.normalise(x, rt.data.train)
    assert float(reg(rt.model, xf, y, rt.model(xf), None).detach()) == pytest.approx(0.0, abs=1e-6)
    with torch.no_grad():
        w = rt.model.head.weight
        w.add_(torch.randn(w.shape, generator=torch.Generator().manual_seed(0)))
    assert float(reg(rt.model, xf, y, rt.model(xf), None).detach()) > 1e-3
    rt.token = None  # the in-memory model no longer equals the saved state


def test_rhfl_weights_sce_and_state(tmp_path, cache):
    strategy, ctx = make("rhfl", tmp_path, cache)
    for r in (1, 2):  # weights need the losses of two local phases
        strategy.round(r)
        assert strategy.weights == {p: 0.5 for p in range(K)}  # 1/(K-1) before then
    strategy.round(3)
    w = strategy.weights
    assert sum(w.values()) == pytest.approx(1.0) and len(set(w.values())) > 1
    targets = [e for e in ctx.sent("train.distill") if e[2]["server-round"] == 3]
    probs = {pid: rep.tensors()["probs"] for _, pid, conf, _, rep in ctx.sent("query.public")
             if conf["server-round"] == 3}
    for _, pid, conf, arrays, _ in targets:
        want = sum(w[j] * probs[j] for j in range(K) if j != pid)
        torch.testing.assert_close(arrays["target"].to_torch_state_dict()["target"], want)
        assert conf["fresh-optimizer"] is True
    fresh, _ = make("rhfl", tmp_path / "b", cache)
    fresh.load_state_dict(strategy.state_dict())
    assert fresh.prev_loss == strategy.prev_loss and fresh.cur_loss == strategy.cur_loss


def test_rhfl_confidence_weights_by_hand():
    # q = (2-1)/1 = 1, (2-1.5)/1.5 = 1/3, (1-1)/1 = 0 -> a = 0.5 + 0.5 * q / (4/3)
    w = confidence_weights({0: 2.0, 1: 2.0, 2: 1.0}, {0: 1.0, 1: 1.5, 2: 1.0}, [0, 1, 2], beta=0.5)
    a = [0.5 + 0.375, 0.5 + 0.125, 0.5]
    z = sum(math.exp(v) for v in a)
    assert [w[p] for p in range(3)] == pytest.approx([math.exp(v) / z for v in a])
    assert w[0] > w[1] > w[2]  # the client whose loss fell most is trusted most
    assert confidence_weights({}, {0: 1.0}, [0, 1]) == {0: 1.0, 1: 1.0}
    flat = confidence_weights({0: 1.0, 1: 1.0}, {0: 1.0, 1: 1.0}, [0, 1])  # sum q = 0: no division
    assert flat[0] == pytest.approx(0.5)
    t = weighted_targets({0: torch.tensor([[1.0, 0.0]]), 1: torch.tensor([[0.0, 1.0]])}, {0: 0.3, 1: 0.7})
    torch.testing.assert_close(t[0], torch.tensor([[0.0, 0.7]]))
    torch.testing.assert_close(t[1], torch.tensor([[0.3, 0.0]]))


def test_sce_by_hand():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    y = torch.tensor([0, 2])
    p = logits.softmax(1)
    a = -math.log(1e-4)
    rce = (a * (1 - p[0, 0]) + a * (1 - p[1, 2])) / 2
    assert float(reverse_cross_entropy(logits, y)) == pytest.approx(float(rce), rel=1e-5)
    ce = torch.nn.functional.cross_entropy(logits, y)
    assert float(sce_loss(logits, y, 0.1, 1.0)) == pytest.approx(float(0.1 * ce + rce), rel=1e-5)


def test_fedproto_global_prototypes_are_count_weighted(tmp_path, cache):
    strategy, ctx = make("fedproto", tmp_path, cache, "strategy.proto_lambda=0.5")
    strategy.round(1)
    assert all("regularizer" not in conf for _, _, conf, _, _ in ctx.sent("train"))  # no prototypes yet
    local = [rep.tensors("prototypes") for *_, rep in ctx.sent("query.prototypes")]
    counts = torch.stack([t["counts"] for t in local])
    protos = torch.stack([t["prototypes"] for t in local])
    want = (protos * counts.unsqueeze(-1)).sum(0) / counts.sum(0)[:, None]
    present = counts.sum(0) > 0
    torch.testing.assert_close(strategy.prototypes[present], want[present])
    strategy.round(2)
    second = [e for e in ctx.sent("train") if e[2]["server-round"] == 2]
    assert all(c["regularizer"] == "fedproto" and c["proto-lambda"] == 0.5 for _, _, c, _, _ in second)
    sent = second[0][3]["prototypes"].to_torch_state_dict()
    assert sent["prototypes"].shape == strategy.prototypes.shape


def test_aggregate_prototypes_by_hand():
    a = (torch.tensor([[1.0, 0.0], [5.0, 5.0], [0.0, 0.0]]), torch.tensor([3.0, 1.0, 0.0]))
    b = (torch.tensor([[0.0, 4.0], [9.0, 9.0], [0.0, 0.0]]), torch.tensor([1.0, 0.0, 0.0]))
    protos, present = aggregate_prototypes([a, b])
    torch.testing.assert_close(protos[0], torch.tensor([0.75, 1.0]))  # (3*[1,0] + 1*[0,4]) / 4
    torch.testing.assert_close(protos[1], torch.tensor([5.0, 5.0]))  # a client without the class has no say
    assert present.tolist() == [1.0, 1.0, 0.0]


def test_kt_pfl_rows_stay_on_the_simplex_and_resume(tmp_path, cache):
    strategy, ctx = make("kt_pfl", tmp_path, cache, "strategy.coef_lr=0.5")
    strategy.round(1)
    c = strategy.coef
    assert (c >= 0).all() and torch.allclose(c.sum(1), torch.ones(K))
    assert not torch.allclose(c, torch.full((K, K), 1.0 / K))
    probs = {pid: rep.tensors()["probs"] for _, pid, _, _, rep in ctx.sent("query.public")}
    for _, pid, _, arrays, _ in ctx.sent("train.distill"):
        want = sum(c[pid, j] * probs[j] for j in range(K))
        torch.testing.assert_close(arrays["target"].to_torch_state_dict()["target"], want)
    fresh, _ = make("kt_pfl", tmp_path / "b", cache)
    fresh.load_state_dict(strategy.state_dict())
    fresh.setup()
    assert torch.equal(fresh.coef, c)


def test_kt_pfl_projection_and_descent():
    rows = torch.tensor([[0.5, 0.5, 0.5], [2.0, 0.0, -1.0], [0.2, 0.3, 0.5]])
    proj = project_simplex(rows)
    torch.testing.assert_close(proj, torch.tensor([[1 / 3, 1 / 3, 1 / 3], [1.0, 0.0, 0.0], [0.2, 0.3, 0.5]]))
    g = torch.Generator().manual_seed(0)
    soft = torch.randn(3, 20, 4, generator=g).mul(2).softmax(-1)
    c0 = torch.full((3, 3), 1 / 3)
    c1 = update_coefficients(c0, soft, steps=10, lr=0.1, rho=0.1)
    assert float(coefficient_objective(c1, soft, 0.1)) < float(coefficient_objective(c0, soft, 0.1))
    assert torch.allclose(c1.sum(1), torch.ones(3)) and (c1 >= 0).all()
    assert (c1.diagonal() > 1 / 3).all()  # each client's own predictions match it best


def test_aughfl_weights_favour_the_stable_client():
    g = torch.Generator().manual_seed(1)
    clean = {p: torch.randn(8, 5, generator=g).softmax(1) for p in range(3)}
    noise = {0: 0.0, 1: 0.5, 2: 2.0}  # client 0 is invariant to augmentation, client 2 the least stable
    aug = {v: {p: (clean[p].log() + noise[p] * torch.randn(8, 5, generator=g)).softmax(1) for p in range(3)}
           for v in ("augmix", "augmix2")}
    aug[0] = None
    views = {"plain": clean, **{v: aug[v] for v in ("augmix", "augmix2")}}
    views["augmix"][0] = clean[0] * 0.999 + 0.001 / 5
    views["augmix2"][0] = clean[0] * 0.999 + 0.001 / 5
    (w,) = batch_weights(views, [0, 1, 2], batch_size=8)
    assert float(w.sum()) == pytest.approx(1.0)
    assert w[0] > w[1] > w[2]
    targets = mixture_targets(clean, [0, 1, 2], [w], batch_size=8)
    torch.testing.assert_close(targets[0], w[1] * clean[1] + w[2] * clean[2])


def test_aughfl_collaboration_and_paper_code(tmp_path, cache):
    strategy, ctx = make("aughfl", tmp_path, cache, "local_epochs=0")
    before = params(ctx, 0)
    strategy.round(1)
    assert all(changed(before, params(ctx, 1)).values())  # the collaborative step alone moved every model
    assert sorted(strategy.weights) == list(range(K))
    assert sum(strategy.weights.values()) == pytest.approx(1.0)
    assert {conf["view"] for _, _, conf, _, _ in ctx.sent("query.public")} == {"plain", "augmix", "augmix2"}
    bugged, bctx = make("aughfl", tmp_path / "paper", cache, "local_epochs=0", "strategy.paper_code=true")
    before = params(bctx, 0)
    bugged.round(1)
    assert not any(changed(before, params(bctx, 1)).values())  # the official clamp: zero gradient
    assert not bctx.sent("train.distill") and bugged.weights


def test_public_strategies_refuse_a_federation_without_public_data(tmp_path, cache):
    with pytest.raises(ConfigError, match="data.public.source"):
        make("fedmd", tmp_path, cache, "data.public.source=none")
