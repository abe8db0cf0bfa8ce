"""The 15 CIFAR-10-C corruptions (Hendrycks & Dietterich, ICLR 2019, arXiv:1903.12261) as RAHFL uses them.

RAHFL (Fang, Ye, Du, TPAMI 2025, arXiv:2503.09206) builds its corrupted CIFAR-10 with
``Dataset/make_cifar_c.py``, a copy of Hendrycks' ``ImageNet-C/create_c/make_cifar_c.py``: every
per-severity parameter table below is that file's 32x32 table (not the ImageNet-C one that the
``imagecorruptions`` packages use). :func:`corrupt_set` is RAHFL's generator: ``floor(rate*N)`` images
drawn without replacement get a corruption; a type and a severity are drawn for *every* image.

Why a reimplementation: the original breaks on current stacks (``np.float_``, skimage's
``multichannel=``, ``random.sample`` on dict keys, Wand/ImageMagick for motion blur and snow, frost
files next to the script). ``imagecorruptions-imaug`` 1.1.5 installs and runs with NumPy 2 here, but it
hard-codes ImageNet-C parameters, refuses images under 32x32, draws from NumPy's global RNG (no
``Generator``), and pulls numba + opencv-python (its numba glass blur compiles for ~8 s). We take only
its shipped frost photographs (see below). Everything else is NumPy/SciPy/Pillow:

- ``skimage.filters.gaussian`` -> ``scipy.ndimage.gaussian_filter`` (what it calls: mode 'nearest',
  truncate 4, no smoothing across channels); ``random_noise('s&p')`` -> its Bernoulli definition.
- cv2 ``GaussianBlur``/``filter2D``/``warpAffine`` (BORDER_REFLECT_101) -> SciPy with mode 'mirror'
  (the same border rule); ``getAffineTransform`` -> a 3x3 linear solve.
- ImageMagick ``MotionBlurImage`` -> its kernel written out: ``2*radius+1`` taps with one-sided
  Gaussian weights ``exp(-i^2/2 sigma^2)`` at offsets ``ceil(i*(cos a, sin a) - 0.5)``, edge pixels
  repeated beyond the border, results brought back to 8 bit the way Wand's Q16 PNG round trip does.
- Brightness: HSV ``V += c`` with H, S fixed scales RGB by ``V'/V`` (every HSV->RGB channel is ``V``
  times a function of H and S), so no HSV round trip is needed.
- Glass blur: the original "swap" ``x[h,w], x[h',w'] = x[h',w'], x[h,w]`` on NumPy views is a copy
  ``x[h,w] = x[h',w']``; with CIFAR's max_delta 1 (offsets in {-1, 0}) and the loop running from the
  bottom-right, every source pixel is still unwritten when read, so one vectorised gather reproduces
  the pixel loop exactly (checked against the literal loop in the tests).

Departures (documented, deliberate):

- Random numbers come from the caller's ``numpy.random.Generator``; draws are the same distributions
  as the original's, so outputs are not byte-identical to RAHFL's files.
- Frost uses Hendrycks' photographs ``frost1..5`` (the original draws ``randint(5)``, so ``frost6`` is
  never used) as shipped, byte-identical, by ``imagecorruptions`` 1.1.2 and ``imagecorruptions-imaug``;
  the folder is located with ``importlib.util.find_spec`` and the package is never imported (its import
  needs cv2, and numba for -imaug). With neither installed, five seeded procedural textures matched to
  the photographs' per-channel mean and std are used instead: **not faithful** (:func:`frost_source`
  says which is in use).
- Other image sizes (16x16 digits, 64x64, ...): sizes hard-coded to 32 in the original become the
  image's own (zoom and pixelate crop per axis, elastic uses ``min(H, W)`` for its ``IMSIZE``), fog's
  plasma map is the next power of two of the larger side, and frost textures are resized by
  ``0.2 * max(H, W) / 32`` so a crop covers the same share of the texture as on CIFAR.
"""

from __future__ import annotations

import importlib.util
import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy import ndimage, sparse

from fedsim.data.base import ImageSet
from fedsim.errors import ConfigError, DataPathError

CORRUPTIONS: tuple[str, ...] = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur",
    "motion_blur", "zoom_blur", "snow", "frost", "fog",
    "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression",
)

