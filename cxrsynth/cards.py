"""Rendering the cards in ``cards/`` (plain ``string.Template`` placeholders, ``${name}``)."""

from __future__ import annotations

from pathlib import Path
from string import Template

from . import __version__
from .paths import REPO_ROOT, atomic_write

CARDS_DIR = REPO_ROOT / "cards"


def render(template: str, values: dict) -> str:
    return Template((CARDS_DIR / template).read_text()).substitute({k: str(v) for k, v in values.items()})


def render_translator_card(run_dir: Path, cfg, report: dict, ids: dict) -> Path:
    values = {
        "translator_id": report["translator_id"], "task": cfg.task, "source_label": cfg.task.split("-")[0],
        "code_version": __version__, "blocks": cfg.n_blocks, "base": cfg.base, "size": cfg.size,
        "generator_sha256": report["generator_sha256"], "gan_loss": cfg.gan_loss, "lambda_cycle": cfg.lambda_cycle,
        "lambda_identity": cfg.lambda_identity, "lr": cfg.lr, "beta1": cfg.beta1,
        "epochs_constant": cfg.epochs_constant, "epochs_decay": cfg.epochs_decay, "steps": report["steps"],
        "total_steps": report["total_steps"], "finished": "complete" if report["finished"] else "stopped early",
        "batch_size": cfg.batch_size, "seed": cfg.seed, "device": report["device"], "precision": report["precision"],
        "n_source": len(ids["A"]), "n_covid": len(ids["B"]),
    }
    path = Path(run_dir) / "README.md"
    with atomic_write(path) as fh:
        fh.write(render("translator_card.md", values))
    return path
