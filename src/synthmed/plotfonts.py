"""Class names as matplotlib can draw them.

matplotlib's default font (DejaVu Sans) has no CJK glyphs: a class named 恶性 printed one
"Glyph ... missing" warning per character and drew boxes. :func:`drawable` picks an installed font
that has every character of the names (Noto CJK, WenQuanYi, ...); without one, plots label classes
by index (``class 0``, ``class 1``...), in the order of the report's class table, which is then the
legend.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence


@functools.lru_cache(maxsize=64)
def _charmap(path: str) -> frozenset[int]:
    from matplotlib.ft2font import FT2Font

    try:
        return frozenset(FT2Font(path).get_charmap())
    except (OSError, RuntimeError, ValueError):
        return frozenset()


@functools.lru_cache(maxsize=64)
def font_for(chars: frozenset[int]) -> str | None:
    """The family of a font covering ``chars``: the default font first, then any installed one;
    None when no installed font has them all."""
    from matplotlib import font_manager as fm

    default = fm.findfont(fm.FontProperties(), fallback_to_default=True)
    if chars <= _charmap(default):
        return fm.FontProperties(fname=default).get_name()
    for font in fm.fontManager.ttflist:
        if font.fname.lower().endswith((".ttf", ".otf", ".ttc")) and chars <= _charmap(font.fname):
            return font.name
    return None


def drawable(names: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """(labels, text keyword arguments) for class ``names``: the names with a font that has all
    their characters, else ``class K`` labels and no font."""
    names = [str(n) for n in names]
    chars = frozenset(ord(c) for n in names for c in n if not c.isspace())
    if all(c < 0x250 for c in chars):  # Latin: every default font has it, skip the font scan
        return names, {}
    family = font_for(chars)
    if family is None:
        return [f"class {k}" for k in range(len(names))], {}
    return names, {"fontfamily": family}
