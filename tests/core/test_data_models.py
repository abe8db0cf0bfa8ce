"""Data sources, partitioners and the model zoo."""

import numpy as np
import pytest
import torch

from fedsim.config import load_config
from fedsim.data.base import to_float
from fedsim.data.partition import partition
from fedsim.data.sources import digits, glyphs_public, imagefolder, load_source, synthetic, synthetic_public
from fedsim.errors import ConfigError, DataPathError
from fedsim.federation import _build
from fedsim.models import build_model


def test_digits_are_real_and_upsampled():
    tr, te = digits(image_size=32, seed=0)
    assert tr.x.shape[1:] == (3, 32, 32) and tr.x.dtype == torch.uint8
    assert len(tr) + len(te) == 1797 and tr.num_classes == 10
    assert set(tr.y.unique().tolist()) == set(range(10))


def test_synthetic_is_seeded_and_balanced():
    a, _ = synthetic(image_size=16, seed=1, num_classes=12, num_train=120, num_test=24)
    b, _ = synthetic(image_size=16, seed=1, num_classes=12, num_train=120, num_test=24)
    c, _ = synthetic(image_size=16, seed=2, num_classes=12, num_train=120, num_test=24)
    assert torch.equal(a.x, b.x) and not torch.equal(a.x, c.x)
    assert torch.bincount(a.y).tolist() == [10] * 12
    pub = synthetic_public(50, 16, seed=0)
    assert (pub.y == -1).all() and pub.x.shape == (50, 3, 16, 16)
    with pytest.raises(ConfigError, match="data.num_classes"):
        synthetic(num_classes=40)


def test_glyphs_public_is_seeded_near_domain_and_unlabelled():
    """Glyphs look like the digit scans (grey strokes on black, same scale) but are typeset characters."""
    a, b, c = glyphs_public(40, 16, seed=0), glyphs_public(40, 16, seed=0), glyphs_public(40, 16, seed=1)
    assert torch.equal(a.x, b.x) and not torch.equal(a.x, c.x)
    assert a.x.shape == (40, 3, 16, 16) and (a.y == -1).all()
    assert torch.equal(a.x[:, 0], a.x[:, 1])  # grey, like the replicated digit scans
    dig, _ = digits(image_size=16, seed=0)
    border = a.x[:, 0, 0, :].float().mean()
    assert border < 0.5 * a.x.float().mean()  # dark background, ink in the middle
    assert abs(a.x.float().mean() - dig.x.float().mean()) < 25  # comparable ink coverage
    assert (a.mean, a.std) == (dig.mean, dig.std)


def test_synthetic_classes_are_learnable():
    """A small CNN trained for a few epochs beats chance by far: the shapes carry the label."""
    from fedsim.data.base import ClientData
    from fedsim.trainers.supervised import SupervisedConfig, SupervisedTrainer

    torch.manual_seed(0)
    tr, te = synthetic(image_size=16, seed=0, num_classes=10, num_train=800, num_test=200)
    model = build_model("cnn", 10, width=0.5)
    SupervisedTrainer(SupervisedConfig(lr=3e-3, batch_size=32), model, seed=0).fit(ClientData(tr), 8, 0)
    model.eval()
    with torch.no_grad():
        acc = (model(to_float(te.x, te.mean, te.std)).argmax(1) == te.y).float().mean()
    assert acc > 0.2  # chance is 0.1 (measured: 0.27)


@pytest.mark.parametrize("source", ["cifar10", "cifar100", "imagefolder"])
def test_local_sources_need_an_existing_directory(source, tmp_path):
    with pytest.raises(DataPathError, match="data.root"):
        load_source(source, root=str(tmp_path / "missing"), image_size=32, seed=0)
    with pytest.raises(DataPathError, match="data.root"):
        load_source(source, root=str(tmp_path), image_size=32, seed=0) if source != "imagefolder" else (
            imagefolder(root=str(tmp_path)))


