"""Image data sources, all offline: scikit-learn digits, a procedural shape world, local datasets.

Every source returns ``(train, test)`` :class:`ImageSet` pairs of uint8 ``(N, 3, S, S)`` images.
``digits`` are real handwritten digits (scikit-learn's bundled 8x8 set, upsampled bilinearly and
replicated to RGB). ``synthetic`` draws coloured shapes from a seed: 12 shape classes with random
position, scale, rotation, colours and texture noise, so it is a real (if easy) 10+-class task and an
unlimited source of public images. ``glyphs`` (public only) is a near-domain public set for the digits
task: typeset letters and digits drawn white-on-black at 8x8 like scikit-learn's scans, then upsampled the
same way. ``cifar10``/``cifar100``/``imagefolder`` read a local directory with
torchvision (``download=False``) and raise :class:`~fedsim.errors.DataPathError` when it is missing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fedsim.data.base import ImageSet
from fedsim.errors import ConfigError, DataPathError
from fedsim.registry import DATASETS

DIGITS_STATS = ((0.12, 0.12, 0.12), (0.27, 0.27, 0.27))
CIFAR10_STATS = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
CIFAR100_STATS = ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
SHAPES_STATS = ((0.45, 0.45, 0.45), (0.25, 0.25, 0.25))


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    out = F.interpolate(x.float(), size=(size, size), mode="bilinear", align_corners=False)
    return out.round().clamp(0, 255).to(torch.uint8)


def _split(n: int, test_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=g)
    n_test = int(round(n * test_fraction))
    return perm[n_test:], perm[:n_test]


@DATASETS.register("digits")
def digits(image_size: int = 32, seed: int = 0, **_: object) -> tuple[ImageSet, ImageSet]:
    """scikit-learn's 1,797 handwritten digits (10 classes), 80/20 train/test split by seed."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy(d.images * (255.0 / 16.0)).round().to(torch.uint8)
    x = _resize(x.unsqueeze(1).expand(-1, 3, -1, -1), image_size)
    y = torch.from_numpy(d.target).long()
    tr, te = _split(len(y), 0.2, seed + 7919)
    mean, std = DIGITS_STATS
    return ImageSet(x[tr], y[tr], 10, mean, std, {"source": "digits"}), ImageSet(
        x[te], y[te], 10, mean, std, {"source": "digits"}
    )


