"""Seeded, batched image augmentations for RAHFL (arXiv 2503.09206) and AugHFL (ICCV 2023).

Every function takes a uint8 batch ``(N, 3, H, W)`` and an explicit :class:`torch.Generator`; all
random draws come from that generator in a fixed order, on the CPU, so the same seed gives the same
output in any process. That is what lets every client derive the *same* augmented public batch
from ``(batch index, seed)`` (:func:`public_batch`) instead of receiving images from the server.

Outputs are on the 0-255 scale: uint8 where the operation is an exact pixel copy (:func:`base_view`,
:func:`public_view`), float32 where it mixes pixels (:func:`augmix`, :func:`weak_view`).
:func:`fedsim.data.base.to_float` normalises either.

**AugMix** (Hendrycks et al., ICLR 2020) with the reduced 9-op set of RAHFL's ``Dataset/dataaug.py``
(= Hendrycks' ``augmentations.augmentations``): autocontrast, equalize, posterize, rotate, solarize,
shear_x, shear_y, translate_x, translate_y. Colour, contrast, brightness and sharpness are left out so
training augmentations do not overlap the test corruptions. Magnitudes follow Hendrycks' code: level
~ U(0.1, severity), then ``int(level * max / 10)`` (rotate max 30 deg, translate max W/3 or H/3 px,
posterize ``4 - int(level*4/10)`` bits, solarize threshold ``256 - int(level*256/10)``) or
``level * 0.3 / 10`` for shears; geometric ops get a random sign and bilinear resampling with zero
fill, shears act about the top-left corner as PIL's ``Image.transform`` does.

Why not ``torchvision.transforms.v2.AugMix(all_ops=False)``? Its op set is exactly these 9 ops, but
(checked in torchvision 0.29 ``_auto_augment.py``): magnitudes come from 10 discrete bins of which
severity 3 allows only bins 0-2 (0, 1/9, 2/9 of the maximum; Hendrycks draws levels continuously in
[0.1, 3)/10 of it); it draws from the global RNG (no generator argument); on a batch it applies one
op chain to every image (only the mixing weights differ per image); and it truncates the mixture back
to uint8. So we build AugMix from per-image parameters, vectorised over the batch: each chain step
groups images by the op they drew and applies the op once per group. Autocontrast and equalize are
torchvision's functional ops (batched, per image and channel); posterize and solarize are the same
bit mask / inversion as ``F.posterize`` / ``F.solarize`` with per-image parameters; the geometric ops
use one ``grid_sample`` over per-image inverse affine matrices in torchvision's own convention (see
:func:`warp`; tests compare each op with ``F.affine`` / ``F.rotate`` image by image).

The weak (SimCLR-style) view is vectorised the same way; its colour jitter reimplements torchvision's
``ColorJitter`` formulas (float path) with per-image factors and a per-image random order.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as tF
from torchvision.transforms.v2 import functional as TF

from fedsim.data.base import ImageSet, to_float

#: The AugMix operations, in the order an op id indexes them.
AUGMIX_OPS: tuple[str, ...] = (
    "autocontrast", "equalize", "posterize", "rotate", "solarize",
    "shear_x", "shear_y", "translate_x", "translate_y",
)

_GRAY = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale weights


# -- geometry ---------------------------------------------------------------------------------------
def _sample(x: torch.Tensor, src_x: torch.Tensor, src_y: torch.Tensor, mode: str,
            padding_mode: str) -> torch.Tensor:
    """Sample each output pixel at input pixel-centre coordinates ``(src_x, src_y)`` (each (N, H, W)).

    uint8 in -> rounded uint8 out (as torchvision's grid transforms), float in -> float out.
    """
    h, w = x.shape[-2:]
    grid = torch.stack([(2 * src_x + 1) / w - 1, (2 * src_y + 1) / h - 1], dim=-1)
    out = tF.grid_sample(x.float(), grid, mode=mode, padding_mode=padding_mode, align_corners=False)
    return out.round().to(torch.uint8) if x.dtype == torch.uint8 else out


def _centred_grid(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Output pixel centres measured from the image centre, as torchvision's ``_affine_grid``."""
    xs = torch.linspace((1.0 - w) * 0.5, (w - 1.0) * 0.5, w)
    ys = torch.linspace((1.0 - h) * 0.5, (h - 1.0) * 0.5, h)
    return xs.view(1, 1, w), ys.view(1, h, 1)


def warp(x: torch.Tensor, inverse: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Resample each image with its own inverse affine map (N, 2, 3), zero fill.

    ``inverse`` maps output to input pixel coordinates measured from the image centre: the matrix
    torchvision's ``F.affine`` / ``F.rotate`` build (``_get_inverse_affine_matrix``), so one call
    here equals those functions applied image by image with per-image parameters.
    """
    h, w = x.shape[-2:]
    xs, ys = _centred_grid(h, w)
    m = inverse.float().view(-1, 6, 1, 1).unbind(1)
    src_x = m[0] * xs + m[1] * ys + m[2] + (w - 1) * 0.5
    src_y = m[3] * xs + m[4] * ys + m[5] + (h - 1) * 0.5
    return _sample(x, src_x, src_y, mode, "zeros")


def resized_crop(x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, height: torch.Tensor,
                 width: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Per image: crop box (top, left, height, width), bilinear resize back to H x W, maybe mirror.

    Output pixel u samples input left + (u + 0.5) * width / W - 0.5, clamped to the box, as
    ``F.resized_crop`` (``interpolate(align_corners=False)``) does; boxes are never larger than the
    image, so the resize only upsamples and antialiasing has no effect.
    """
    n, _, h, w = x.shape
    u = torch.arange(w, dtype=torch.float32).view(1, 1, w)
    u = torch.where(flip.view(-1, 1, 1), w - 1 - u, u)
    v = torch.arange(h, dtype=torch.float32).view(1, h, 1)

    def axis(pos: torch.Tensor, start: torch.Tensor, extent: torch.Tensor, size: int) -> torch.Tensor:
        start, extent = start.float().view(-1, 1, 1), extent.float().view(-1, 1, 1)
        src = (pos + 0.5) * extent / size - 0.5
        return start + torch.minimum(src.clamp_min(0), extent - 1)

    src_x = axis(u, left, width, w).expand(n, h, w)
    src_y = axis(v, top, height, h).expand(n, h, w)
    return _sample(x, src_x, src_y, "bilinear", "border")


def _affine_rows(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, d: torch.Tensor, e: torch.Tensor,
                 f: torch.Tensor) -> torch.Tensor:
    """Stack per-image coefficients into (N, 2, 3) matrices [[a, b, c], [d, e, f]]."""
    return torch.stack([torch.stack([a, b, c], -1), torch.stack([d, e, f], -1)], -2).float()


def rotation_matrix(degrees: torch.Tensor) -> torch.Tensor:
    """Inverse map of a counter-clockwise rotation about the centre (``F.rotate``'s convention)."""
    t = torch.deg2rad(degrees.float())
    z = torch.zeros_like(t)
    return _affine_rows(t.cos(), -t.sin(), z, t.sin(), t.cos(), z)


def shear_matrix(amount: torch.Tensor, axis: int, size: tuple[int, int]) -> torch.Tensor:
    """Inverse map of PIL's shear ``(1, s, 0, 0, 1, 0)`` about the top-left corner (axis 0 = x).

    In centred coordinates x_in = x + s*y + s*H/2 (shear_x) or y_in = y + s*x + s*W/2 (shear_y);
    torchvision's ShearX with ``center=[0, 0]`` and angle atan(s) is the same map.
    """
    h, w = size
    s = amount.float()
    one, z = torch.ones_like(s), torch.zeros_like(s)
    if axis == 0:
        return _affine_rows(one, s, s * h / 2, z, one, z)
    return _affine_rows(one, z, z, s, one, s * w / 2)


def translation_matrix(dx: torch.Tensor, dy: torch.Tensor) -> torch.Tensor:
    """Inverse map of a shift by (dx, dy) pixels (content moves right/down for positive values)."""
    one, z = torch.ones_like(dx, dtype=torch.float32), torch.zeros_like(dx, dtype=torch.float32)
    return _affine_rows(one, z, -dx.float(), z, one, -dy.float())


# -- AugMix -----------------------------------------------------------------------------------------
def _int_parameter(level: torch.Tensor, maxval: float) -> torch.Tensor:
    """Hendrycks' ``int(level * maxval / 10)`` (levels are positive, so floor)."""
    return torch.floor(level * maxval / 10)


def _autocontrast(x: torch.Tensor, level: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    return TF.autocontrast(x)


def _equalize(x: torch.Tensor, level: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    return TF.equalize(x)


def _posterize(x: torch.Tensor, level: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    """Keep ``4 - int(level*4/10)`` high bits (``F.posterize`` with per-image bits)."""
    bits = (4 - _int_parameter(level, 4)).long()
    mask = (255 - (2 ** (8 - bits) - 1)).to(torch.uint8).view(-1, 1, 1, 1)
    return x & mask


def _solarize(x: torch.Tensor, level: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    """Invert pixels >= ``256 - int(level*256/10)`` (``F.solarize`` with per-image thresholds)."""
    threshold = (256 - _int_parameter(level, 256)).view(-1, 1, 1, 1)
    return torch.where(x.float() >= threshold, 255 - x, x)


def _rotate(x: torch.Tensor, level: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    return warp(x, rotation_matrix(_int_parameter(level, 30) * sign))


def _shear(axis: int) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    def op(x: torch.Tensor, level: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
        return warp(x, shear_matrix(level * 0.3 / 10 * sign, axis, (x.shape[-2], x.shape[-1])))

    return op


def _translate(axis: int) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    def op(x: torch.Tensor, level: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
        shift = _int_parameter(level, x.shape[-1 - axis] / 3) * sign
        zero = torch.zeros_like(shift)
        return warp(x, translation_matrix(shift, zero) if axis == 0 else translation_matrix(zero, shift))

    return op


#: op name -> fn(uint8 images (n,3,H,W), level (n,), sign (n,)) -> uint8 images
AUGMIX_FNS: dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "autocontrast": _autocontrast, "equalize": _equalize, "posterize": _posterize, "rotate": _rotate,
    "solarize": _solarize, "shear_x": _shear(0), "shear_y": _shear(1),
    "translate_x": _translate(0), "translate_y": _translate(1),
}


def _dirichlet(alpha: float, n: int, k: int, g: torch.Generator) -> torch.Tensor:
    return torch._sample_dirichlet(torch.full((n, k), float(alpha)), generator=g)


def _chain(x: torch.Tensor, depth: torch.Tensor, ops: torch.Tensor, levels: torch.Tensor,
           signs: torch.Tensor) -> torch.Tensor:
    """One AugMix chain per image: step s applies op ``ops[:, s]`` to images whose depth exceeds s."""
    out = x.clone()
    for step in range(ops.shape[1]):
        step_ops = torch.where(depth > step, ops[:, step], -1)
        for k in _present(step_ops):
            sel = step_ops == k
            out[sel] = AUGMIX_FNS[AUGMIX_OPS[k]](out[sel], levels[sel, step], signs[sel, step])
    return out


def _present(ids: torch.Tensor) -> list[int]:
    """The distinct non-negative ids in ``ids`` (one sync instead of one ``.any()`` per candidate)."""
    return [k for k in torch.unique(ids).tolist() if k >= 0]


def augmix_parts(x: torch.Tensor, g: torch.Generator, width: int = 3, depth: int | tuple[int, int] = (1, 3),
                 severity: float = 3, alpha: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The AugMix mixture sum_i w_i * chain_i(x) (float, 0-255) and each image's m ~ Beta(alpha, alpha).

    ``depth`` is a fixed chain length or an inclusive (min, max) range drawn per chain and image.
    Draw order: w, m, depths, ops, levels, signs -- all from ``g``.
    """
    if x.dtype != torch.uint8:
        raise TypeError(f"augmix expects uint8 images, got {x.dtype}")
    lo, hi = (depth, depth) if isinstance(depth, int) else depth
    n = len(x)
    w = _dirichlet(alpha, n, width, g)
    m = _dirichlet(alpha, n, 2, g)[:, 1]
    depths = torch.randint(lo, hi + 1, (n, width), generator=g)
    ops = torch.randint(0, len(AUGMIX_OPS), (n, width, hi), generator=g)
    levels = 0.1 + (severity - 0.1) * torch.rand(n, width, hi, generator=g)
    signs = torch.where(torch.rand(n, width, hi, generator=g) < 0.5, -1.0, 1.0)
    mix = torch.zeros(x.shape, dtype=torch.float32)
    for i in range(width):
        mix += w[:, i].view(-1, 1, 1, 1) * _chain(x, depths[:, i], ops[:, i], levels[:, i], signs[:, i])
    return mix, m


def augmix(x: torch.Tensor, g: torch.Generator, width: int = 3, depth: int | tuple[int, int] = (1, 3),
           severity: float = 3, alpha: float = 1.0) -> torch.Tensor:
    """AugMix of a uint8 batch: (1 - m) * x + m * sum_i w_i * chain_i(x), float32 on the 0-255 scale.

    w ~ Dirichlet(alpha, ..., alpha) over ``width`` chains, m ~ Beta(alpha, alpha), both per image.
    """
    mix, m = augmix_parts(x, g, width, depth, severity, alpha)
    m = m.view(-1, 1, 1, 1)
    return (1 - m) * x.float() + m * mix


# -- crops, flips and the SimCLR-style weak view ------------------------------------------------------
def _crop_flip(x: torch.Tensor, g: torch.Generator, pad: int, mode: str, hflip: bool = True) -> torch.Tensor:
    """Random ``H x W`` crop of the ``pad``-padded batch, then a random horizontal flip per image.

    Draws (N, 2) offsets then N flip coins, the same draws as the supervised trainer's ``flip_crop``;
    ``hflip=False`` (mirror-asymmetric data such as digits) draws the coins too and ignores them, so the
    crops are the same with and without flips.
    """
    n, _, h, w = x.shape
    xp = tF.pad(x.float(), (pad, pad, pad, pad), mode=mode)
    offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=g)
    flips = (torch.rand(n, generator=g) < 0.5) & hflip
    rows = (offsets[:, 0, None] + torch.arange(h))[:, :, None]  # (N, H, 1)
    cols = offsets[:, 1, None] + torch.arange(w)  # (N, W)
    cols = torch.where(flips[:, None], cols.flip(1), cols)[:, None, :]  # (N, 1, W)
    out = xp[torch.arange(n)[:, None, None], :, rows, cols]  # (N, H, W, C)
    return out.permute(0, 3, 1, 2).to(x.dtype).contiguous()


def base_view(x: torch.Tensor, g: torch.Generator, pad: int = 4, hflip: bool = True) -> torch.Tensor:
    """RAHFL's base view x0: reflect-pad ``pad``, random crop back to H x W, random horizontal flip."""
    return _crop_flip(x, g, pad, "reflect", hflip)


def _resized_crop_boxes(n: int, size: tuple[int, int], g: torch.Generator, scale: tuple[float, float],
                        ratio: tuple[float, float]) -> tuple[torch.Tensor, ...]:
    """``RandomResizedCrop.get_params`` per image: 10 tries, first valid box, else the whole image."""
    h, w = size
    area = torch.empty(n, 10).uniform_(scale[0], scale[1], generator=g) * h * w
    log_r = torch.log(torch.tensor(ratio))
    aspect = torch.exp(torch.empty(n, 10).uniform_(float(log_r[0]), float(log_r[1]), generator=g))
    cw = torch.round(torch.sqrt(area * aspect))
    ch = torch.round(torch.sqrt(area / aspect))
    valid = (cw > 0) & (cw <= w) & (ch > 0) & (ch <= h)
    first = torch.argmax(valid.int(), dim=1)
    ok = valid.any(dim=1)
    cw = torch.where(ok, cw[torch.arange(n), first], torch.tensor(float(w)))
    ch = torch.where(ok, ch[torch.arange(n), first], torch.tensor(float(h)))
    u = torch.rand(n, 2, generator=g)
    top = torch.floor(u[:, 0] * (h - ch + 1))
    left = torch.floor(u[:, 1] * (w - cw + 1))
    return top, left, ch, cw


def _gray(x: torch.Tensor) -> torch.Tensor:
    """(N,3,H,W) float -> (N,1,H,W) luminance with torchvision's weights."""
    return (x * torch.tensor(_GRAY).view(1, 3, 1, 1)).sum(1, keepdim=True)


def _blend(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    f = factor.view(-1, 1, 1, 1)
    return (f * x + (1 - f) * other).clamp(0.0, 1.0)


def _rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(1)
    maxc, minc = x.max(1).values, x.min(1).values
    delta = maxc - minc
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    hue = torch.where(maxc == r, ((g - b) / safe) % 6,
                      torch.where(maxc == g, (b - r) / safe + 2, (r - g) / safe + 4))
    hue = torch.where(delta > 0, hue / 6, torch.zeros_like(hue))
    sat = delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc))  # 0 where maxc == 0 (delta is 0)
    return torch.stack([hue, sat, maxc], 1)


def _hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    h, s, v = x.unbind(1)
    chans = []
    for n in (5.0, 3.0, 1.0):
        k = (n + h * 6) % 6
        chans.append(v - v * s * torch.clamp(torch.minimum(k, 4 - k), 0, 1))
    return torch.stack(chans, 1)


def _shift_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """``F.adjust_hue`` with a per-image hue shift (fraction of a full turn, in [-0.5, 0.5])."""
    hsv = _rgb_to_hsv(x)
    hue = (hsv[:, 0] + shift.view(-1, 1, 1)) % 1.0
    return _hsv_to_rgb(torch.stack([hue, hsv[:, 1], hsv[:, 2]], 1))


_JITTER: tuple[Callable[[torch.Tensor, torch.Tensor], torch.Tensor], ...] = (
    lambda x, f: (x * f.view(-1, 1, 1, 1)).clamp(0.0, 1.0),  # brightness
    lambda x, f: _blend(x, _gray(x).mean(dim=(1, 2, 3), keepdim=True), f),  # contrast
    lambda x, f: _blend(x, _gray(x), f),  # saturation
    _shift_hue,  # hue
)


def color_jitter(x: torch.Tensor, g: torch.Generator, strength: tuple[float, float, float, float],
                 p: float) -> torch.Tensor:
    """torchvision ``RandomApply([ColorJitter(b, c, s, h)], p)`` on float [0,1] images, per image.

    Factors: brightness/contrast/saturation ~ U[max(0, 1-v), 1+v], hue ~ U[-h, h]; each image applies
    the four in its own random order.
    """
    n = len(x)
    b, c, s, hue = strength
    lo = torch.tensor([max(0.0, 1 - b), max(0.0, 1 - c), max(0.0, 1 - s), -hue])
    hi = torch.tensor([1 + b, 1 + c, 1 + s, hue])
    factors = lo + (hi - lo) * torch.rand(n, 4, generator=g)
    order = torch.argsort(torch.rand(n, 4, generator=g), dim=1)
    on = torch.rand(n, generator=g) < p
    out = x.clone()
    for pos in range(4):
        pos_ops = torch.where(on, order[:, pos], -1)
        for k in _present(pos_ops):
            sel = pos_ops == k
            out[sel] = _JITTER[k](out[sel], factors[sel, k])
    return out


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """``F.gaussian_blur`` (reflect padding) with a per-image sigma, as one grouped convolution."""
    n, c, h, w = x.shape
    t = torch.arange(kernel_size, dtype=torch.float32) - (kernel_size - 1) / 2
    k1 = torch.softmax(-(t[None, :] / sigma[:, None]) ** 2 / 2, dim=1)  # (N, k)
    k2 = (k1[:, :, None] * k1[:, None, :]).repeat_interleave(c, dim=0)[:, None]  # (N*C, 1, k, k)
    pad = kernel_size // 2
    xp = tF.pad(x.reshape(1, n * c, h, w), (pad, pad, pad, pad), mode="reflect")
    return tF.conv2d(xp, k2, groups=n * c).view(n, c, h, w)


def weak_view(x: torch.Tensor, g: torch.Generator, scale: tuple[float, float] = (0.2, 1.0),
              jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1), jitter_p: float = 0.8,
              gray_p: float = 0.2, blur_p: float = 0.5, blur_sigma: tuple[float, float] = (0.1, 2.0),
              hflip: bool = True) -> torch.Tensor:
    """RAHFL's "weak" SimCLR-style view x3 (float32, 0-255 scale).

    RandomResizedCrop(H x W, ``scale``, ratio 3/4-4/3, bilinear) with a random horizontal flip
    folded into the same resampling (flips commute with the colour ops and the symmetric blur),
    ColorJitter(0.4, 0.4, 0.4, 0.1) with p 0.8, grayscale p 0.2, Gaussian blur with sigma ~
    U(0.1, 2) p 0.5. Blur kernel size (our choice, not given by the code description): ~10 % of the
    image side, odd, at least 3 (3 for 32x32, as the common CIFAR SimCLR recipes use).
    """
    n, _, h, w = x.shape
    top, left, ch, cw = _resized_crop_boxes(n, (h, w), g, scale, (3 / 4, 4 / 3))
    flip = (torch.rand(n, generator=g) < 0.5) & hflip
    out = resized_crop(x.float() / 255.0, top, left, ch, cw, flip)
    out = color_jitter(out, g, jitter, jitter_p)
    gray = torch.rand(n, generator=g) < gray_p
    out = torch.where(gray.view(-1, 1, 1, 1), _gray(out).expand_as(out), out)
    sigma = blur_sigma[0] + (blur_sigma[1] - blur_sigma[0]) * torch.rand(n, generator=g)
    blur = torch.rand(n, generator=g) < blur_p
    if blur.any():
        kernel = max(3, (int(0.1 * min(h, w)) // 2) * 2 + 1)
        out[blur] = gaussian_blur(out[blur], sigma[blur], kernel)
    return (out * 255.0).clamp(0.0, 255.0)


# -- public data --------------------------------------------------------------------------------------
def public_view(x: torch.Tensor, g: torch.Generator, pad: int = 4, degrees: float = 15.0,
                hflip: bool = True) -> torch.Tensor:
    """The public-set augmentation: RandomCrop(pad 4, zero fill) + HFlip + RandomRotation(15 deg).

    The rotation uses torchvision's RandomRotation defaults (nearest neighbour, zero fill).
    """
    out = _crop_flip(x, g, pad, "constant", hflip)
    angle = (torch.rand(len(x), generator=g) * 2 - 1) * degrees
    return warp(out, rotation_matrix(angle), mode="nearest")


def hflip_ok(images: ImageSet) -> bool:
    """Whether random horizontal flips are allowed on this set (``data.hflip``, kept in its meta)."""
    return bool(images.meta.get("hflip", True))


def public_num_batches(n: int, batch_size: int) -> int:
    """Public batches per pass (``drop_last``; one short batch when the set is smaller than a batch)."""
    return max(n // batch_size, 1)


def public_batch(public: ImageSet, batch_idx: int, batch_size: int, seed: int,
                 augment: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch ``batch_idx`` of a seeded pass over the public set: (indices, normalised float images).

    The order is a permutation drawn from ``seed`` and the augmentation of each batch from
    ``(seed, batch_idx)``, so every client holding the same public set computes the identical batch
    without images being shipped. Pass a different ``seed`` per round to reshuffle.
    """
    from fedsim.trainers.base import seeded_generator  # local: keeps fedsim.data free of trainer imports

    n_batches = public_num_batches(len(public), batch_size)
    if not 0 <= batch_idx < n_batches:
        raise IndexError(f"public batch {batch_idx} out of range: {n_batches} batches of {batch_size}")
    order = torch.randperm(len(public), generator=seeded_generator("public-order", seed))
    idx = order[batch_idx * batch_size : (batch_idx + 1) * batch_size]
    x = public.x[idx]
    if augment:
        x = public_view(x, seeded_generator("public-augment", seed, batch_idx), hflip=hflip_ok(public))
    return idx, to_float(x, public.mean, public.std)
