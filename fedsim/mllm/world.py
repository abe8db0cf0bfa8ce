"""A seeded procedural multimodal world: scenes of shapes and handwritten digits, captions and QA pairs.

The ground for fedsim's MLLM experiments (LoRASculpt, arXiv 2503.16843; the tuning taxonomy, arXiv
2503.04543; and the BYE / safety / GIFT / SynTBPR issues that need image-text data offline). No file
is downloaded: objects are drawn with numpy and digits come from scikit-learn's bundled handwritten
digits, upscaled into one cell of the scene.

A scene is a ``grid x grid`` layout of cells; each of 1..``max_objects`` objects (shape, colour,
size, small positional jitter) sits in its own cell, colours are distinct within a scene (so a colour
names one object) while shapes may repeat (so counting is meaningful). A scene may also hold one digit.

Question *families* are the task units. The default split mirrors the papers' protocol:
``UPSTREAM`` = general perception (colour, shape, count, left/right, top/bottom, size, existence)
and ``DOWNSTREAM`` = a shifted specialised task, reading the digit (read, parity, greater-than-four,
successor). Downstream answers reuse upstream answer words ("one", "yes", ...), so tuning on the
downstream task can overwrite upstream behaviour: the forgetting the E/F/O metrics measure.
Digit images are split by parity of their index in scikit-learn's set: ``split="train"`` draws from
even indices, ``"test"`` from odd ones, so test digits are unseen handwriting.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch

from fedsim.errors import ConfigError

SHAPES = ("circle", "square", "triangle", "cross")
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40), "green": (40, 200, 60), "blue": (60, 90, 240),
    "yellow": (230, 220, 40), "purple": (170, 60, 210), "cyan": (40, 210, 210),
}
SIZES = {"small": 0.22, "large": 0.42}  # half-extent as a fraction of the cell side
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
UPSTREAM = ("color", "shape", "count", "horizontal", "vertical", "size", "exists")
DOWNSTREAM = ("digit_read", "digit_parity", "digit_big", "digit_next")


@dataclass
class WorldConfig:
    """Knobs of the world; every random choice derives from ``seed`` (and the split / size asked)."""

    image_size: int = 32
    grid: int = 2
    max_objects: int = 3
    #: probability that a scene for an upstream family also holds a (distractor) digit
    digit_prob: float = 0.3
    noise: float = 6.0  # std of the background pixel noise (0-255 scale)
    upstream: tuple[str, ...] = UPSTREAM
    downstream: tuple[str, ...] = DOWNSTREAM
    seed: int = 0

    def __post_init__(self) -> None:
        self.upstream, self.downstream = tuple(self.upstream), tuple(self.downstream)
        for key in ("upstream", "downstream"):
            bad = [f for f in getattr(self, key) if f not in FAMILIES]
            if bad:
                raise ConfigError(f"world.{key}: unknown families {bad}; choose from {sorted(FAMILIES)}")
        if self.max_objects < 1 or self.max_objects >= self.grid * self.grid:
            raise ConfigError(f"world.max_objects must be in [1, grid*grid-1], got {self.max_objects}")
        if self.image_size % self.grid:
            raise ConfigError(f"world.image_size {self.image_size} must be a multiple of grid {self.grid}")


@dataclass(frozen=True)
class Obj:
    shape: str
    size: str
    cell: int
    jitter: tuple[int, int]
    color: str


@dataclass(frozen=True)
class Scene:
    objects: tuple[Obj, ...]
    digit: int | None = None  # the digit's value
    digit_cell: int | None = None
    digit_index: int | None = None  # row in scikit-learn's digits set


@dataclass
class MMDataset:
    """Images (uint8, N x 3 x H x W) with one question/answer pair each, their family and a caption."""

    images: torch.Tensor
    questions: list[str]
    answers: list[str]
    families: list[str]
    captions: list[str]
    scenes: list[Scene] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.questions)

    def subset(self, idx: Sequence[int] | torch.Tensor) -> MMDataset:
        idx = [int(i) for i in idx]
        return MMDataset(self.images[idx], [self.questions[i] for i in idx], [self.answers[i] for i in idx],
                         [self.families[i] for i in idx], [self.captions[i] for i in idx],
                         [self.scenes[i] for i in idx] if self.scenes else [])

    def by_family(self) -> dict[str, MMDataset]:
        out: dict[str, list[int]] = {}
        for i, f in enumerate(self.families):
            out.setdefault(f, []).append(i)
        return {f: self.subset(ix) for f, ix in out.items()}


# -- scenes ---------------------------------------------------------------------------------------
def cell_name(cell: int, grid: int) -> tuple[str, str]:
    """(horizontal, vertical) words of a cell: column left/right half, row top/bottom half."""
    row, col = divmod(cell, grid)
    return ("left" if col < grid / 2 else "right"), ("top" if row < grid / 2 else "bottom")


def random_scene(cfg: WorldConfig, rng: np.random.Generator, digit_pool: np.ndarray,
                 with_digit: bool) -> Scene:
    n_obj = int(rng.integers(1, cfg.max_objects + 1))
    cells = rng.permutation(cfg.grid * cfg.grid)
    colors = rng.permutation(len(COLORS))[:n_obj]
    u = rng.random((n_obj, 4))  # shape, size, jitter x, jitter y: one vectorised draw per scene
    max_jit = max(1, cfg.image_size // cfg.grid // 8)
    names = list(COLORS)
    objs = tuple(
        Obj(SHAPES[int(u[i, 0] * len(SHAPES))], "large" if u[i, 1] < 0.5 else "small", int(cells[i]),
            jitter=(int(u[i, 2] * (2 * max_jit + 1)) - max_jit, int(u[i, 3] * (2 * max_jit + 1)) - max_jit),
            color=names[int(colors[i])])
        for i in range(n_obj)
    )
    if not with_digit:
        return Scene(objs)
    d_index = int(digit_pool[int(rng.integers(len(digit_pool)))])
    return Scene(objs, int(_digits()[1][d_index]), int(cells[n_obj]), d_index)


@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images / 16.0).astype(np.float32), d.target.astype(np.int64)


def digit_pool(split: str) -> np.ndarray:
    if split not in ("train", "test"):
        raise ConfigError(f"world split must be 'train' or 'test', got {split!r}")
    n = len(_digits()[1])
    return np.arange(0 if split == "train" else 1, n, 2)


@lru_cache(maxsize=8)
def _grid_coords(side: int) -> tuple[np.ndarray, np.ndarray]:
    c = np.arange(side, dtype=np.float32) - (side - 1) / 2
    return np.meshgrid(c, c, indexing="xy")


@lru_cache(maxsize=4096)
def shape_mask(shape: str, side: int, half: float, jitter: tuple[int, int]) -> np.ndarray:
    """Boolean mask of a shape of half-extent ``half`` centred (plus jitter) in a ``side`` cell."""
    xx, yy = _grid_coords(side)
    dx, dy = xx - jitter[0], yy - jitter[1]
    if shape == "circle":
        return dx * dx + dy * dy <= half * half
    if shape == "square":
        return np.maximum(np.abs(dx), np.abs(dy)) <= half
    if shape == "triangle":  # apex up: width grows linearly from top to bottom
        return (np.abs(dy) <= half) & (np.abs(dx) <= (dy + half) / 2)
    if shape == "cross":
        bar = half / 3
        return ((np.abs(dx) <= half) & (np.abs(dy) <= bar)) | ((np.abs(dy) <= half) & (np.abs(dx) <= bar))
    raise ValueError(shape)


@lru_cache(maxsize=4)
def _digit_sprites(side: int) -> np.ndarray:
    """All scikit-learn digits upscaled (bilinear) to ``side x side`` uint8 sprites, computed once."""
    g = torch.from_numpy(_digits()[0])[:, None]
    g = torch.nn.functional.interpolate(g, size=(side, side), mode="bilinear", align_corners=False)[:, 0]
    return (255.0 * g.clamp(0, 1)).round().to(torch.uint8).numpy()


def render(scene: Scene, cfg: WorldConfig, canvas: np.ndarray) -> np.ndarray:
    """Draw ``scene`` onto ``canvas`` (uint8 H x W x 3, e.g. background noise) in place; returns it."""
    side = cfg.image_size // cfg.grid
    for o in scene.objects:
        m = shape_mask(o.shape, side, SIZES[o.size] * side, o.jitter)
        r, c = divmod(o.cell, cfg.grid)
        canvas[r * side:(r + 1) * side, c * side:(c + 1) * side][m] = COLORS[o.color]
    if scene.digit_index is not None:
        r, c = divmod(scene.digit_cell, cfg.grid)
        patch = canvas[r * side:(r + 1) * side, c * side:(c + 1) * side]
        np.maximum(patch, _digit_sprites(side)[scene.digit_index][..., None], out=patch)
    return canvas


def background(cfg: WorldConfig, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` dark noisy canvases (uint8 N x H x W x 3), drawn in one vectorised call."""
    shape = (n, cfg.image_size, cfg.image_size, 3)
    noise = rng.standard_normal(shape, dtype=np.float32) * np.float32(cfg.noise) + np.float32(20.0)
    return np.clip(noise, 0, 255).astype(np.uint8)


