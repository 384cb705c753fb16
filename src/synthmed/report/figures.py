"""Figures for the report, rendered in memory and embedded as ``data:`` URIs (no files, no
network: the page is one self-contained file that opens offline and prints)."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import numpy as np

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


def curves_uri(records: list[dict[str, Any]], recipe_steps: int | None) -> str | None:
    """Discriminator and generator loss, and the augmentation probability p, against step."""
    rows = [r for r in records if "loss_d" in r and r.get("step") is not None]
    if not rows:
        return None
    plt = _plt()
    step = [r["step"] for r in rows]
    has_p = any(r.get("aug_p") is not None for r in rows)
    fig, axes = plt.subplots(1, 2 if has_p else 1, figsize=(9 if has_p else 5.5, 2.8),
                             squeeze=False)
    ax = axes[0][0]
    ax.plot(step, [r["loss_d"] for r in rows], color=REAL, label="discriminator")
    ax.plot(step, [r["loss_g"] for r in rows], color=SYNTH, label="generator")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("Losses", fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    if has_p:
        ax2 = axes[0][1]
        ax2.plot(step, [r.get("aug_p") or 0.0 for r in rows], color="#009E73")
        ax2.set_ylim(0, 1)
        ax2.set_xlabel("step")
        ax2.set_ylabel("p")
        ax2.set_title("Augmentation probability (ADA)", fontsize=10)
    for a in axes[0]:
        a.spines[["top", "right"]].set_visible(False)
        if recipe_steps and recipe_steps <= max(step) * 1.05:
            a.axvline(recipe_steps, color="grey", ls=":", lw=1)
    fig.tight_layout()
    return _fig_uri(fig)


def embedding_uri(emb: dict[str, Any]) -> str | None:
    """The t-SNE map: colour = real or synthetic, marker = class."""
    if not emb or not emb.get("x"):
        return None
    plt = _plt()
    x, y = np.array(emb["x"]), np.array(emb["y"])
    sets, classes = np.array(emb["set"]), np.array(emb["class"])
    fig, ax = plt.subplots(figsize=(5.6, 4.4))
    for s, colour in (("real", REAL), ("synthetic", SYNTH)):
        for k, cls in enumerate(sorted(set(classes.tolist()))):
            sel = (sets == s) & (classes == cls)
            if sel.any():
                label = f"{s} {cls}".strip()
                ax.scatter(x[sel], y[sel], s=16, c=colour, marker=MARKERS[k % len(MARKERS)],
                           alpha=0.75 if s == "real" else 0.55, label=label, linewidths=0)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=8, frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.set_title("t-SNE of real (test) and synthetic features", fontsize=10)
    fig.tight_layout()
    return _fig_uri(fig)