def _shape_mask(c: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Indicator of shape class ``c`` in the rotated/scaled coordinates (u, v)."""
    r = np.sqrt(u * u + v * v)
    masks = {
        0: r < 1.0,  # disk
        1: np.maximum(abs(u), abs(v)) < 0.85,  # square
        2: (v > -0.8) & (v < 0.8) & (abs(u) < (0.8 - v) * 0.6),  # triangle
        3: ((abs(u) < 0.3) & (abs(v) < 1)) | ((abs(v) < 0.3) & (abs(u) < 1)),  # plus
        4: (r > 0.6) & (r < 1.0),  # ring
        5: (abs(u) < 1) & (abs(v) < 1) & (np.sin(v * 3 * np.pi) > 0),  # bars
        6: abs(u) + abs(v) < 1.0,  # diamond
        7: ((abs(u - v) < 0.35) | (abs(u + v) < 0.35)) & (r < 1.2),  # x
        8: (r < 1.0) & (v > 0),  # half disk
        9: ((u - 0.55) ** 2 + v**2 < 0.16) | ((u + 0.55) ** 2 + v**2 < 0.16),  # two dots
        10: (abs(u) < 1) & (abs(v) < 1) & ((np.floor(2 * u) + np.floor(2 * v)) % 2 == 0),  # checker
        11: (abs(v) < 0.25) & (abs(u) < 1.1),  # bar
    }
    return masks[c]


NUM_SHAPES = 12


def render_shapes(labels: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Draw one shape per label on a noisy two-colour background; returns uint8 (N, 3, S, S)."""
    n = len(labels)
    grid = (np.arange(size) + 0.5) / size * 2 - 1
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    out = np.empty((n, 3, size, size), dtype=np.uint8)
    for i, c in enumerate(labels):
        scale = rng.uniform(0.35, 0.7)
        cx, cy = rng.uniform(-0.9 + scale, 0.9 - scale, size=2)
        theta = rng.uniform(0, 2 * np.pi)
        du, dv = (xx - cx) / scale, (yy - cy) / scale
        u = np.cos(theta) * du + np.sin(theta) * dv
        v = -np.sin(theta) * du + np.cos(theta) * dv
        mask = _shape_mask(int(c), u, v)[None]
        fg, bg = rng.uniform(0, 255, size=(2, 3, 1, 1))
        while np.abs(fg - bg).mean() < 60:  # keep the shape visible
            fg = rng.uniform(0, 255, size=(3, 1, 1))
        img = np.where(mask, fg, bg) + rng.normal(0, 12, size=(3, size, size))
        out[i] = np.clip(img, 0, 255).astype(np.uint8)
    return out


@DATASETS.register("synthetic")
def synthetic(image_size: int = 32, seed: int = 0, num_classes: int = 10, num_train: int = 4000,
              num_test: int = 1000, **_: object) -> tuple[ImageSet, ImageSet]:
    """Procedural coloured shapes (up to 12 classes), balanced, generated from ``seed``."""
    if not 2 <= num_classes <= NUM_SHAPES:
        raise ConfigError(f"data.num_classes: {num_classes} out of range for synthetic; allowed [2, {NUM_SHAPES}]")
    rng = np.random.default_rng(seed + 104729)
    sets = []
    for n in (num_train, num_test):
        y = rng.permutation(np.arange(n) % num_classes)
        x = torch.from_numpy(render_shapes(y, image_size, rng))
        sets.append(ImageSet(x, torch.from_numpy(y).long(), num_classes, *SHAPES_STATS, {"source": "synthetic"}))
    return sets[0], sets[1]


def synthetic_public(size: int, image_size: int, seed: int) -> ImageSet:
    """Unlabelled public images from the shape world (labels -1), its own seed stream."""
    rng = np.random.default_rng(seed + 15485863)
    y = rng.integers(0, NUM_SHAPES, size=size)
    x = torch.from_numpy(render_shapes(y, image_size, rng))
    return ImageSet(x, torch.full((size,), -1, dtype=torch.long), NUM_SHAPES, *SHAPES_STATS, {"source": "synthetic"})


GLYPHS = "ABCDEFGHJKLMNPRSTUVWXYZabdefhkmnqrtuy0123456789"


def render_glyphs(chars: str, size: int, rng: np.random.Generator, low_res: int = 8) -> np.ndarray:
    """Typeset characters with random size, slant, stroke and offset, downsampled to ``low_res`` and
    brought back to ``size`` bilinearly, as the digits source does; returns uint8 (N, 3, S, S)."""
    from PIL import Image, ImageDraw, ImageFont

    canvas = 32
    out = np.empty((len(chars), 1, low_res, low_res), dtype=np.float32)
    for i, ch in enumerate(chars):
        font = ImageFont.load_default(size=int(rng.integers(18, 27)))
        img = Image.new("L", (canvas, canvas), 0)
        draw = ImageDraw.Draw(img)
        left, top, right, bottom = draw.textbbox((0, 0), ch, font=font, stroke_width=0)
        xy = ((canvas - (right - left)) / 2 - left, (canvas - (bottom - top)) / 2 - top)
        draw.text(xy, ch, fill=255, font=font, stroke_width=int(rng.integers(1, 3)), stroke_fill=255)
        img = img.rotate(float(rng.uniform(-20, 20)), resample=Image.BILINEAR)
        # crop a square around the ink so the glyph fills the frame, as the digit scans do
        x0, y0, x1, y1 = img.getbbox() or (0, 0, canvas, canvas)
        half = max(x1 - x0, y1 - y0) * rng.uniform(0.5, 0.6)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        box = tuple(int(round(v)) for v in (cx - half, cy - half, cx + half, cy + half))
        out[i, 0] = np.asarray(img.crop(box).resize((low_res, low_res), Image.BOX), dtype=np.float32)
    x = torch.from_numpy(np.clip(out, 0, 255).round().astype(np.uint8)).expand(-1, 3, -1, -1)
    return _resize(x, size).numpy()


def glyphs_public(size: int, image_size: int, seed: int) -> ImageSet:
    """Unlabelled near-domain public images for the digits task: typeset glyphs (labels -1)."""
    rng = np.random.default_rng(seed + 32452843)
    chars = "".join(rng.choice(list(GLYPHS), size=size))
    x = torch.from_numpy(render_glyphs(chars, image_size, rng))
    return ImageSet(x, torch.full((size,), -1, dtype=torch.long), len(GLYPHS), *DIGITS_STATS, {"source": "glyphs"})


def _require_dir(root: str | None, key: str) -> Path:
    if not root:
        raise DataPathError(f"{key}: a local dataset directory is required (nothing is downloaded)")
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DataPathError(f"{key}: directory not found: {path}")
    return path


def _from_torchvision(ds, num_classes: int, stats, image_size: int, name: str) -> ImageSet:
    x = torch.from_numpy(np.asarray(ds.data)).permute(0, 3, 1, 2).contiguous()
    y = torch.as_tensor(ds.targets).long()
    return ImageSet(_resize(x, image_size), y, num_classes, *stats, {"source": name})


def _cifar(cls_name: str, num_classes: int, stats):
    def load(root: str | None = None, image_size: int = 32, **_: object) -> tuple[ImageSet, ImageSet]:
        import torchvision

        path = _require_dir(root, "data.root")
        cls = getattr(torchvision.datasets, cls_name)
        try:
            train, test = (cls(str(path), train=t, download=False) for t in (True, False))
        except RuntimeError as exc:
            raise DataPathError(f"data.root: no {cls_name} files under {path} ({exc})") from None
        return (_from_torchvision(train, num_classes, stats, image_size, cls_name.lower()),
                _from_torchvision(test, num_classes, stats, image_size, cls_name.lower()))

    load.__doc__ = f"torchvision {cls_name} from a local root (download=False)."
    return load


DATASETS.register("cifar10")(_cifar("CIFAR10", 10, CIFAR10_STATS))
DATASETS.register("cifar100")(_cifar("CIFAR100", 100, CIFAR100_STATS))


@DATASETS.register("imagefolder")
def imagefolder(root: str | None = None, image_size: int = 32, seed: int = 0, **_: object):
    """torchvision ImageFolder: ``root/train`` and ``root/test`` if present, else an 80/20 split of ``root``."""
    from torchvision.datasets import ImageFolder

    path = _require_dir(root, "data.root")

    def load(p: Path) -> ImageSet:
        try:
            ds = ImageFolder(str(p))
        except (FileNotFoundError, RuntimeError) as exc:
            raise DataPathError(f"data.root: {p}: {exc}") from None
        imgs = [np.asarray(ds.loader(f).convert("RGB").resize((image_size, image_size))) for f, _ in ds.samples]
        x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).contiguous()
        y = torch.as_tensor([t for _, t in ds.samples]).long()
        return ImageSet(x, y, len(ds.classes), meta={"source": "imagefolder", "classes": ds.classes})

    if (path / "train").is_dir() and (path / "test").is_dir():
        return load(path / "train"), load(path / "test")
    full = load(path)
    tr, te = _split(len(full), 0.2, seed + 7919)
    return full.subset(tr), full.subset(te)


def load_source(name: str, *, root: str | None, image_size: int, seed: int, num_classes: int = 10,
                num_train: int = 4000, num_test: int = 1000) -> tuple[ImageSet, ImageSet]:
    fn = DATASETS.get(name, key="data.source")
    return fn(root=root, image_size=image_size, seed=seed, num_classes=num_classes, num_train=num_train,
              num_test=num_test)


def load_public(source: str, *, root: str | None, size: int, image_size: int, seed: int) -> ImageSet:
    """``size`` unlabelled images from ``source`` (labels dropped), sampled by ``seed``."""
    if source == "synthetic":
        return synthetic_public(size, image_size, seed)
    if source == "glyphs":
        return glyphs_public(size, image_size, seed)
    train, _ = load_source(source, root=root, image_size=image_size, seed=seed)
    g = torch.Generator().manual_seed(seed + 2)
    idx = torch.randperm(len(train), generator=g)[:size]
    pub = train.subset(idx)
    pub.y = torch.full((len(idx),), -1, dtype=torch.long)
    return pub