# Per-severity parameters of Hendrycks' make_cifar_c.py (identical in RAHFL's copy), severity 1..5.
_PARAMS: dict[str, tuple] = {
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),  # noise std
    "shot_noise": (500, 250, 100, 75, 50),  # photons per unit intensity
    "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),  # salt-and-pepper amount
    "defocus_blur": ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),  # disk radius, alias blur
    "glass_blur": ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)),  # sigma, delta, iters
    "motion_blur": ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)),  # ImageMagick radius, sigma
    "zoom_blur": tuple(np.arange(1, stop, 0.01) for stop in (1.06, 1.11, 1.16, 1.21, 1.26)),
    "snow": (  # loc, scale, zoom, threshold, blur radius, blur sigma, image weight
        (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
        (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
        (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
        (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
    ),
    "frost": ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)),  # image weight, frost weight
    "fog": ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)),  # strength, wibble decay
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),  # added to HSV value
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),  # factor around the channel mean
    # alpha, sigma, affine jitter as fractions of IMSIZE (32 in the original)
    "elastic_transform": ((0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05),
                          (0.1, 0.03, 0.03)),
    "pixelate": (0.95, 0.9, 0.85, 0.75, 0.65),  # downscale factor
    "jpeg_compression": (80, 65, 58, 50, 40),  # JPEG quality
}

Corruption = Callable[[np.ndarray, object, np.random.Generator], np.ndarray]


# ----------------------------------------------------------------------------------------- helpers


def _gaussian(x: np.ndarray, sigma: float, mode: str = "nearest", truncate: float = 4.0) -> np.ndarray:
    """skimage.filters.gaussian with channel_axis=-1 for HxWxC input (spatial smoothing only)."""
    sig = (sigma, sigma, 0.0) if x.ndim == 3 else sigma
    return ndimage.gaussian_filter(x, sig, mode=mode, truncate=truncate)


