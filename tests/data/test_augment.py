"""Seeded batched augmentations: equal to torchvision's ops image by image, and reproducible."""

from __future__ import annotations

import math

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from fedsim.data import augment as A
from fedsim.data.base import ImageSet
from fedsim.trainers.base import seeded_generator

BILINEAR = TF.InterpolationMode.BILINEAR


def _images(n: int = 6, size: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)


def _g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_op_set_is_the_reduced_nine_without_colour_ops():
    assert set(A.AUGMIX_OPS) == {"autocontrast", "equalize", "posterize", "rotate", "solarize",
                                 "shear_x", "shear_y", "translate_x", "translate_y"}
    assert tuple(A.AUGMIX_FNS) == A.AUGMIX_OPS
    assert not {"color", "contrast", "brightness", "sharpness"} & set(A.AUGMIX_OPS)


def test_geometric_ops_equal_torchvision_per_image():
    x = _images()
    deg = torch.tensor([5.0, -8.0, 3.0, 0.0, 30.0, -1.0])
    ref = torch.stack([TF.rotate(x[i], float(deg[i]), interpolation=BILINEAR) for i in range(6)])
    assert torch.equal(A.warp(x, A.rotation_matrix(deg)), ref)
    s = torch.tensor([0.05, -0.09, 0.03, 0.0, 0.3, -0.3])
    for axis in (0, 1):
        shear = [[math.degrees(math.atan(float(v))), 0.0][:: 1 if axis == 0 else -1] for v in s]
        ref = torch.stack([TF.affine(x[i], angle=0.0, translate=[0, 0], scale=1.0, shear=shear[i],
                                     interpolation=BILINEAR, center=[0, 0]) for i in range(6)])
        got = A.warp(x, A.shear_matrix(s, axis, (16, 16)))
        assert (got.int() - ref.int()).abs().max() <= 1 and (got != ref).float().mean() < 0.01
    t = torch.tensor([1.0, -3.0, 2.0, 0.0, 5.0, -1.0])
    ref = torch.stack([TF.affine(x[i], angle=0.0, translate=[int(t[i]), -int(t[i])], scale=1.0,
                                 shear=[0.0, 0.0], interpolation=BILINEAR) for i in range(6)])
    assert torch.equal(A.warp(x, A.translation_matrix(t, -t)), ref)


def test_pixel_ops_equal_torchvision_per_image():
    x = _images()
    level = torch.tensor([0.1, 1.0, 2.0, 2.99, 2.5, 0.5])
    one = torch.ones(6)
    post = torch.stack([TF.posterize(x[i], 4 - int(float(level[i]) * 4 / 10)) for i in range(6)])
    sol = torch.stack([TF.solarize(x[i], 256 - int(float(level[i]) * 256 / 10)) for i in range(6)])
    assert torch.equal(A.AUGMIX_FNS["posterize"](x, level, one), post)
    assert torch.equal(A.AUGMIX_FNS["solarize"](x, level, one), sol)
    assert torch.equal(A.AUGMIX_FNS["equalize"](x, level, one), torch.stack([TF.equalize(i) for i in x]))


def test_weak_view_pieces_equal_torchvision_per_image():
    x = _images().float() / 255
    top, left = torch.tensor([0.0, 3, 5, 10, 0, 1]), torch.tensor([0.0, 2, 7, 1, 4, 0])
    h, w = torch.tensor([16.0, 10, 5, 6, 12, 15]), torch.tensor([16.0, 12, 8, 5, 12, 9])
    flip = torch.tensor([0, 1, 0, 1, 0, 1]).bool()
    ref = []
    for i in range(6):
        r = TF.resized_crop(x[i], int(top[i]), int(left[i]), int(h[i]), int(w[i]), [16, 16], antialias=True)
        ref.append(TF.hflip(r) if flip[i] else r)
    assert torch.allclose(A.resized_crop(x, top, left, h, w, flip), torch.stack(ref), atol=1e-5)
    hue = torch.tensor([-0.1, 0.05, 0.0, 0.1, -0.05, 0.02])
    ref = torch.stack([TF.adjust_hue(x[i], float(hue[i])) for i in range(6)])
    assert torch.allclose(A._shift_hue(x, hue), ref, atol=1e-5)
    sigma = torch.tensor([0.1, 0.5, 1.0, 2.0, 0.3, 0.7])
    ref = torch.stack([TF.gaussian_blur(x[i], [3, 3], [float(sigma[i])] * 2) for i in range(6)])
    assert torch.allclose(A.gaussian_blur(x, sigma, 3), ref, atol=1e-5)
    f = torch.tensor([0.6, 1.4, 1.0, 0.8, 1.2, 0.7])
    for fn, ref_fn in zip(A._JITTER[:3], (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation)):
        assert torch.allclose(fn(x, f), torch.stack([ref_fn(x[i], float(f[i])) for i in range(6)]), atol=1e-5)


