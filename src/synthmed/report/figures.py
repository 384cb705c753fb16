"""Figures for the report, rendered in memory and embedded as ``data:`` URIs (no files, no
network: the page is one self-contained file that opens offline and prints)."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import numpy as np

from synthmed.plotfonts import drawable

# Colour-blind-safe (Okabe & Ito 2008): real in blue, synthetic in vermillion, classes by marker.
REAL, SYNTH = "#0072B2", "#D55E00"
MARKERS = "os^Dv<>pPX*h"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def file_uri(path: Path, trim: bool = True) -> str | None:
    """A PNG from the run directory, with uniform white margins cropped (matplotlib leaves wide
    ones around fixed-size image grids)."""
    if not path.is_file():
        return None
    if not trim:
        return png_uri(path.read_bytes())
    from PIL import Image, ImageChops

    img = Image.open(path).convert("RGB")
    box = ImageChops.difference(img, Image.new("RGB", img.size, (255, 255, 255))).getbbox()
    if box:
        pad = 6
        img = img.crop((max(0, box[0] - pad), max(0, box[1] - pad),
                        min(img.width, box[2] + pad), min(img.height, box[3] + pad)))
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return png_uri(buf.getvalue())


def _fig_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    _plt().close(fig)
    return png_uri(buf.getvalue())


def grid_uri(images: np.ndarray, cols: int = 8, pad: int = 2, scale: int = 1) -> str | None:
    """uint8/uint16 images (N, C, H, W) as one tiled PNG (white gutters), upscaled ``scale``x so
    32 px images stay legible in print."""
    from PIL import Image

    if len(images) == 0:
        return None
    x = np.asarray(images)
    if x.dtype == np.uint16:
        x = (x // 257).astype(np.uint8)
    x = x.astype(np.uint8)
    n, c, h, w = x.shape
    cols = min(cols, n)
    rows = -(-n // cols)
    canvas = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad, c), 255, np.uint8)
    for i in range(n):
        r, k = divmod(i, cols)
        canvas[r * (h + pad):r * (h + pad) + h, k * (w + pad):k * (w + pad) + w] = \
            x[i].transpose(1, 2, 0)
    img = Image.fromarray(canvas[..., 0] if c == 1 else canvas)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return png_uri(buf.getvalue())


PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442",
           "#000000")  # Okabe & Ito (2008)


def loss_keys(records: list[dict[str, Any]]) -> list[str]:
    """Every ``loss_*`` key with a number in some record, in first-seen order."""
    keys: dict[str, None] = {}
    for r in records:
        for k, v in r.items():
            if k.startswith("loss_") and isinstance(v, (int, float)):
                keys.setdefault(k)
    return list(keys)


def loss_label(key: str, model: str | None = None) -> str:
    """Readable name of a logged loss (``loss_<name>``): the words a generator's descriptor gives
    it (``recipe.losses``), else the name as written, so a new method's curves need no edit."""
    from synthmed.generators import loss_words

    name = key.removeprefix("loss_")
    return loss_words(name, model) or name.replace("_", " ")


def recipe_line_drawn(recipe_steps: int | None, last_step: int | None) -> bool:
    """The recipe's step count is marked only inside the plotted steps (or just past them)."""
    return bool(recipe_steps and last_step and recipe_steps <= last_step * 1.05)


def curves_uri(records: list[dict[str, Any]], recipe_steps: int | None,
               model: str | None = None) -> str | None:
    """Every logged loss (one panel; methods log different ones: GANs ``loss_d``/``loss_g``,
    pix2pix adds ``loss_l1``, diffusion its noise MSE) and the ADA probability p, by step."""
    keys = loss_keys(records)
    rows = [r for r in records if r.get("step") is not None and any(k in r for k in keys)]
    if not rows:
        return None
    plt = _plt()
    has_p = any(r.get("aug_p") is not None for r in rows)
    fig, axes = plt.subplots(1, 2 if has_p else 1, figsize=(9 if has_p else 5.5, 2.8),
                             squeeze=False)
    ax = axes[0][0]
    for i, k in enumerate(keys):
        pts = [(r["step"], r[k]) for r in rows if isinstance(r.get(k), (int, float))]
        ax.plot([a for a, _ in pts], [b for _, b in pts], color=PALETTE[i % len(PALETTE)],
                label=loss_label(k, model))
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("Losses", fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    step = [r["step"] for r in rows]
    if has_p:
        ax2 = axes[0][1]
        ax2.plot(step, [r.get("aug_p") or 0.0 for r in rows], color="#009E73")
        ax2.set_ylim(0, 1)
        ax2.set_xlabel("step")
        ax2.set_ylabel("p")
        ax2.set_title("Augmentation probability (ADA)", fontsize=10)
    for a in axes[0]:
        a.spines[["top", "right"]].set_visible(False)
        if recipe_line_drawn(recipe_steps, max(step)):
            a.axvline(recipe_steps, color="grey", ls=":", lw=1)
    fig.tight_layout()
    return _fig_uri(fig)


def mask_tiles(masks: np.ndarray, channels: int) -> np.ndarray:
    """Label maps (N, H, W) or (N, 1, H, W) as uint8 images (N, C, H, W): background black,
    labels spread over grey levels up to white, so a binary mask reads as a white lesion."""
    m = np.asarray(masks)
    m = m.reshape(len(m), *m.shape[-2:]).astype(np.int64)
    top = max(1, int(m.max())) if m.size else 1
    g = (m * (255 // top)).clip(0, 255).astype(np.uint8)[:, None]
    return np.repeat(g, channels, axis=1)


def pairs_uri(masks: np.ndarray, images: np.ndarray, scale: int = 3) -> str | None:
    """Rows of (mask | image): what a mask-conditioned generator is given and what it made."""
    x = np.asarray(images)
    if x.dtype == np.uint16:
        x = (x // 257).astype(np.uint8)
    if len(x) == 0:
        return None
    tiles = np.stack([t for pair in zip(mask_tiles(masks, x.shape[1]), x.astype(np.uint8),
                                        strict=True) for t in pair])
    return grid_uri(tiles, cols=2, scale=scale)


def embedding_uri(emb: dict[str, Any]) -> str | None:
    """The t-SNE map: colour = real or synthetic, marker = class."""
    if not emb or not emb.get("x"):
        return None
    plt = _plt()
    x, y = np.array(emb["x"]), np.array(emb["y"])
    sets, classes = np.array(emb["set"]), np.array(emb["class"])
    fig, ax = plt.subplots(figsize=(5.6, 4.4))
    names = sorted(set(classes.tolist()))
    shown, font = drawable(names)  # CJK names without a CJK font: class K
    for s, colour in (("real", REAL), ("synthetic", SYNTH)):
        for k, cls in enumerate(names):
            sel = (sets == s) & (classes == cls)
            if sel.any():
                label = f"{s} {shown[k] if cls else ''}".strip()
                ax.scatter(x[sel], y[sel], s=16, c=colour, marker=MARKERS[k % len(MARKERS)],
                           alpha=0.75 if s == "real" else 0.55, label=label, linewidths=0)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=8, frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5),
              prop={"family": font["fontfamily"], "size": 8} if font else None)
    ax.set_title("t-SNE of real (test) and synthetic features", fontsize=10)
    fig.tight_layout()
    return _fig_uri(fig)
