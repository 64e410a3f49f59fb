"""The report's charts as inline SVG text: no plotting library, no fonts or scripts fetched, and the same figures
give the same bytes (coordinates rounded to 0.1 px, no ids, no timestamps). Labels are escaped: repository names
and reasons are data. The SVG carries no xmlns: HTML5 puts an inline <svg> in the SVG namespace itself, and the report
holds no URL.
"""

from __future__ import annotations

import html
import math

PALETTE = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c", "#ccb974",
           "#64b5cd")
CHAR_W = 6.6  # px per character of an 11 px sans-serif label: enough to lay out the left margin
MAX_LABEL = 44


def _f(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _t(s: object) -> str:
    return html.escape(str(s), quote=True)


def _label(s: object) -> str:
    s = "".join(ch if ch.isprintable() else "?" for ch in str(s))
    return s if len(s) <= MAX_LABEL else s[: MAX_LABEL - 1] + "…"


def _num(v: float) -> str:
    """An axis or bar figure, short: 9,876 · 12.3k · 4.56M · 7.89G."""
    if not float(v).is_integer():
        return f"{v:.3g}"
    for suffix, size in (("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if abs(v) >= max(size, 10**4):
            return f"{v / size:.3g}{suffix}"
    return f"{int(v):,}"


def ticks(top: float, n: int = 5) -> list[float]:
    """0 and round steps (1, 2, 5 × 10^k) up to at least `top`, at most n + 1 of them."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    return [i * step for i in range(int(math.ceil(top / step - 1e-9)) + 1)]


def _legend(names: list[str], x: float, y: float) -> list[str]:
    out, cx = [], x
    for i, name in enumerate(names):
        out.append(f'<rect x="{_f(cx)}" y="{_f(y - 9)}" width="10" height="10" fill="{PALETTE[i % len(PALETTE)]}"/>'
                   f'<text x="{_f(cx + 14)}" y="{_f(y)}">{_t(_label(name))}</text>')
        cx += 14 + CHAR_W * len(_label(name)) + 16
    return out


def _svg(width: float, height: float, title: str, body: list[str]) -> str:
    return (f'<svg class="chart" width="{_f(width)}" height="{_f(height)}" viewBox="0 0 {_f(width)} {_f(height)}" '
            f'role="img" aria-label="{_t(title)}" font-family="sans-serif" font-size="11">'
            f'<title>{_t(title)}</title><text x="4" y="16" font-size="13" font-weight="bold">{_t(title)}</text>'
            + "".join(body) + "</svg>")


def bars(labels: list[str], series: dict[str, list[float]], *, title: str, xlabel: str, width: float = 760) -> str:
    """Horizontal bars, one per label (top to bottom), stacked by series, each with its total at its end; a legend
    when there is more than one series."""
    names = list(series)
    totals = [sum(series[s][i] for s in names) for i in range(len(labels))]
    left = 12 + CHAR_W * max([len(_label(x)) for x in labels] + [4])
    right, row = 64, 18
    top = 30 + (18 if len(names) > 1 else 0)
    plot_w = max(120.0, width - left - right)
    grid = ticks(max(totals, default=0))
    scale = plot_w / grid[-1]
    height = top + row * max(len(labels), 1) + 40
    body = _legend(names, left, 40) if len(names) > 1 else []
    for v in grid:
        x = left + v * scale
        body.append(f'<line x1="{_f(x)}" y1="{_f(top - 4)}" x2="{_f(x)}" y2="{_f(height - 34)}" stroke="#ddd"/>'
                    f'<text x="{_f(x)}" y="{_f(height - 22)}" text-anchor="middle">{_t(_num(v))}</text>')
    for i, label in enumerate(labels):
        y = top + i * row
        body.append(f'<text x="{_f(left - 6)}" y="{_f(y + 12)}" text-anchor="end">{_t(_label(label))}</text>')
        x = left
        for j, name in enumerate(names):
            w = series[name][i] * scale
            if w > 0:
                body.append(f'<rect x="{_f(x)}" y="{_f(y + 2)}" width="{_f(w)}" height="{row - 5}" '
                            f'fill="{PALETTE[j % len(PALETTE)]}"><title>{_t(_label(label))} · {_t(name)}: '
                            f'{_t(_num(series[name][i]))}</title></rect>')
            x += w
        body.append(f'<text x="{_f(x + 4)}" y="{_f(y + 12)}">{_t(_num(totals[i]))}</text>')
    body.append(f'<text x="{_f(left + plot_w / 2)}" y="{_f(height - 6)}" text-anchor="middle">{_t(xlabel)}</text>')
    return _svg(width, height, title, body)


def histogram(bins: list[str], series: dict[str, list[int]], *, title: str, xlabel: str, ylabel: str,
              width: float = 760, height: float = 260) -> str:
    """Vertical bars, one per bin (left to right), stacked by series; a legend when there is more than one."""
    names = list(series)
    totals = [sum(series[s][i] for s in names) for i in range(len(bins))]
    left, right, top, bottom = 56, 12, 30 + (18 if len(names) > 1 else 0), 48
    plot_w, plot_h = width - left - right, height - top - bottom
    grid = ticks(max(totals, default=0))
    scale = plot_h / grid[-1]
    slot = plot_w / max(len(bins), 1)
    body = _legend(names, left, 40) if len(names) > 1 else []
    for v in grid:
        y = top + plot_h - v * scale
        body.append(f'<line x1="{left}" y1="{_f(y)}" x2="{_f(left + plot_w)}" y2="{_f(y)}" stroke="#ddd"/>'
                    f'<text x="{left - 6}" y="{_f(y + 4)}" text-anchor="end">{_t(_num(v))}</text>')
    for i, b in enumerate(bins):
        x, y = left + i * slot, top + plot_h
        for j, name in enumerate(names):
            h = series[name][i] * scale
            if h > 0:
                y -= h
                body.append(f'<rect x="{_f(x + 1)}" y="{_f(y)}" width="{_f(max(slot - 2, 1))}" height="{_f(h)}" '
                            f'fill="{PALETTE[j % len(PALETTE)]}"><title>{_t(b)} · {_t(name)}: '
                            f'{_t(_num(series[name][i]))}</title></rect>')
        body.append(f'<text x="{_f(x + slot / 2)}" y="{_f(top + plot_h + 14)}" text-anchor="middle">{_t(b)}</text>')
    body.append(f'<text x="{_f(left + plot_w / 2)}" y="{_f(height - 8)}" text-anchor="middle">{_t(xlabel)}</text>')
    body.append(f'<text x="12" y="{_f(top + plot_h / 2)}" text-anchor="middle" '
                f'transform="rotate(-90 12 {_f(top + plot_h / 2)})">{_t(ylabel)}</text>')
    return _svg(width, height, title, body)
