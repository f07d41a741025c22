"""Procedural image-caption pairs: the embedded default data of ONE-PEACE's vision-language stage.

Each image shows one shape (circle, square, triangle, diamond, cross, ring, horizontal / vertical bar) of one colour
(red, green, blue, yellow, magenta, cyan, white, orange), small or large, in one of five positions (top left, top
right, bottom left, bottom right, centre), drawn over a random dark textured background with a little jitter of
position, size and colour. Captions name the attributes in several phrasings ("a large red circle in the top left",
"top left: a red circle, large", ...). Everything is drawn with numpy; no download, ever.

Determinism: sample ``i`` is drawn from ``numpy.random.default_rng([seed, i])``, so it depends only on
``(seed, i, image_size)``; different seeds give different (held-out) samples.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["SHAPES", "COLOURS", "POSITIONS", "SIZES", "canonical_caption", "draw_sample",
           "make_synthetic_image_dataset"]

SHAPES = ("circle", "square", "triangle", "diamond", "cross", "ring", "horizontal bar", "vertical bar")
COLOURS = {
    "red": (220, 40, 40), "green": (40, 190, 60), "blue": (50, 80, 230), "yellow": (230, 220, 40),
    "magenta": (210, 50, 210), "cyan": (40, 210, 220), "white": (235, 235, 235), "orange": (240, 140, 30),
}
POSITIONS = {"top left": (0.27, 0.27), "top right": (0.27, 0.73), "bottom left": (0.73, 0.27),
             "bottom right": (0.73, 0.73), "centre": (0.5, 0.5)}
SIZES = {"small": 0.13, "large": 0.22}
TEMPLATES = (
    "a {size} {colour} {shape} in the {position}",
    "{position}: a {colour} {shape}, {size}",
    "there is a {size} {colour} {shape} at the {position}",
    "a picture of a {colour} {shape} ({size}) in the {position}",
)


def canonical_caption(shape: str, colour: str, position: str, size: str) -> str:
    return TEMPLATES[0].format(shape=shape, colour=colour, position=position, size=size)


def _shape_mask(shape: str, yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, r: float) -> np.ndarray:
    dy, dx = yy - cy, xx - cx
    if shape == "circle":
        return dy ** 2 + dx ** 2 <= r ** 2
    if shape == "ring":
        d = np.sqrt(dy ** 2 + dx ** 2)
        return (d <= r) & (d >= 0.55 * r)
    if shape == "square":
        return (np.abs(dy) <= 0.85 * r) & (np.abs(dx) <= 0.85 * r)
    if shape == "diamond":
        return np.abs(dy) + np.abs(dx) <= 1.15 * r
    if shape == "triangle":  # apex up
        return (dy <= 0.8 * r) & (dy >= -r) & (np.abs(dx) <= (dy + r) * 0.6)
    if shape == "cross":
        w = 0.3 * r
        return ((np.abs(dy) <= w) & (np.abs(dx) <= r)) | ((np.abs(dx) <= w) & (np.abs(dy) <= r))
    if shape == "horizontal bar":
        return (np.abs(dy) <= 0.3 * r) & (np.abs(dx) <= 1.2 * r)
    if shape == "vertical bar":
        return (np.abs(dx) <= 0.3 * r) & (np.abs(dy) <= 1.2 * r)
    raise ValueError(f"unknown shape {shape!r}; choose one of {SHAPES}")


def draw_sample(index: int, *, seed: int = 0, image_size: int = 64):
    """``(image uint8 (S, S, 3), attributes dict)`` of sample ``index``."""
    rng = np.random.default_rng([int(seed), int(index)])
    shape = SHAPES[rng.integers(len(SHAPES))]
    colour = list(COLOURS)[rng.integers(len(COLOURS))]
    position = list(POSITIONS)[rng.integers(len(POSITIONS))]
    size = list(SIZES)[rng.integers(len(SIZES))]
    s = image_size
    # dark textured background: low-frequency noise + grain
    coarse = rng.uniform(0, 60, size=(4, 4, 3))
    reps = int(np.ceil(s / 4))
    bg = np.kron(coarse, np.ones((reps, reps, 1)))[:s, :s] + rng.normal(0, 8, size=(s, s, 3))
    img = np.clip(bg, 0, 255)
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float64) + 0.5
    cy, cx = POSITIONS[position]
    cy = (cy + rng.uniform(-0.04, 0.04)) * s
    cx = (cx + rng.uniform(-0.04, 0.04)) * s
    r = SIZES[size] * s * rng.uniform(0.9, 1.1)
    mask = _shape_mask(shape, yy, xx, cy, cx, r)
    rgb = np.clip(np.array(COLOURS[colour], dtype=np.float64) + rng.normal(0, 12, size=3), 0, 255)
    img[mask] = rgb
    attrs = {"shape": shape, "colour": colour, "position": position, "size": size}
    return img.astype(np.uint8), attrs


def make_synthetic_image_dataset(num_samples: int = 512, *, image_size: int = 64, seed: int = 0):
    """A ``datasets.Dataset`` of ``num_samples`` image-caption pairs.

    Columns: ``image`` (``datasets.Image``), ``caption`` (one of the templates, chosen per sample), ``captions`` (all
    template phrasings), ``canonical_caption`` (the first template), ``shape``, ``colour``, ``position``, ``size``.
    """
    import datasets
    from PIL import Image

    if isinstance(num_samples, bool) or not isinstance(num_samples, numbers.Integral) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}")
    if not isinstance(image_size, numbers.Integral) or image_size < 16:
        raise ValueError(f"image_size must be an integer >= 16, got {image_size!r}")
    cols = {k: [] for k in ("image", "caption", "captions", "canonical_caption", "shape", "colour", "position",
                            "size")}
    for i in range(int(num_samples)):
        img, attrs = draw_sample(i, seed=seed, image_size=int(image_size))
        caps = [t.format(**attrs) for t in TEMPLATES]
        pick = np.random.default_rng([int(seed), int(i), 1]).integers(len(caps))
        cols["image"].append(Image.fromarray(img))
        cols["caption"].append(caps[pick])
        cols["captions"].append(caps)
        cols["canonical_caption"].append(caps[0])
        for k, v in attrs.items():
            cols[k].append(v)
    features = datasets.Features({
        "image": datasets.Image(), "caption": datasets.Value("string"),
        "captions": datasets.List(datasets.Value("string")), "canonical_caption": datasets.Value("string"),
        "shape": datasets.Value("string"), "colour": datasets.Value("string"),
        "position": datasets.Value("string"), "size": datasets.Value("string"),
    })
    return datasets.Dataset.from_dict(cols, features=features)