def caption(scene: Scene, grid: int) -> str:
    parts = []
    for o in sorted(scene.objects, key=lambda o: o.cell):
        h, v = cell_name(o.cell, grid)
        parts.append(f"a {o.size} {o.color} {o.shape} at the {v} {h}")
    if scene.digit is not None:
        h, v = cell_name(scene.digit_cell, grid)
        parts.append(f"the digit {NUMBER_WORDS[scene.digit]} at the {v} {h}")
    return " , ".join(parts) + " ."


# -- question families ----------------------------------------------------------------------------
# Each takes (scene, rng, grid) and returns (question, answer) or None when the scene cannot pose it.
QA = tuple[str, str] | None


def _pick(rng: np.random.Generator, objs: Sequence[Obj]) -> Obj:
    return objs[int(rng.integers(len(objs)))]


def q_color(s: Scene, rng: np.random.Generator, grid: int) -> QA:
    unique = [o for o in s.objects if sum(p.shape == o.shape for p in s.objects) == 1]
    if not unique:
        return None
    o = _pick(rng, unique)
    return f"what color is the {o.shape} ?", o.color


def q_shape(s: Scene, rng: np.random.Generator, grid: int) -> QA:
    o = _pick(rng, s.objects)
    return f"what shape is the {o.color} object ?", o.shape