def test_imagefolder_reads_a_local_tree(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("test", 2)):
        for cls in ("cat", "dog"):
            d = tmp_path / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(d / f"{i}.png")
    tr, te = imagefolder(root=str(tmp_path), image_size=16)
    assert tr.x.shape == (8, 3, 16, 16) and te.x.shape == (4, 3, 16, 16) and tr.num_classes == 2


def test_partitioners():
    y = torch.arange(1000) % 10
    iid = partition("iid", y, 4, seed=0)
    assert sorted(torch.cat(iid).tolist()) == list(range(1000))  # disjoint cover
    dirichlet = partition("dirichlet", y, 4, seed=0, alpha=0.1)
    assert sorted(torch.cat(dirichlet).tolist()) == list(range(1000))
    skew = [torch.bincount(y[p], minlength=10).float() for p in dirichlet]
    assert max((s / s.sum()).max() for s in skew) > 0.3  # label skew at small alpha
    ov = partition("overlap", y, 3, seed=0, samples_per_client=600)
    assert all(len(p) == 600 and len(set(p.tolist())) == 600 for p in ov)
    assert len(set(ov[0].tolist()) & set(ov[1].tolist())) > 0  # draws overlap
    assert torch.equal(partition("overlap", y, 3, seed=0, samples_per_client=600)[2], ov[2])
    with pytest.raises(ConfigError, match="samples_per_client"):
        partition("overlap", y, 3, seed=0, samples_per_client=5000)


def test_federation_reserves_val_and_corrupts_per_image():
    cfg = load_config(None, ["num_clients=2", "data.val_size=100", "data.corruption.rate=0.5",
                             "data.partition.samples_per_client=300", "data.public.size=64",
                             "data.corruption.types=[gaussian_noise,contrast]",
                             "data.test_corruption.types=[gaussian_noise,contrast]", "data.image_size=16"])
    fed = _build(cfg)
    assert len(fed.val) == 100 and len(fed.train) == 1438 - 100
    assert int(fed.train.meta["corrupted"].sum()) == int(0.5 * len(fed.train))
    assert fed.test_corrupt.meta["corrupted"].all() and not torch.equal(fed.test_corrupt.x, fed.test_clean.x)
    assert fed.public is not None and (fed.public.y == -1).all()
    assert len(fed.client(1).train) == 300


@pytest.mark.parametrize("arch", ["resnet10", "resnet12", "resnet18", "shufflenetv2", "mobilenetv2", "cnn"])
@pytest.mark.parametrize("size", [16, 32])
def test_model_zoo_shapes(arch, size):
    m = build_model(arch, num_classes=7, width=0.25)
    x = torch.randn(2, 3, size, size)
    logits, feats = m.forward_all(x)
    assert logits.shape == (2, 7) and feats.shape == (2, m.feature_dim)
    assert m.embed_from_features(feats).shape == (2, 128)


def test_cifar10_loads_a_local_copy_through_torchvision(tmp_path, monkeypatch):
    """The real torchvision reader on a tiny CIFAR-10 written in its on-disk format (checksums skipped)."""
    import pickle

    import torchvision

    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    rng = np.random.default_rng(0)
    for name, n in [*((f"data_batch_{i}", 4) for i in range(1, 6)), ("test_batch", 3)]:
        batch = {"data": rng.integers(0, 255, (n, 3072), dtype=np.uint8), "labels": list(range(n))}
        (base / name).write_bytes(pickle.dumps(batch))
    (base / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{i}" for i in range(10)]}))
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *a, **k: True)
    tr, te = load_source("cifar10", root=str(tmp_path), image_size=16, seed=0)
    assert tr.x.shape == (20, 3, 16, 16) and te.x.shape == (3, 3, 16, 16) and tr.num_classes == 10
    assert tr.y[:4].tolist() == [0, 1, 2, 3]


def test_cli_list_names_every_kind():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "fedsim.cli", "list"], capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "COLUMNS": "200"})
    assert out.returncode == 0, out.stderr
    for name in ("digits", "synthetic", "dirichlet", "resnet10", "mobilenetv2", "dcl", "fedavg", "rahfl"):
        assert name in out.stdout, name
