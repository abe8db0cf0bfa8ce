"""CIFAR-10-C corruptions and RAHFL's corruption generator (fedsim.data.corruptions)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from fedsim.data import corruptions as C
from fedsim.data.base import ImageSet
from fedsim.data.corruptions import CORRUPTIONS, CorruptionConfig, corrupt, corrupt_set
from fedsim.errors import ConfigError, DataPathError


def _image(size: int = 32, seed: int = 0) -> np.ndarray:
    """Smooth colour gradients, a flat square and mild noise: every corruption visibly changes it."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    img = np.stack([xx, yy, 1 - xx * yy], -1) * 170 + 40
    img[size // 4: size // 2, size // 5: size // 2] = (200, 60, 30)
    img += rng.normal(0, 10, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _image_set(n: int, size: int = 16) -> ImageSet:
    x = np.stack([_image(size, seed=i) for i in range(n)]).transpose(0, 3, 1, 2)
    return ImageSet(torch.from_numpy(np.ascontiguousarray(x)), torch.arange(n) % 10, 10, meta={"source": "t"})


# ------------------------------------------------------------------------------ single corruptions


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_every_severity_changes_image_and_is_reproducible(name: str) -> None:
    for size in (32, 16):
        img = _image(size)
        for sev in range(1, 6):
            a = corrupt(img, name, sev, np.random.default_rng(sev))
            b = corrupt(img, name, sev, np.random.default_rng(sev))
            assert a.dtype == np.uint8 and a.shape == img.shape, (name, sev, size)
            assert np.array_equal(a, b), (name, sev, size)
            assert not np.array_equal(a, img), (name, sev, size)


def test_names_are_the_15_cifar10c_types_in_order() -> None:
    assert CORRUPTIONS == (
        "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
        "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
        "jpeg_compression",
    )
    assert set(C._PARAMS) == set(CORRUPTIONS) and all(len(p) == 5 for p in C._PARAMS.values())


@pytest.mark.parametrize("name", ["contrast", "brightness", "defocus_blur", "zoom_blur", "pixelate"])
def test_deterministic_corruptions_get_stronger_with_severity(name: str) -> None:
    img = _image(32)
    outs = [corrupt(img, name, s, np.random.default_rng(0)).astype(float) for s in range(1, 6)]
    err = [np.abs(o - img).mean() for o in outs]
    assert all(a < b for a, b in zip(err, err[1:])), err


def test_contrast_matches_cifar10c_formula() -> None:
    img = _image(32)
    f = img / 255.0
    m = f.mean(axis=(0, 1), keepdims=True)
    for sev, c in enumerate((0.75, 0.5, 0.4, 0.3, 0.15), start=1):
        want = (np.clip((f - m) * c + m, 0, 1) * 255).astype(np.uint8)
        assert np.array_equal(corrupt(img, "contrast", sev, np.random.default_rng(0)), want)


def test_brightness_raises_hsv_value_and_keeps_hue() -> None:
    img = _image(32)
    out = corrupt(img, "brightness", 5, np.random.default_rng(0)).astype(float)
    v_in, v_out = img.max(-1) / 255.0, out.max(-1) / 255.0
    assert np.allclose(v_out, np.minimum(v_in + 0.3, 1.0), atol=1.5 / 255)
    # channel ratios (hue, saturation) unchanged up to 8-bit truncation
    assert np.allclose(out / out.max(-1, keepdims=True), img / img.max(-1, keepdims=True), atol=0.03)


def test_gaussian_noise_has_cifar_std() -> None:
    flat = np.full((64, 64, 3), 128, np.uint8)
    for sev, std in enumerate((0.04, 0.06, 0.08, 0.09, 0.10), start=1):
        diff = corrupt(flat, "gaussian_noise", sev, np.random.default_rng(0)).astype(float) - 128
        assert abs(diff.std() / 255 - std) < 0.1 * std


def test_impulse_noise_amount() -> None:
    flat = np.full((64, 64, 3), 128, np.uint8)
    out = corrupt(flat, "impulse_noise", 5, np.random.default_rng(0))
    assert set(np.unique(out)) == {0, 128, 255}
    assert abs((out != 128).mean() - 0.07) < 0.015


def test_motion_blur_kernel_on_an_impulse() -> None:
    """ImageMagick's kernel: one-sided Gaussian taps along the angle; at 0 deg out[x] = sum k_i in[x+i]."""
    img = np.zeros((5, 20))
    img[2, 15] = 1.0
    out = C._motion_blur(img, radius=6, sigma=1.5, angle=0.0)
    k = np.exp(-np.arange(13) ** 2 / (2 * 1.5**2))
    k /= k.sum()
    want = np.zeros(20)
    want[15 - np.arange(13)[15 - np.arange(13) >= 0]] = k[15 - np.arange(13) >= 0]
    assert np.allclose(out[2], want) and np.allclose(np.delete(out, 2, axis=0), 0)
    down = C._motion_blur(img.T.copy(), radius=6, sigma=1.5, angle=90.0)  # 90 deg: along rows
    assert np.allclose(down[:, 2], want)


def test_magick_rounding_truncates_after_16_bit_rounding() -> None:
    assert C._magick_to_8bit(np.array([9.999, 10.0, 10.4, 10.999, 256.0])).tolist() == [10, 10, 10, 11, 255]


def test_zoom_matrix_equals_original_clipped_zoom() -> None:
    """Hendrycks' clipped_zoom (crop, ndimage.zoom order 1, trim) vs the cached sparse matrix."""

    def original(img: np.ndarray, z: float) -> np.ndarray:
        h = img.shape[0]
        ch = int(np.ceil(h / z))
        top = (h - ch) // 2
        out = ndimage.zoom(img[top:top + ch, top:top + ch], (z, z, 1), order=1)
        t = (out.shape[0] - h) // 2
        return out[t:t + h, t:t + h]

    rng = np.random.default_rng(0)
    for n in (16, 32):
        img = rng.random((n, n, 3))
        zooms = tuple(np.arange(1, 1.26, 0.01)) + (1.75, 2.25)
        for z in zooms:
            assert np.allclose(C._zoom_sum(img, (z,)), original(img, z), atol=1e-12)
        assert np.allclose(C._zoom_sum(img, zooms), sum(original(img, z) for z in zooms), atol=1e-10)


class _Recorder:
    """Wraps a Generator and keeps what ``integers`` returned, to replay it in the original loop."""

    def __init__(self, seed: int) -> None:
        self.rng, self.draws = np.random.default_rng(seed), []

    def integers(self, *args, **kwargs):
        out = self.rng.integers(*args, **kwargs)
        self.draws.append(out)
        return out


def test_glass_blur_equals_the_original_pixel_loop() -> None:
    img = _image(32)
    for sev in range(1, 6):
        sigma, delta, iters = C._PARAMS["glass_blur"][sev - 1]
        rec = _Recorder(sev)
        got = corrupt(img, "glass_blur", sev, rec)
        x = (C._gaussian(img / 255.0, sigma) * 255).astype(np.uint8)
        for d in rec.draws:  # Hendrycks' loop verbatim, with its copy-not-swap behaviour on views
            assert len(rec.draws) == iters
            for a, h in enumerate(range(32 - delta, delta, -1)):
                for b, w in enumerate(range(32 - delta, delta, -1)):
                    dx, dy = d[a, b]
                    hp, wp = h + dy, w + dx
                    x[h, w], x[hp, wp] = x[hp, wp], x[h, w]
        want = (np.clip(C._gaussian(x / 255.0, sigma), 0, 1) * 255).astype(np.uint8)
        assert np.array_equal(got, want), sev


def test_pixelate_and_jpeg_match_pil() -> None:
    img = _image(32)
    small = Image.fromarray(img).resize((27, 27), Image.Resampling.BOX)  # severity 3: int(32 * 0.85)
    want = np.asarray(small.resize((32, 32), Image.Resampling.BOX))
    assert np.array_equal(corrupt(img, "pixelate", 3, np.random.default_rng(0)), want)
    jpg = corrupt(img, "jpeg_compression", 5, np.random.default_rng(0))
    assert np.abs(jpg.astype(int) - img).mean() > np.abs(
        corrupt(img, "jpeg_compression", 1, np.random.default_rng(0)).astype(int) - img).mean()


# ---------------------------------------------------------------------------------- frost textures


def test_frost_uses_texture_files_from_a_folder(tmp_path) -> None:
    colours = [(10, 20, 30), (40, 50, 60), (70, 80, 90), (100, 110, 120), (130, 140, 150)]
    for name, col in zip(C._FROST_FILES, colours):
        Image.fromarray(np.full((50, 60, 3), col, np.uint8)).save(tmp_path / name, quality=100)
    textures = C.load_frost_textures(tmp_path)
    assert [t.shape for t in textures] == [(50, 60, 3)] * 5
    img = _image(32)
    out = C._frost(img, (0.75, 0.45), np.random.default_rng(3), tuple(textures))
    idx = np.random.default_rng(3).integers(5)
    assert np.allclose(out, np.clip(0.75 * img + 0.45 * textures[idx][:32, :32], 0, 255))
    (tmp_path / "frost4.jpg").unlink()
    with pytest.raises(DataPathError, match="frost4.jpg"):
        C.load_frost_textures(tmp_path)


def test_cifar_frost_resize_is_pixel_subsampling() -> None:
    """cv2.resize(fx=0.2, INTER_LINEAR) samples source pixel 5*i+2 exactly."""
    tex = np.random.default_rng(0).integers(0, 256, (315, 560, 3)).astype(np.uint8)
    small = C._resize_linear(tex, 0.2)
    assert small.shape == (63, 112, 3) and np.array_equal(small, tex[2::5, 2::5])


def test_procedural_frost_is_seeded_and_matches_photo_moments() -> None:
    a, b = C.procedural_frost_texture(4), C.procedural_frost_texture(4)
    assert np.array_equal(a, b) and a.dtype == np.uint8 and a.shape[0] >= 32 and a.shape[1] >= 32
    mean, std = C._FROST_MOMENTS[4]
    pixels = a.reshape(-1, 3)
    assert np.allclose(pixels.mean(0), mean, atol=3) and np.allclose(pixels.std(0), std, atol=3)
    assert C.frost_source() in ("packaged", "procedural")


# --------------------------------------------------------------------------------------- generator


def test_corrupt_set_changes_exactly_floor_rate_n_images() -> None:
    images = _image_set(30)
    out = corrupt_set(images, CorruptionConfig(rate=0.5, seed=0))
    changed = (out.x != images.x).flatten(1).any(1)
    mask = out.meta["corrupted"]
    assert mask.dtype == torch.bool and int(mask.sum()) == 15 and torch.equal(changed, mask)
    sev, typ = out.meta["severity"], out.meta["corruption_type"]
    assert ((sev[mask] >= 1) & (sev[mask] <= 4)).all() and (sev[~mask] == 0).all()
    assert ((typ[mask] >= 0) & (typ[mask] < 15)).all() and (typ[~mask] == -1).all()
    assert out.x.dtype == torch.uint8 and out.x.shape == images.x.shape
    assert torch.equal(out.y, images.y) and out.meta["source"] == "t" and "corrupted" not in images.meta
    # replay the generator: corrupted images are corrupt() with the recorded type and severity, in
    # index order, from the same Generator after the index / type / severity draws
    rng = np.random.default_rng(0)
    rng.permutation(30), rng.integers(15, size=30), rng.integers(1, 5, size=30)
    clean = images.x.permute(0, 2, 3, 1).numpy()
    for i in torch.nonzero(mask)[:, 0].tolist():
        want = corrupt(clean[i], CORRUPTIONS[int(typ[i])], int(sev[i]), rng)
        assert np.array_equal(out.x[i].permute(1, 2, 0).numpy(), want), i


def test_corrupt_set_is_seeded() -> None:
    images = _image_set(20)
    a = corrupt_set(images, CorruptionConfig(rate=0.5, seed=3))
    b = corrupt_set(images, CorruptionConfig(rate=0.5, seed=3))
    c = corrupt_set(images, CorruptionConfig(rate=0.5, seed=4))
    assert torch.equal(a.x, b.x) and all(torch.equal(a.meta[k], b.meta[k]) for k in ("corrupted", "severity"))
    assert not torch.equal(a.meta["corrupted"], c.meta["corrupted"])


def test_corrupt_set_draws_all_types_and_the_severity_range() -> None:
    images = _image_set(8, size=8)
    images = ImageSet(images.x.repeat(40, 1, 1, 1), images.y.repeat(40), 10)
    out = corrupt_set(images, CorruptionConfig(rate=1.0, severities=(2, 3), seed=1))
    assert bool(out.meta["corrupted"].all())
    assert set(out.meta["corruption_type"].tolist()) == set(range(15))
    assert set(out.meta["severity"].tolist()) == {2, 3}


def test_corrupt_set_rate_edges_and_type_subset() -> None:
    images = _image_set(10, size=8)
    none = corrupt_set(images, CorruptionConfig(rate=0.0))
    assert torch.equal(none.x, images.x) and int(none.meta["corrupted"].sum()) == 0
    only = corrupt_set(images, CorruptionConfig(rate=1.0, types=("contrast", "fog")))
    allowed = {CORRUPTIONS.index("contrast"), CORRUPTIONS.index("fog")}
    assert set(only.meta["corruption_type"].tolist()) <= allowed
    assert int(corrupt_set(images, CorruptionConfig(rate=0.29)).meta["corrupted"].sum()) == math.floor(2.9)
    big = ImageSet(images.x.repeat(10, 1, 1, 1), images.y.repeat(10), 10)
    out = corrupt_set(big, CorruptionConfig(rate=0.29, types=("contrast",)))
    assert int(out.meta["corrupted"].sum()) == 29


# ------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "fogg"}, "fogg"),
        ({"severity": 0}, "0"),
        ({"severity": 6}, "6"),
        ({"severity": 2.0}, "2.0"),
        ({"severity": True}, "True"),
    ],
)
def test_corrupt_rejects_bad_name_and_severity(kwargs: dict, match: str) -> None:
    args = {"name": "fog", "severity": 1} | kwargs
    with pytest.raises(ConfigError, match=match):
        corrupt(_image(16), args["name"], args["severity"], np.random.default_rng(0))


def test_corrupt_rejects_non_uint8_image() -> None:
    with pytest.raises(ConfigError, match="uint8"):
        corrupt(_image(16).astype(np.float32), "fog", 1, np.random.default_rng(0))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rate": 1.5}, "corruption.rate"),
        ({"rate": -0.1}, "corruption.rate"),
        ({"severities": (3, 2)}, "corruption.severities"),
        ({"severities": (0, 2)}, "corruption.severities"),
        ({"severities": (1, 6)}, "corruption.severities"),
        ({"types": ("snow", "hail")}, "hail"),
        ({"types": ()}, "corruption.types"),
    ],
)
def test_config_rejects_bad_values(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        CorruptionConfig(**kwargs)


def test_corrupt_set_revalidates_mutated_config() -> None:
    cfg = CorruptionConfig(rate=0.5)
    cfg.rate = 2.0
    with pytest.raises(ConfigError, match="corruption.rate"):
        corrupt_set(_image_set(4), cfg)