def q_count(s: Scene, rng: np.random.Generator, grid: int) -> QA:
    # mostly ask about a shape that is present, so answers are not dominated by "zero"
    shape = _pick(rng, s.objects).shape if rng.random() < 0.75 else SHAPES[int(rng.integers(len(SHAPES)))]
    return f"how many {shape}s are there ?", NUMBER_WORDS[sum(o.shape == shape for o in s.objects)]


def q_horizontal(s: Scene, rng: np.random.Generator, grid: int) -> QA:
    o = _pick(rng, s.objects)
    return f"is the {o.color} {o.shape} on the left or right ?", cell_name(o.cell, grid)[0]


def q_vertical(s: Scene, rng: np.random.Generator, grid: int) -> QA:
    o = _pick(rng, s.objects)
    return f"is the {o.color} {o.shape} at the top or bottom ?", cell_name(o.cell, grid)[1]


def q_size(s: Scene, rng: np.random.Generator, grid: int) -> QA:
    o = _pick(rng, s.objects)
    return f"is the {o.color} {o.shape} small or large ?", o.size


def q_exists(s: Scene, rng: np.random.Generator, grid: int) -> QA:
    if rng.random() < 0.5:
        o = _pick(rng, s.objects)
        return f"is there a {o.color} {o.shape} ?", "yes"
    present = {(o.color, o.shape) for o in s.objects}
    absent = [(c, sh) for c in COLORS for sh in SHAPES if (c, sh) not in present]
    c, sh = absent[int(rng.integers(len(absent)))]
    return f"is there a {c} {sh} ?", "no"


