"""Matplotlib without a display, and figures saved atomically (shared by the benchmark and the audit)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402,F401  (re-exported for the figure modules)


def save_figure(fig, path: Path) -> Path:
    from .paths import atomic_write

    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format=Path(path).suffix.lstrip(".") or "png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path
