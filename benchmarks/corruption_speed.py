"""Speed of the 15 CIFAR-10-C corruptions and of RAHFL's generator, plus a visual contact sheet.

Writes ``benchmarks/results/corruption_speed.md`` (the table printed) and
``benchmarks/results/corruptions.png``: one row per corruption, columns clean + severities 1..5, for a
natural photograph (scikit-learn's bundled ``china.jpg``, downscaled to 32x32 like a CIFAR image), a
procedural shape image and a handwritten digit (both from fedsim's offline sources).

    .venv/bin/python benchmarks/corruption_speed.py [--images 4000] [--per-type 200]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from fedsim.data.base import ImageSet
from fedsim.data.corruptions import CORRUPTIONS, CorruptionConfig, corrupt, corrupt_set, frost_source
from fedsim.data.sources import digits, synthetic

RESULTS = Path(__file__).parent / "results"
CELL = 96  # contact-sheet cell size in pixels (images are enlarged with nearest neighbour)


def photo(size: int = 32) -> np.ndarray:
    """A natural image at CIFAR resolution: the centre of scikit-learn's china.jpg, box-downscaled."""
    from sklearn.datasets import load_sample_image

    img = Image.fromarray(load_sample_image("china.jpg")).crop((120, 0, 547, 427))
    return np.asarray(img.resize((size, size), Image.Resampling.BOX))


def per_type_ms(images: np.ndarray, seed: int = 0) -> dict[str, float]:
    """Mean milliseconds per image for each corruption, severities 1..5 cycled."""
    rng = np.random.default_rng(seed)
    out = {}
    for name in CORRUPTIONS:
        corrupt(images[0], name, 1, rng)  # warm caches (kernels, zoom matrices, frost textures)
        t0 = time.perf_counter()
        for i, img in enumerate(images):
            corrupt(img, name, 1 + i % 5, rng)
        out[name] = (time.perf_counter() - t0) / len(images) * 1e3
    return out


def generator_seconds(images: ImageSet) -> float:
    t0 = time.perf_counter()
    corrupt_set(images, CorruptionConfig(rate=1.0, seed=0))
    return time.perf_counter() - t0


def contact_sheet(samples: list[np.ndarray], path: Path) -> None:
    label_w, head_h = 150, 22
    cols = 6 * len(samples)
    sheet = Image.new("RGB", (label_w + cols * CELL, head_h + len(CORRUPTIONS) * CELL), "white")
    draw = ImageDraw.Draw(sheet)
    for j in range(cols):
        draw.text((label_w + j * CELL + 4, 4), "clean" if j % 6 == 0 else f"sev {j % 6}", fill="black")
    for r, name in enumerate(CORRUPTIONS):
        draw.text((4, head_h + r * CELL + CELL // 2 - 6), name, fill="black")
        for s_idx, img in enumerate(samples):
            for sev in range(6):
                cell = img if sev == 0 else corrupt(img, name, sev, np.random.default_rng(r * 10 + sev))
                tile = Image.fromarray(cell).resize((CELL, CELL), Image.Resampling.NEAREST)
                sheet.paste(tile, (label_w + (s_idx * 6 + sev) * CELL, head_h + r * CELL))
    sheet.save(path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=4000, help="images for the full-generator timing")
    ap.add_argument("--per-type", type=int, default=200, help="images per corruption for per-type timing")
    args = ap.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)

    shapes32, _ = synthetic(image_size=32, seed=0, num_train=args.images, num_test=10)
    digits16, _ = digits(image_size=16, seed=0)
    reps = -(-args.images // len(digits16))
    digits16 = ImageSet(digits16.x.repeat(reps, 1, 1, 1)[: args.images],
                        digits16.y.repeat(reps)[: args.images], 10)
    ms32 = per_type_ms(shapes32.x[: args.per_type].permute(0, 2, 3, 1).numpy())
    ms16 = per_type_ms(digits16.x[: args.per_type].permute(0, 2, 3, 1).numpy())
    total32, total16 = generator_seconds(shapes32), generator_seconds(digits16)

    lines = [
        f"# Corruption speed (torch threads {torch.get_num_threads()}, frost textures: {frost_source()})",
        "",
        "| corruption | ms/image 32x32 | ms/image 16x16 |",
        "|---|---|---|",
        *(f"| {n} | {ms32[n]:.2f} | {ms16[n]:.2f} |" for n in CORRUPTIONS),
        f"| **mean over types** | {np.mean(list(ms32.values())):.2f} | {np.mean(list(ms16.values())):.2f} |",
        "",
        f"`corrupt_set`, rate 1, severities 1-4, all 15 types: {args.images} images 32x32 in "
        f"{total32:.1f} s; {args.images} images 16x16 in {total16:.1f} s.",
    ]
    table = "\n".join(lines) + "\n"
    print(table)
    (RESULTS / "corruption_speed.md").write_text(table)

    shape_img = shapes32.x[3].permute(1, 2, 0).numpy()
    digit_img = digits(image_size=32, seed=0)[0].x[0].permute(1, 2, 0).numpy()
    contact_sheet([photo(), shape_img, digit_img], RESULTS / "corruptions.png")
    print(f"wrote {RESULTS / 'corruptions.png'}")


if __name__ == "__main__":
    main()