def q_digit_read(s: Scene, rng: np.random.Generator, grid: int) -> QA:
    return "what digit is written ?", NUMBER_WORDS[s.digit]


def q_digit_parity(s: Scene, rng: np.random.Generator, grid: int) -> QA:
    return "is the digit even or odd ?", "odd" if s.digit % 2 else "even"


def q_digit_big(s: Scene, rng: np.random.Generator, grid: int) -> QA:
    return "is the digit greater than four ?", "yes" if s.digit > 4 else "no"


def q_digit_next(s: Scene, rng: np.random.Generator, grid: int) -> QA:
    return "what number comes after the digit ?", NUMBER_WORDS[(s.digit + 1) % 10]


def q_caption(s: Scene, rng: np.random.Generator, grid: int) -> QA:
    return "describe the image .", caption(s, grid)


FAMILIES: dict[str, Callable[[Scene, np.random.Generator, int], QA]] = {
    "color": q_color, "shape": q_shape, "count": q_count, "horizontal": q_horizontal,
    "vertical": q_vertical, "size": q_size, "exists": q_exists, "digit_read": q_digit_read,
    "digit_parity": q_digit_parity, "digit_big": q_digit_big, "digit_next": q_digit_next,
    "caption": q_caption,
}
NEEDS_DIGIT = frozenset(f for f in FAMILIES if f.startswith("digit_"))


# -- datasets -------------------------------------------------------------------------------------
def build_dataset(cfg: WorldConfig, families: Sequence[str], n: int, split: str = "train",
                  seed: int | None = None) -> MMDataset:
    """``n`` samples with families drawn uniformly from ``families``; seeded by (cfg.seed, split, seed)."""
    bad = [f for f in families if f not in FAMILIES]
    if bad or not families:
        raise ConfigError(f"world families: unknown or empty {bad or list(families)}; "
                          f"choose from {sorted(FAMILIES)}")
    rng = np.random.default_rng([cfg.seed, 0 if split == "train" else 1, 0 if seed is None else seed + 1])
    pool = digit_pool(split)
    canvases = background(cfg, rng, n)
    qs, ans, fams, caps, scenes = [], [], [], [], []
    for i in range(n):
        fam = families[int(rng.integers(len(families)))]
        qa = None
        while qa is None:
            scene = random_scene(cfg, rng, pool, fam in NEEDS_DIGIT or rng.random() < cfg.digit_prob)
            qa = FAMILIES[fam](scene, rng, cfg.grid)
        render(scene, cfg, canvases[i])
        qs.append(qa[0])
        ans.append(qa[1])
        fams.append(fam)
        caps.append(caption(scene, cfg.grid))
        scenes.append(scene)
    images = torch.from_numpy(np.ascontiguousarray(canvases.transpose(0, 3, 1, 2)))
    return MMDataset(images, qs, ans, fams, caps, scenes)


def vocabulary(cfg: WorldConfig | None = None) -> list[str]:
    """Every word the world can emit (questions, answers, captions), in a fixed order."""
    words = ["what", "color", "is", "the", "shape", "object", "how", "many", "are", "there", "on", "left",
             "or", "right", "at", "top", "bottom", "small", "large", "a", "yes", "no", "digit", "written",
             "even", "odd", "greater", "than", "number", "comes", "after", "describe", "image", "?", ",", "."]
    words += list(SHAPES) + [s + "s" for s in SHAPES] + list(COLORS) + list(NUMBER_WORDS)
    return list(dict.fromkeys(words))
