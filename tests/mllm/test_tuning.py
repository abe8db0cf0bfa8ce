import pytest
import torch

from fedsim.errors import ConfigError
from fedsim.mllm.lorasculpt import LoRASculptConfig
from fedsim.mllm.tuning import (
    AdapterConfig,
    DoRATuningConfig,
    LastKConfig,
    LoRATuningConfig,
    PromptConfig,
    TopKGradConfig,
    TuningConfig,
    build_trainer,
)


def snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def changed(before, model):
    """Number of changed scalars per parameter name (new parameters count fully)."""
    out = {}
    for n, p in model.named_parameters():
        ref = before.get(n)
        out[n] = p.numel() if ref is None else int((p.detach() != ref).sum())
    return {n: c for n, c in out.items() if c}


def run(tiny, data, cfg):
    base = snapshot(tiny.model)
    tr = build_trainer(cfg, tiny, seed=0)
    after_prepare = snapshot(tr.mllm.model)
    tr.fit(data)
    return tr, base, changed(after_prepare, tr.mllm.model)


STEP = {"steps": 2, "batch_size": 16, "lr": 1e-2}


def llm_numel(model, pred):
    return sum(p.numel() for n, p in model.named_parameters() if pred(n))


def test_full_ft_trains_everything_but_vision(tiny, down_data):
    tr, _, ch = run(tiny, down_data, TuningConfig(name="full_ft", **STEP))
    assert tr.taxonomy == "full"
    assert tr.trainable_count() == llm_numel(tiny.model, lambda n: "vision_tower" not in n)
    assert not any("vision_tower" in n for n in ch)
    assert any("multi_modal_projector" in n for n in ch) and any("layers.0.self_attn" in n for n in ch)


def test_bias_norm_counts(tiny, down_data):
    tr, _, ch = run(tiny, down_data, TuningConfig(name="bias_norm", **STEP))
    text = tiny.base().config.text_config
    n_norm = (2 * text.num_hidden_layers + 1) * text.hidden_size  # 2 RMSNorms per layer + final
    n_proj_bias = sum(p.numel() for n, p in tiny.model.named_parameters()
                      if "multi_modal_projector" in n and n.endswith("bias"))
    assert tr.trainable_count() == n_norm + n_proj_bias
    assert all("norm" in n or n.endswith("bias") for n in ch) and ch


def test_last_k_trains_only_last_layers(tiny, down_data):
    tr, _, ch = run(tiny, down_data, LastKConfig(k=1, **STEP))
    expect = llm_numel(tiny.model, lambda n: "language_model.layers.1." in n or "language_model.norm" in n
                       or n.endswith("lm_head.weight"))
    assert tr.trainable_count() == expect
    assert all("layers.1." in n or "norm" in n or "lm_head" in n for n in ch)
    with pytest.raises(ConfigError, match="trainer.k"):
        build_trainer(LastKConfig(k=5), tiny, 0)


def test_topk_grad_updates_only_selected_entries(tiny, down_data):
    tr, _, ch = run(tiny, down_data, TopKGradConfig(ratio=0.05, score_batches=2, **STEP))
    n_llm = llm_numel(tiny.model, lambda n: "language_model" in n or n.endswith("lm_head.weight"))
    assert abs(tr.trainable_count() - int(0.05 * n_llm)) <= 2  # ties at the threshold only
    assert sum(ch.values()) <= tr.trainable_count()
    assert sum(ch.values()) > 0.5 * tr.trainable_count()
    assert not any("vision" in n or "projector" in n for n in ch)


def test_adapter_trains_only_adapters(tiny, down_data):
    tr, base, ch = run(tiny, down_data, AdapterConfig(width=4, **STEP))
    dim = tiny.base().config.text_config.hidden_size
    layers = tiny.base().config.text_config.num_hidden_layers
    assert tr.trainable_count() == layers * (2 * dim * 4 + 4 + dim)
    assert ch and all(".adapter." in n for n in ch)
    # the zero-initialised up-projection makes the adapted model start as the pretrained one
    assert all(torch.equal(p, base[n]) for n, p in snapshot(tr.mllm.model).items() if n in base)


def test_prompt_tuning_trains_only_prompts(tiny, down_data):
    tr, _, ch = run(tiny, down_data, PromptConfig(num_virtual_tokens=3, **STEP))
    assert tr.trainable_count() == 3 * tiny.base().config.text_config.hidden_size
    assert list(ch) == ["prompt_encoder.default.embedding.weight"]


@pytest.mark.parametrize("cfg", [LoRATuningConfig(r=2, **STEP), DoRATuningConfig(r=2, **STEP),
                                 LoRASculptConfig(r=2, mask_step=1, **STEP)])
def test_lora_family_trains_only_adapters(tiny, down_data, cfg):
    tr, _, ch = run(tiny, down_data, cfg)
    text = tiny.base().config.text_config
    d, f, n_layers = text.hidden_size, text.intermediate_size, text.num_hidden_layers
    lora = n_layers * (4 * 2 * (d + d) + 3 * 2 * (d + f))  # r * (in + out) per layer, r = 2
    dora = n_layers * (4 * d + 2 * f + d) if cfg.use_dora else 0  # magnitude vectors (out features)
    assert tr.trainable_count() == lora + dora
    assert ch and all("lora_" in n for n in ch)
    assert tr.taxonomy.startswith("reparameterisation/")


def test_projector_flag_adds_projector(tiny, down_data):
    tr, _, ch = run(tiny, down_data, LoRATuningConfig(r=2, train_projector=True, projector_lr=1e-3, **STEP))
    assert any("multi_modal_projector" in n for n in ch)
    assert len(tr.optimizer().param_groups) == 2


def test_unknown_trainer_and_bad_values():
    with pytest.raises(ConfigError, match="trainer.schedule"):
        TuningConfig(schedule="linear")
    with pytest.raises(ConfigError, match="keep_ratio"):
        LoRASculptConfig(keep_ratio=0.0)


def test_unknown_name(tiny):
    with pytest.raises(ConfigError, match="trainer.name"):
        build_trainer(TuningConfig(name="no_such_method"), tiny, 0)
