"""The bench's figure (``--plot``): one panel per kind of number (speed-ups, other ratios,
start-up seconds), a bar per row coloured by its verdict, targets as neutral ticks, and
each value written in a column right of its panel, where no marker or bar can cover it."""

import numpy as np

from .common import load_pyplot
from .report import fmt_result, fmt_target

# (metrics, panel title, x-axis label) in the order of the panels
PANELS = (
    (("speed-up",), "speed-ups: fastbp over sklearn, and 2 threads over 1",
     "times faster (log scale)"),
    (("fraction", "slowdown"),
     "other ratios: GFLOP/s over a GEMM's; own-shape GEMM time over fastbp's; busy over quiet",
     "ratio (log scale)"),
    (("seconds",), "start-up: import + first fit in a fresh process", "seconds"),
)
VERDICT_COLOURS = {
    "met": "#4c9a2a",
    "missed": "#c8553d",
    "within noise": "#e9b949",
    "report": "#a0a0a0",
}
TARGET_STYLE = dict(marker="|", color="#333333", markersize=14, markeredgewidth=2,
                    linestyle="none")
ROW_HEIGHT = 0.32  # inches per bar: a text line at 8 points with room between lines
FONT_SIZE = 8


def _value_text(row):
    value = f"{row.value:.3g} s" if row.metric == "seconds" else f"{row.value:.2f}"
    value += "x" if row.metric in ("speed-up", "slowdown") else ""
    target = "" if row.target is None else f", target {fmt_target(row)}"
    return f"{value}{target}: {fmt_result(row)}"


def _markers(ax, rows, ypos, value_of, label, **style):
    """One marker per row that has a value (``value_of(row)`` not None)."""
    points = [(value_of(row), y) for y, row in zip(ypos, rows, strict=True)]
    points = [(v, y) for v, y in points if v is not None]
    if points:
        ax.plot([v for v, _ in points], [y for _, y in points], label=label, **style)


def _log_axis(ax, low, high):
    """A log x axis from ``low`` to ``high`` labelled at 1-2-5 steps only (matplotlib's
    own labels vanish on spans under a decade and crowd on long ones)."""
    ax.set_xscale("log")
    ax.set_xlim(low, high)
    decades = range(int(np.floor(np.log10(low))), int(np.ceil(np.log10(high))) + 1)
    ticks = [m * 10.0**d for d in decades for m in (1, 2, 5) if low <= m * 10.0**d <= high]
    if len(ticks) > 9:  # long spans: decades only
        ticks = [t for t in ticks if np.log10(t) == round(np.log10(t))]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.set_xticks([], minor=True)


def _panel(ax, rows, title, xlabel):
    ypos = np.arange(len(rows))[::-1]
    ax.barh(ypos, [row.value for row in rows], height=0.6,
            color=[VERDICT_COLOURS[row.verdict] for row in rows])
    _markers(ax, rows, ypos, lambda r: r.target, "target", **TARGET_STYLE)
    _markers(ax, rows, ypos, lambda r: r.ceiling, "ceiling (FLOPs at peak GEMM rate)",
             marker="v", color="#6a4c93", linestyle="none")
    _markers(ax, rows, ypos, lambda r: r.torch_ratio, "fastbp over PyTorch",
             marker="D", color="#1f77b4", linestyle="none")
    seconds = rows[0].metric == "seconds"
    if seconds:  # the peer's own time on a panel of seconds (ratio = peer / fastbp)
        def peer(r):
            return None if r.peer_ratio is None else r.value * r.peer_ratio
        peer_label = "the fastest peer's time"
    else:
        def peer(r):
            return r.peer_ratio
        peer_label = "fastbp over the fastest peer"
    _markers(ax, rows, ypos, peer, peer_label, marker="s", color="#2a9d8f", linestyle="none")
    if not seconds:
        ax.axvline(1.0, color="#333333", linewidth=0.8)
    values = [v for row in rows
              for v in (row.value, row.target, row.ceiling, row.torch_ratio, peer(row))
              if v is not None]
    if rows[0].metric == "seconds":
        ax.set_xlim(0, max(values) * 1.15)
    else:  # ratios: log scale, so that 0.5x and 2x lie as far from 1x
        _log_axis(ax, min(values) / 1.6, max(values) * 1.6)
    ax.set_yticks(ypos, [row.label for row in rows], fontsize=FONT_SIZE)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    for y, row in zip(ypos, rows, strict=True):
        ax.annotate(_value_text(row), xy=(1.0, y), xycoords=("axes fraction", "data"),
                    xytext=(6, 0), textcoords="offset points", va="center", fontsize=FONT_SIZE)
    ax.set_title(title, fontsize=FONT_SIZE + 1, loc="left")
    ax.set_xlabel(xlabel, fontsize=FONT_SIZE)
    ax.tick_params(axis="x", labelsize=FONT_SIZE)


def _legend(fig, axes):
    from matplotlib.patches import Patch

    handles = [Patch(color=colour, label=verdict) for verdict, colour in VERDICT_COLOURS.items()]
    seen = set()
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in seen:
                seen.add(label)
                handles.append(handle)
    fig.legend(handles=handles, loc="outside lower center", ncol=4, fontsize=FONT_SIZE,
               frameon=False)


def figure(rows, title, row_height=ROW_HEIGHT):
    """The figure of ``rows`` (``report.Row``), one panel per kind of metric that has
    rows; the caller saves and closes it."""
    plt = load_pyplot()
    panels = [([r for r in rows if r.metric in metrics], name, xlabel)
              for metrics, name, xlabel in PANELS]
    panels = [panel for panel in panels if panel[0]]
    heights = [len(panel_rows) + 2.5 for panel_rows, _, _ in panels]  # + title, axis
    fig, axes = plt.subplots(
        len(panels), 1, squeeze=False, layout="constrained", gridspec_kw={"height_ratios": heights},
        figsize=(9, row_height * sum(heights) + 1.2),
    )
    axes = axes[:, 0]
    for ax, (panel_rows, name, xlabel) in zip(axes, panels, strict=True):
        _panel(ax, panel_rows, name, xlabel)
    _legend(fig, axes)
    fig.suptitle(title, fontsize=FONT_SIZE + 2)
    return fig


def plot(path, rows, title):
    """Save ``figure(rows, title)`` to ``path`` (PNG)."""
    plt = load_pyplot()
    fig = figure(rows, title)
    try:
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)
