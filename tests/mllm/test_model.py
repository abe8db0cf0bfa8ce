import pytest
import torch

from fedsim.errors import DataPathError
from fedsim.mllm import pretrain as pretrain_mod
from fedsim.mllm.lorasculpt import LoRASculptConfig, lora_factors
from fedsim.mllm.model import MLLMConfig, answer_correct, build_mllm, save_mllm
from fedsim.mllm.pretrain import PretrainConfig, pretrained_mllm
from fedsim.mllm.tuning import build_trainer

from .conftest import TINY


def test_local_checkpoint_roundtrip_and_tuning_step(tiny, down_data, tmp_path):
    save_mllm(tiny, tmp_path / "ckpt")
    loaded = build_mllm(MLLMConfig(path=str(tmp_path / "ckpt")))
    assert type(loaded.base()) is type(tiny.base())
    b_ref = tiny.batch(tiny.encode(down_data), torch.arange(8))
    b_new = loaded.batch(loaded.encode(down_data), torch.arange(8))
    assert torch.equal(b_ref["input_ids"], b_new["input_ids"])  # same tokenizer ids
    with torch.no_grad():
        assert torch.allclose(tiny.logits(b_ref), loaded.logits(b_new), atol=1e-5)
    tr = build_trainer(LoRASculptConfig(steps=2, mask_step=1, batch_size=8, r=2), loaded, seed=0)
    out = tr.fit(down_data)
    assert out["train_loss"] > 0 and tr.masks is not None
    assert all((p[~tr.masks[n]] == 0).all() for n, p in lora_factors(tr.mllm.model).items())


def test_missing_checkpoint_names_the_path(tmp_path):
    with pytest.raises(DataPathError, match="model.path"):
        build_mllm(MLLMConfig(path=str(tmp_path / "nope")))


def test_prompt_layout_and_labels(tiny, down_data):
    enc = tiny.encode(down_data)
    k = tiny.num_image_tokens
    assert k == (32 // TINY.patch_size) ** 2
    row = enc["input_ids"][0]
    assert row[0] == tiny.tokenizer.bos_token_id and (row[1:1 + k] == tiny.image_token_id).all()
    answer = [t for t in enc["labels"][0].tolist() if t != -100]
    expect = tiny.tokenizer(down_data.answers[0], add_special_tokens=False)["input_ids"]
    assert answer == expect + [tiny.tokenizer.eos_token_id]


def test_answer_correct_is_exact_match():
    labels = torch.tensor([[-100, -100, 5, 6], [-100, -100, 5, 6]])
    logits = torch.zeros(2, 4, 8)
    logits[0, 1, 5] = logits[0, 2, 6] = 1.0  # both answer tokens right
    logits[1, 1, 5] = logits[1, 2, 7] = 1.0  # second wrong
    assert answer_correct(logits, labels).tolist() == [True, False]


def test_pretrain_is_cached_by_config_hash(world, tmp_path, monkeypatch):
    cfg = PretrainConfig(steps=2, n_train=32, batch_size=8)
    first = pretrained_mllm(TINY, world, cfg, tmp_path)
    dirs = list(tmp_path.glob("mllm-pretrain-*"))
    assert len(dirs) == 1 and not list(tmp_path.glob(".tmp-*"))

    def boom(*a, **k):
        raise AssertionError("pretraining ran again despite the cache")

    monkeypatch.setattr(pretrain_mod, "pretrain", boom)
    again = pretrained_mllm(TINY, world, cfg, tmp_path)
    for (n, p), (_, q) in zip(first.model.named_parameters(), again.model.named_parameters()):
        assert torch.equal(p, q), n
    with pytest.raises(AssertionError, match="again"):  # a different config is a different cache entry
        pretrained_mllm(TINY, world, PretrainConfig(steps=3, n_train=32, batch_size=8), tmp_path)