def test_augmix_lies_between_input_and_mixture():
    x = _images(8)
    mix, m = A.augmix_parts(x, _g(3))
    assert ((m >= 0) & (m <= 1)).all() and mix.shape == x.shape
    out = A.augmix(x, _g(3))
    lo, hi = torch.minimum(x.float(), mix), torch.maximum(x.float(), mix)
    assert ((out >= lo - 1e-3) & (out <= hi + 1e-3)).all()
    mv = m.view(-1, 1, 1, 1)
    assert torch.allclose(out, (1 - mv) * x.float() + mv * mix, atol=1e-4)
    assert not torch.equal(out, x.float())  # something was applied
    # width 1, depth 1: the mixture is one uint8 op with weight 1 (Dirichlet clamps it to 1 - eps)
    one, _ = A.augmix_parts(x, _g(5), width=1, depth=1)
    assert torch.allclose(one, one.round(), atol=1e-3) and not torch.equal(one.round(), x.float())


def test_same_seed_same_views_different_seed_different():
    x = _images(8)
    for fn in (A.augmix, A.base_view, A.weak_view, A.public_view):
        a, b, c = fn(x, _g(1)), fn(x, _g(1)), fn(x, _g(2))
        assert torch.equal(a, b), fn.__name__
        assert not torch.equal(a, c), fn.__name__
        assert a.shape == x.shape and float(a.min()) >= 0 and float(a.max()) <= 255


def test_base_view_is_a_crop_of_the_reflect_padded_image():
    x = _images(4)
    out = A.base_view(x, _g(0))
    padded = torch.nn.functional.pad(x.float(), (4, 4, 4, 4), mode="reflect").to(torch.uint8)
    for i in range(4):
        crops = [padded[i, :, dy : dy + 16, dx : dx + 16] for dy in range(9) for dx in range(9)]
        found = any(torch.equal(out[i], c) or torch.equal(out[i], c.flip(-1)) for c in crops)
        assert found


def test_hflip_switch_keeps_the_crops_and_drops_only_the_mirror():
    """``hflip=False`` gives the same crops from the same draws, never mirrored; the flag rides on the set."""
    x = _images(64)
    with_flip, without = A.base_view(x, _g(3)), A.base_view(x, _g(3), hflip=False)
    mirrored = [i for i in range(64) if not torch.equal(with_flip[i], without[i])]
    assert mirrored and all(torch.equal(with_flip[i], without[i].flip(-1)) for i in mirrored)
    assert len(mirrored) < 64
    weak_a, weak_b = A.weak_view(x, _g(4)), A.weak_view(x, _g(4), hflip=False)
    assert not torch.equal(weak_a, weak_b)
    public = ImageSet(_images(32, seed=5), torch.full((32,), -1), num_classes=10, meta={"hflip": False})
    _, xb = A.public_batch(public, 0, 16, seed=7)
    idx, _ = A.public_batch(public, 0, 16, seed=7)
    ref = A.public_view(public.x[idx], seeded_generator("public-augment", 7, 0), hflip=False)
    assert torch.allclose(xb, (ref.float() / 255 - 0.5) / 0.25)
    assert A.hflip_ok(public) is False and A.hflip_ok(ImageSet(_images(2), torch.zeros(2), 10)) is True


def test_data_hflip_reaches_the_client_sets(tmp_path):
    from fedsim.config import load_config
    from fedsim.federation import federation_data

    cfg = load_config("tests/configs/tiny.yaml", ["data.hflip=false", "data.public.source=glyphs",
                                                 "data.public.size=32", f"cache_dir={tmp_path}"])
    fed = federation_data(cfg)
    assert A.hflip_ok(fed.client(0).train) is False and A.hflip_ok(fed.public) is False


def test_public_batch_identical_across_calls_and_covers_the_set():
    public = ImageSet(_images(40, seed=9), torch.full((40,), -1), num_classes=10)
    idx_a, xa = A.public_batch(public, 1, 16, seed=123)
    idx_b, xb = A.public_batch(public, 1, 16, seed=123)
    assert torch.equal(idx_a, idx_b) and torch.equal(xa, xb)
    assert xa.dtype == torch.float32 and xa.shape == (16, 3, 16, 16)
    idx_c, xc = A.public_batch(public, 1, 16, seed=124)
    assert not torch.equal(xa, xc)
    batches = range(A.public_num_batches(40, 16))
    seen = torch.cat([A.public_batch(public, b, 16, seed=123)[0] for b in batches])
    assert len(set(seen.tolist())) == 32  # two full batches (drop_last), no repeats
    _, plain = A.public_batch(public, 0, 16, seed=123, augment=False)
    idx0, _ = A.public_batch(public, 0, 16, seed=123)
    assert torch.allclose(plain, (public.x[idx0].float() / 255 - 0.5) / 0.25)
    with pytest.raises(IndexError):
        A.public_batch(public, 2, 16, seed=123)
