import math

import pytest
import torch

from fedsim.mllm.lorasculpt import (
    LoRASculptConfig,
    apply_masks,
    cmr_loss,
    cmr_weight,
    compute_masks,
    expected_product_density,
    lora_factors,
    topk_magnitude_mask,
)
from fedsim.mllm.tuning import build_trainer


def sculpt(tiny, **kw):
    cfg = LoRASculptConfig(**{"steps": 3, "mask_step": 2, "batch_size": 16, "lr": 1e-2, **kw})
    return build_trainer(cfg, tiny, seed=0)


def nonzeros(tr):
    return {n: int((p != 0).sum()) for n, p in lora_factors(tr.mllm.model).items()}


def test_mask_sparsity_after_step_T_and_final_remask(tiny, down_data):
    tr = sculpt(tiny)
    tr.fit(down_data)
    assert tr.masks is not None and tr.global_step == 3
    params = lora_factors(tr.mllm.model)
    assert set(tr.masks) == set(params) and any(".lora_A." in n for n in params) and any(".lora_B." in n
                                                                                          for n in params)
    for n, p in params.items():
        k = math.floor(0.1 * p.numel())
        assert int(tr.masks[n].sum()) == k
        assert int((p != 0).sum()) <= k  # final re-mask (our choice) leaves only kept entries
        assert (p[~tr.masks[n]] == 0).all()


def test_no_mask_before_T(tiny, down_data):
    tr = sculpt(tiny, steps=2, mask_step=5)
    tr.fit(down_data)
    assert tr.masks is None and tr.nonzero_fraction() > 0.5


def test_paper_code_keeps_one_unmasked_update_and_optimizer_state_unmasked(tiny, down_data):
    tr = sculpt(tiny, paper_code=True, mask_step=1, steps=3)
    tr.fit(down_data)
    # official behaviour: masked before each step only, so the last Adam step leaks outside the mask
    leaked = [n for n, p in lora_factors(tr.mllm.model).items() if (p[~tr.masks[n]] != 0).any()]
    assert leaked
    # optimiser moments are never masked
    opt = tr._opt
    name, p = next(iter(lora_factors(tr.mllm.model).items()))
    assert (opt.state[p]["exp_avg"][~tr.masks[name]] != 0).any()
    # ...and the next step starts by re-applying the mask
    tr.before_step(down_data)
    for n, p in lora_factors(tr.mllm.model).items():
        assert (p[~tr.masks[n]] == 0).all()


def test_mask_reapplied_before_every_step(tiny, down_data, monkeypatch):
    tr = sculpt(tiny, steps=4, mask_step=1)
    seen = []
    orig = tr.mllm.loss

    def spy(batch):
        if tr.masks is not None:
            seen.append(all((p[~tr.masks[n]] == 0).all() for n, p in lora_factors(tr.mllm.model).items()))
        return orig(batch)

    monkeypatch.setattr(tr.mllm, "loss", spy)
    tr.fit(down_data)
    assert seen == [True, True, True]  # steps 1, 2, 3 (mask computed before step 1's forward)


def test_topk_mask_is_by_own_magnitude():
    t = torch.tensor([[0.1, -5.0, 0.2], [3.0, 0.0, -0.3], [0.05, 0.01, 1.0], [2.0, -0.4, 0.6]])
    m = topk_magnitude_mask(t, 0.25)  # floor(0.25 * 12) = 3
    assert m.sum() == 3 and m[0, 1] and m[1, 0] and m[3, 0]


def test_cmr_weight_range_no_grad_and_monotone():
    w = torch.randn(16, 8, requires_grad=True)
    m = cmr_weight(w)
    assert not m.requires_grad
    assert (m >= 0).all() and (m < 1).all()
    flat_w, flat_m = w.detach().abs().flatten(), m.flatten()
    order = flat_w.argsort()
    assert (flat_m[order].diff() >= -1e-7).all()  # M grows with |W|
    assert torch.allclose(cmr_weight(3.0 * w.detach()), m)  # scale-invariant: W / ||W||_F


def test_cmr_zero_at_BA_zero_and_grows_with_W():
    a, b = torch.randn(2, 4), torch.zeros(6, 2)
    w = torch.randn(6, 4)
    assert cmr_loss([(cmr_weight(w), a, b)], 1e-3) == 0
    b = torch.zeros(6, 2)
    b[0, 0] = 1.0  # BA non-zero only in row 0
    small, big = w.clone(), w.clone()
    small[0] *= 0.1
    big[0] *= 10.0
    assert cmr_loss([(cmr_weight(big), a, b)], 1e-3) > cmr_loss([(cmr_weight(w), a, b)], 1e-3) > \
        cmr_loss([(cmr_weight(small), a, b)], 1e-3) > 0


def test_cmr_formula_matches_hand_computation():
    w = torch.tensor([[0.5, -0.1], [0.0, 2.0]])
    a, b = torch.tensor([[1.0, 2.0]]), torch.tensor([[1.0], [-1.0]])
    mp = w / torch.sqrt((w ** 2).sum())
    m = torch.tanh(torch.abs(1 / torch.log(mp.abs() + 1e-15)))
    expected = 1e-3 * torch.sqrt(((m * (b @ a)) ** 2).sum())
    assert torch.allclose(cmr_loss([(cmr_weight(w), a, b)], 1e-3), expected)


def test_cmr_only_on_qkv_and_enters_loss(tiny, down_data):
    tr = sculpt(tiny, use_mask=False, steps=2, schedule="constant")
    targets = {type(mod).__name__ for _, mod in tr._cmr}
    assert len(tr._cmr) == 3 * 2 and targets  # q, k, v in each of the 2 layers
    out = tr.fit(down_data)
    assert out["extra_loss"] > 0  # B became non-zero after the first step
    off = sculpt(tiny, use_cmr=False)
    assert off.extra_loss() is None


def test_expected_product_density_matches_monte_carlo():
    g = torch.Generator().manual_seed(0)
    p, q, r, s = 64, 48, 8, 0.3
    dens = []
    for _ in range(200):
        a = torch.rand(r, q, generator=g) < s
        b = torch.rand(p, r, generator=g) < s
        dens.append(((b.float() @ a.float()) > 0).float().mean().item())
    assert sum(dens) / len(dens) == pytest.approx(expected_product_density(s, s, r), abs=0.01)
    assert expected_product_density(0.1, 0.1, 32) == pytest.approx(0.275, abs=0.001)


def test_apply_masks_helper(tiny):
    tr = sculpt(tiny)
    with torch.no_grad():
        for p in lora_factors(tr.mllm.model).values():
            p.normal_()
    masks = compute_masks(tr.mllm.model, 0.1)
    apply_masks(tr.mllm.model, masks)
    for n, k in nonzeros(tr).items():
        assert k == int(masks[n].sum())