@lru_cache(maxsize=512)
def _zoom_taps(n: int, zoom: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear-interpolation taps (low index, high index, high weight) of Hendrycks' clipped zoom.

    The original crops the central ``ceil(n / zoom)`` pixels, enlarges them with
    ``scipy.ndimage.zoom(order=1)`` (``round(crop * zoom)`` samples at ``i * (crop-1)/(out-1)``) and
    trims the centre ``n``. That is separable linear interpolation, so two gathers per axis replace it
    and zoom blur applies its ~20 zooms as one cached sparse matrix instead of ~20 ``ndimage.zoom`` calls.
    """
    crop = math.ceil(n / zoom)
    top = (n - crop) // 2
    n_out = round(crop * zoom)
    src = np.arange(n_out) * ((crop - 1) / (n_out - 1)) if n_out > 1 else np.zeros(1)
    trim = (n_out - n) // 2
    src = src[trim:trim + n]
    lo = np.minimum(np.floor(src).astype(int), crop - 1)
    return top + lo, top + np.minimum(lo + 1, crop - 1), src - lo


@lru_cache(maxsize=64)
def _zoom_matrix(h: int, w: int, zooms: tuple[float, ...]) -> sparse.csr_matrix:
    """(H*W, H*W) sparse matrix summing the clipped zooms of a flattened HxW image over ``zooms``."""
    out = np.arange(h * w).reshape(h, w)
    rows, cols, vals = [], [], []
    for z in zooms:
        r_lo, r_hi, r_f = _zoom_taps(h, z)
        c_lo, c_hi, c_f = _zoom_taps(w, z)
        for r_idx, r_wt in ((r_lo, 1 - r_f), (r_hi, r_f)):
            for c_idx, c_wt in ((c_lo, 1 - c_f), (c_hi, c_f)):
                rows.append(out.ravel())
                cols.append((r_idx[:, None] * w + c_idx[None, :]).ravel())
                vals.append((r_wt[:, None] * c_wt[None, :]).ravel())
    coo = sparse.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                            shape=(h * w, h * w))
    return coo.tocsr()


def _zoom_sum(img: np.ndarray, zooms: tuple[float, ...]) -> np.ndarray:
    """Sum over ``zooms`` of the clipped zoom of an HxWxC array: one sparse product."""
    h, w, c = img.shape
    return (_zoom_matrix(h, w, tuple(float(z) for z in zooms)) @ img.reshape(h * w, c)).reshape(h, w, c)


def _plasma_fractal(mapsize: int, decay: float, rng: np.random.Generator) -> np.ndarray:
    """Diamond-square height map in [0, 1] (Hendrycks' plasma_fractal, RNG made explicit)."""
    m = np.zeros((mapsize, mapsize))
    step, wibble = mapsize, 100.0

    def wibbled(a: np.ndarray) -> np.ndarray:
        return a / 4 + wibble * rng.uniform(-wibble, wibble, a.shape)

    while step >= 2:
        half = step // 2
        corners = m[0::step, 0::step]
        sq = corners + np.roll(corners, -1, axis=0)
        sq += np.roll(sq, -1, axis=1)
        m[half::step, half::step] = wibbled(sq)
        dr, ul = m[half::step, half::step], m[0::step, 0::step]
        m[0::step, half::step] = wibbled(dr + np.roll(dr, 1, axis=0) + ul + np.roll(ul, -1, axis=1))
        m[half::step, 0::step] = wibbled(dr + np.roll(dr, 1, axis=1) + ul + np.roll(ul, -1, axis=0))
        step //= 2
        wibble /= decay
    m -= m.min()
    return m / m.max()


@lru_cache(maxsize=16)
def _disk_kernel(radius: float, alias_blur: float) -> np.ndarray:
    """Hendrycks' anti-aliased disk (17x17 for radius <= 8), cropped to its non-zero support.

    cv2.GaussianBlur(ksize 3, reflect-101) is a separable 3-tap Gaussian with SciPy's 'mirror' border;
    cropping zero rows/columns leaves the later correlation unchanged and makes it ~10x cheaper.
    """
    half = 8 if radius <= 8 else int(radius)
    grid = np.arange(-half, half + 1)
    yy, xx = np.meshgrid(grid, grid)
    disk = ((xx**2 + yy**2) <= radius**2).astype(np.float32)
    disk /= disk.sum()
    taps = np.exp(-((np.arange(3) - 1.0) ** 2) / (2 * alias_blur**2))
    taps /= taps.sum()
    k = ndimage.correlate1d(disk, taps, axis=0, mode="mirror")
    k = ndimage.correlate1d(k, taps, axis=1, mode="mirror")
    nz = np.nonzero(k)
    r = max(half - nz[0].min(), half - nz[1].min())
    return k[half - r:half + r + 1, half - r:half + r + 1]


def _motion_blur(x: np.ndarray, radius: float, sigma: float, angle: float) -> np.ndarray:
    """ImageMagick MotionBlurImage on an HxW(xC) array; edge pixels repeat outside the image."""
    width = 2 * math.ceil(radius) + 1
    i = np.arange(width)
    kernel = np.exp(-(i.astype(float) ** 2) / (2 * sigma**2))
    kernel /= kernel.sum()
    a = math.radians(angle)
    ox = np.ceil(i * math.cos(a) - 0.5).astype(int)  # hypot(width sin a, width cos a) == width
    oy = np.ceil(i * math.sin(a) - 0.5).astype(int)
    h, w = x.shape[:2]
    rows = np.clip(np.arange(h)[None, :] + oy[:, None], 0, h - 1)  # (taps, H)
    cols = np.clip(np.arange(w)[None, :] + ox[:, None], 0, w - 1)  # (taps, W)
    taps = x[rows[:, :, None], cols[:, None, :]].astype(float)  # (taps, H, W[, C])
    return np.tensordot(kernel, taps, axes=1)


def _magick_to_8bit(raw: np.ndarray) -> np.ndarray:
    """ImageMagick Q16's hand-back of a blurred 8-bit image: round to 16 bit, truncate to 8 bit.

    Matches Wand's output pixel for pixel on test images (rounding straight to 8 bit differs on half).
    """
    return np.floor(np.rint(np.clip(raw, 0, 255) * 257) / 257)


def _affine_from_points(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """cv2.getAffineTransform: the 2x3 matrix M with M @ [x, y, 1] = dst for three point pairs."""
    a = np.hstack([src.astype(float), np.ones((3, 1))])
    return np.linalg.solve(a, dst.astype(float)).T


def _warp_affine(img: np.ndarray, m: np.ndarray) -> np.ndarray:
    """cv2.warpAffine(INTER_LINEAR, BORDER_REFLECT_101): dst(x, y) = src(M^-1 (x, y))."""
    h, w, c = img.shape
    inv = np.linalg.inv(np.vstack([m, [0, 0, 1]]))[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    sx = inv[0, 0] * xx + inv[0, 1] * yy + inv[0, 2]
    sy = inv[1, 0] * xx + inv[1, 1] * yy + inv[1, 2]
    coords = np.stack([np.repeat(sy[..., None], c, -1), np.repeat(sx[..., None], c, -1),
                       np.broadcast_to(np.arange(c, dtype=float), (h, w, c))])
    return ndimage.map_coordinates(img, coords, order=1, mode="mirror")


def _resize_linear(img: np.ndarray, scale: float) -> np.ndarray:
    """cv2.resize(fx=fy=scale, INTER_LINEAR): half-pixel centres, edge clamp, uint8 rounding.

    At CIFAR's scale 0.2 every sample lands on a pixel centre (src = 5*dst + 2), so this is exact.
    """
    def axis_weights(n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n_out = max(1, round(n_in * scale))
        src = np.clip((np.arange(n_out) + 0.5) * (1.0 / scale) - 0.5, 0, n_in - 1)
        lo = np.floor(src).astype(int)
        return lo, np.minimum(lo + 1, n_in - 1), src - lo

    r0, r1, fr = axis_weights(img.shape[0])
    c0, c1, fc = axis_weights(img.shape[1])
    x = img.astype(float)
    rows = x[r0] * (1 - fr)[:, None, None] + x[r1] * fr[:, None, None]
    out = rows[:, c0] * (1 - fc)[None, :, None] + rows[:, c1] * fc[None, :, None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- frost textures

# Per-channel (RGB) mean and std of the five photographs after the 0.2 resize; the procedural
# substitute matches these so that frost has the same overall strength without the files.
_FROST_MOMENTS = (
    ((77.5, 149.0, 165.7), (26.8, 16.4, 15.3)),
    ((200.8, 205.4, 214.5), (21.4, 22.1, 22.6)),
    ((200.8, 205.4, 214.5), (21.4, 22.1, 22.6)),
    ((138.0, 153.2, 165.6), (29.0, 29.0, 30.2)),
    ((112.3, 123.3, 134.7), (44.3, 43.2, 41.6)),
)
_FROST_FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg")
_CIFAR_FROST_SCALE = 0.2  # the original resizes the photographs by 0.2 before a 32x32 crop


def packaged_frost_dir() -> Path | None:
    """The ``frost`` folder of an installed ``imagecorruptions`` package, found without importing it."""
    spec = importlib.util.find_spec("imagecorruptions")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "frost"
    return folder if all((folder / f).is_file() for f in _FROST_FILES) else None


def load_frost_textures(folder: Path) -> list[np.ndarray]:
    """Read frost1.png .. frost5.jpg from ``folder`` as full-resolution RGB uint8 arrays."""
    missing = [f for f in _FROST_FILES if not (Path(folder) / f).is_file()]
    if missing:
        raise DataPathError(f"frost texture folder {folder}: missing {', '.join(missing)}")
    return [np.asarray(Image.open(Path(folder) / f).convert("RGB")) for f in _FROST_FILES]


def procedural_frost_texture(index: int, shape: tuple[int, int] = (96, 144)) -> np.ndarray:
    """A seeded stand-in for photograph ``index`` at the 0.2 scale (NOT faithful: see module doc).

    Cloudy low-frequency variation (plasma fractal) plus short streaks (motion-blurred sparse
    speckles at a few random angles) mimic ice crystals on glass; the result is standardised and
    given the photograph's per-channel mean and std.
    """
    rng = np.random.default_rng(1000 + index)
    size = 1 << max(shape).bit_length()
    cloud = _plasma_fractal(size, 2.0, rng)[: shape[0], : shape[1]]
    speckle = (rng.random(shape) < 0.08).astype(float)
    streaks = sum(_motion_blur(speckle, 3, 2.0, rng.uniform(0, 180)) for _ in range(4))
    grain = _gaussian(rng.standard_normal(shape), 0.6)
    g = 0.6 * _standardise(cloud) + 1.0 * _standardise(streaks) + 0.4 * _standardise(grain)
    g = _standardise(g)
    mean, std = (np.asarray(v) for v in _FROST_MOMENTS[index])
    return np.clip(mean + std * g[..., None], 0, 255).astype(np.uint8)


def _standardise(a: np.ndarray) -> np.ndarray:
    return (a - a.mean()) / (a.std() + 1e-12)


@lru_cache(maxsize=1)
def _frost_sources() -> tuple[tuple[np.ndarray, float], ...]:
    """(texture, the resize that texture is already at) for the 5 frost textures."""
    folder = packaged_frost_dir()
    if folder is not None:
        return tuple((t, 1.0) for t in load_frost_textures(folder))
    return tuple((procedural_frost_texture(i), _CIFAR_FROST_SCALE) for i in range(len(_FROST_FILES)))


@lru_cache(maxsize=16)
def _frost_bank(longest_side: int) -> tuple[np.ndarray, ...]:
    """Textures resized for images whose longer side is ``longest_side`` (0.2 for 32 px)."""
    target = _CIFAR_FROST_SCALE * longest_side / 32
    return tuple(t if math.isclose(target, s) else _resize_linear(t, target / s) for t, s in _frost_sources())


def frost_source() -> str:
    """'packaged' when the real photographs are used, 'procedural' for the non-faithful substitute."""
    return "packaged" if packaged_frost_dir() is not None else "procedural"


# ------------------------------------------------------------------------------------ corruptions
# Each takes an HxWx3 uint8 image, its severity's parameters and a Generator; returns floats in
# [0, 255] (or uint8). corrupt() clips and truncates with np.uint8 as the original script did.


def _gaussian_noise(x: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    f = x / 255.0
    return np.clip(f + rng.normal(size=f.shape, scale=c), 0, 1) * 255


def _shot_noise(x: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    return np.clip(rng.poisson(x / 255.0 * c) / c, 0, 1) * 255


def _impulse_noise(x: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    """skimage random_noise('s&p', amount=c): each value flips with prob. c, half salt, half pepper."""
    f = x / 255.0
    flipped = rng.random(f.shape) < c
    salted = rng.random(f.shape) < 0.5
    f[flipped & salted] = 1.0
    f[flipped & ~salted] = 0.0
    return f * 255


def _defocus_blur(x: np.ndarray, c: tuple, rng: np.random.Generator) -> np.ndarray:
    k = _disk_kernel(*c)
    return np.clip(ndimage.correlate(x / 255.0, k[:, :, None], mode="mirror"), 0, 1) * 255


def _glass_blur(x: np.ndarray, c: tuple, rng: np.random.Generator) -> np.ndarray:
    sigma, delta, iterations = c
    img = (_gaussian(x / 255.0, sigma) * 255).astype(np.uint8)
    h, w = img.shape[:2]
    rows = np.arange(h - delta, delta, -1)[:, None]  # the original loop order: bottom-right first
    cols = np.arange(w - delta, delta, -1)[None, :]
    for _ in range(iterations):
        d = rng.integers(-delta, delta, size=(rows.size, cols.size, 2))  # (dx, dy) per visited pixel
        src = img[rows + d[..., 1], cols + d[..., 0]]  # all sources unwritten when read (delta == 1)
        img = img.copy()
        img[rows, cols] = src
    return np.clip(_gaussian(img / 255.0, sigma), 0, 1) * 255


def _motion_blur_image(x: np.ndarray, c: tuple, rng: np.random.Generator) -> np.ndarray:
    return _magick_to_8bit(_motion_blur(x, c[0], c[1], rng.uniform(-45, 45)))


def _zoom_blur(x: np.ndarray, zooms: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    f = x / 255.0
    out = _zoom_sum(f, tuple(zooms))
    return np.clip((f + out) / (len(zooms) + 1), 0, 1) * 255


def _snow(x: np.ndarray, c: tuple, rng: np.random.Generator) -> np.ndarray:
    f = x.astype(np.float32) / 255.0
    layer = rng.normal(size=f.shape[:2], loc=c[0], scale=c[1])
    layer = _zoom_sum(layer[..., None], (c[2],))[..., 0]
    layer[layer < c[3]] = 0
    layer8 = (np.clip(layer, 0, 1) * 255).astype(np.uint8)  # the original's 8-bit PNG hand-over
    blurred = _magick_to_8bit(_motion_blur(layer8, c[4], c[5], rng.uniform(-135, -45)))
    snow = (blurred / 255.0)[..., None]
    gray = (f @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]  # cv2 RGB2GRAY
    f = c[6] * f + (1 - c[6]) * np.maximum(f, gray * 1.5 + 0.5)
    return np.clip(f + snow + np.rot90(snow, k=2), 0, 1) * 255


def _frost(x: np.ndarray, c: tuple, rng: np.random.Generator,
           textures: tuple[np.ndarray, ...] | None = None) -> np.ndarray:
    bank = textures if textures is not None else _frost_bank(max(x.shape[:2]))
    tex = bank[rng.integers(len(bank))]
    h, w = x.shape[:2]
    if tex.shape[0] < h or tex.shape[1] < w:
        raise DataPathError(f"frost texture {tex.shape[:2]} is smaller than the image {(h, w)}")
    top = rng.integers(0, max(1, tex.shape[0] - h))
    left = rng.integers(0, max(1, tex.shape[1] - w))
    crop = tex[top:top + h, left:left + w].astype(float)
    return np.clip(c[0] * x + c[1] * crop, 0, 255)


def _fog(x: np.ndarray, c: tuple, rng: np.random.Generator) -> np.ndarray:
    f = x / 255.0
    peak = f.max()
    h, w = f.shape[:2]
    mapsize = 1 << (max(h, w) - 1).bit_length()
    f = f + c[0] * _plasma_fractal(mapsize, c[1], rng)[:h, :w, None]
    return np.clip(f * peak / (peak + c[0]), 0, 1) * 255


def _brightness(x: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    """HSV value + c: RGB scales by V'/V (a black pixel, hue 0 and saturation 0, becomes grey V')."""
    f = x / 255.0
    v = f.max(axis=-1, keepdims=True)
    v_new = np.clip(v + c, 0, 1)
    scaled = f * (v_new / np.where(v > 0, v, 1.0))
    return np.clip(np.where(v > 0, scaled, v_new), 0, 1) * 255


def _contrast(x: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    f = x / 255.0
    means = f.mean(axis=(0, 1), keepdims=True)
    return np.clip((f - means) * c + means, 0, 1) * 255


def _elastic_transform(x: np.ndarray, c: tuple, rng: np.random.Generator) -> np.ndarray:
    h, w = x.shape[:2]
    alpha, sigma, jitter = (min(h, w) * v for v in c)
    f = x.astype(np.float32) / 255.0
    centre = np.float32((h, w)) // 2
    sq = min(h, w) // 3
    pts1 = np.float32([centre + sq, [centre[0] + sq, centre[1] - sq], centre - sq])
    pts2 = pts1 + rng.uniform(-jitter, jitter, size=pts1.shape).astype(np.float32)
    f = _warp_affine(f, _affine_from_points(pts1, pts2))
    dx = _gaussian(rng.uniform(-1, 1, size=(h, w)), sigma, mode="reflect", truncate=3) * alpha
    dy = _gaussian(rng.uniform(-1, 1, size=(h, w)), sigma, mode="reflect", truncate=3) * alpha
    yy, xx, zz = np.meshgrid(np.arange(h), np.arange(w), np.arange(3), indexing="ij")
    coords = np.stack([yy + dy[..., None].astype(np.float32), xx + dx[..., None].astype(np.float32), zz])
    return np.clip(ndimage.map_coordinates(f, coords, order=1, mode="reflect"), 0, 1) * 255


def _pixelate(x: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    h, w = x.shape[:2]
    small = Image.fromarray(x).resize((int(w * c), int(h * c)), Image.Resampling.BOX)
    return np.asarray(small.resize((w, h), Image.Resampling.BOX))


def _jpeg_compression(x: np.ndarray, c: int, rng: np.random.Generator) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(x).save(buf, "JPEG", quality=c)
    return np.asarray(Image.open(buf).convert("RGB"))


_FUNCS: dict[str, Corruption] = {
    "gaussian_noise": _gaussian_noise, "shot_noise": _shot_noise, "impulse_noise": _impulse_noise,
    "defocus_blur": _defocus_blur, "glass_blur": _glass_blur, "motion_blur": _motion_blur_image,
    "zoom_blur": _zoom_blur, "snow": _snow, "frost": _frost, "fog": _fog, "brightness": _brightness,
    "contrast": _contrast, "elastic_transform": _elastic_transform, "pixelate": _pixelate,
    "jpeg_compression": _jpeg_compression,
}


# ------------------------------------------------------------------------------------------- API


def _check_name(name: str, key: str = "corruption") -> None:
    if name not in _FUNCS:
        raise ConfigError(f"{key}: unknown corruption {name!r}; expected one of {', '.join(CORRUPTIONS)}")


def _check_severity(severity: object, key: str = "severity") -> None:
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or not 1 <= severity <= 5:
        raise ConfigError(f"{key}: {severity!r} is not an integer in 1..5")


def corrupt(img: np.ndarray, name: str, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Apply CIFAR-10-C corruption ``name`` at ``severity`` (1..5) to an HxWx3 uint8 image."""
    _check_name(name)
    _check_severity(severity)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ConfigError(f"corrupt: image must be HxWx3 uint8, got {img.dtype} {img.shape}")
    out = _FUNCS[name](np.ascontiguousarray(img), _PARAMS[name][severity - 1], rng)
    return np.clip(out, 0, 255).astype(np.uint8)


@dataclass
class CorruptionConfig:
    """RAHFL's corruption generator: a ``rate`` share of images, uniform type, uniform severity."""

    rate: float = 0.0
    severities: tuple[int, int] = (1, 4)  # inclusive; RAHFL draws randint(1, 5) -> 1..4
    types: tuple[str, ...] | None = None  # None = all 15
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.rate, (int, float)) or not 0.0 <= self.rate <= 1.0:
            raise ConfigError(f"corruption.rate: {self.rate!r} must be in [0, 1]")
        if len(self.severities) != 2:
            raise ConfigError(f"corruption.severities: {self.severities!r} must be (low, high)")
        lo, hi = self.severities
        _check_severity(lo, "corruption.severities")
        _check_severity(hi, "corruption.severities")
        if lo > hi:
            raise ConfigError(f"corruption.severities: low {lo} > high {hi}")
        if self.types is not None:
            if len(self.types) == 0:
                raise ConfigError("corruption.types: empty (use null for all 15)")
            for t in self.types:
                _check_name(t, "corruption.types")

    @property
    def type_pool(self) -> tuple[str, ...]:
        return tuple(self.types) if self.types is not None else CORRUPTIONS


def corrupt_set(images: ImageSet, cfg: CorruptionConfig) -> ImageSet:
    """Corrupt ``floor(rate*N)`` images of ``images`` (drawn without replacement) as RAHFL's generator.

    Type and severity are drawn for every image (RAHFL's order of draws) and applied only to the chosen
    ones, in index order, from one Generator seeded with ``cfg.seed``. The returned set's meta gains
    ``corrupted`` (bool N), ``corruption_type`` (index into CORRUPTIONS, -1 if clean) and ``severity``
    (0 if clean).
    """
    cfg.__post_init__()  # the fields may have been changed after construction
    n = len(images)
    rng = np.random.default_rng(cfg.seed)
    k = math.floor(cfg.rate * n + 1e-9)  # guards 0.29 * 100 = 28.999...
    chosen = np.sort(rng.permutation(n)[:k])
    pool = cfg.type_pool
    drawn_type = np.array([CORRUPTIONS.index(t) for t in pool])[rng.integers(len(pool), size=n)]
    drawn_sev = rng.integers(cfg.severities[0], cfg.severities[1] + 1, size=n)

    arr = images.x.permute(0, 2, 3, 1).numpy()
    out = arr.copy()
    for i in chosen:
        out[i] = corrupt(arr[i], CORRUPTIONS[drawn_type[i]], int(drawn_sev[i]), rng)

    mask = np.zeros(n, dtype=bool)
    mask[chosen] = True
    result = images.with_images(torch.from_numpy(out).permute(0, 3, 1, 2).contiguous())
    result.meta.update(
        corrupted=torch.from_numpy(mask),
        corruption_type=torch.from_numpy(np.where(mask, drawn_type, -1).astype(np.int64)),
        severity=torch.from_numpy(np.where(mask, drawn_sev, 0).astype(np.int64)),
    )
    return result
