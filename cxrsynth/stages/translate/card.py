"""The model card of a trained translator (``README.md`` in its run folder), from ``cards/translator_card.md``.

It lives with the translator stage: the card describes a TrainConfig and a train report, and its licence
follows from what the translator learnt from (``sources.terms``), as the release's does.
"""

from __future__ import annotations

from pathlib import Path

from ... import __version__
from ...core.cards import render
from ...core.paths import atomic_write


PRESET_WORDS = {
    "canonical": "the canonical PyTorch CycleGAN, junyanz/pytorch-CycleGAN-and-pix2pix",
    "paper": "the seed authors' own Keras-GAN recipe, hasibzunair/synthetic-covid-cxr-gen notebook 2a",
    "refined": "the seed authors' recipe with artefact and small-data GAN remedies (resize-convolution, reflection "
               "padding, spectral norm, an averaged generator; issue 19), chosen on held-out fidelity on the sample data",
    "refined-thumbnail": "the refined recipe plus a second discriminator on 32 px thumbnails (issue 19), which took the "
                         "real-vs-synthetic probe against held-out real COVID-19 to chance on the sample data and keeps "
                         "each image close to its own source (linkable: see the audit)",
}


def _recipe_options(cfg) -> str:
    """The recipe options of issue 19 that are on, for the card (empty for the canonical and paper recipes)."""
    parts = [f"DiffAugment ({cfg.diff_augment}) on the discriminators' inputs" if cfg.diff_augment else "",
             "reflection padding" if cfg.reflect_pad else "",
             "spectral norm in the discriminators" if cfg.spectral_norm else "",
             f"weights averaged over updates (EMA, decay {cfg.ema_decay})" if cfg.ema_decay is not None else "",
             (f"a second discriminator on {cfg.disc_thumbnail} px thumbnails"
              + (" whose loss adds to the full-size one's" if cfg.disc_views == "sum" else "")) if cfg.disc_thumbnail else ""]
    return "".join(f"; {p}" for p in parts if p)


def _architecture(cfg) -> str:
    if cfg.generator == "unet":
        return (f"U-Net generator (4 down, 3 up blocks, skips), width {cfg.base}, per-sample norm over C, H, W with "
                f"a scalar affine (keras-contrib InstanceNormalization), {cfg.upsample_mode} upsampling, 1 channel; "
                f"discriminator width {cfg.disc_base or cfg.base}{_recipe_options(cfg)}")
    up = "" if cfg.upsample_mode == "transposed" else f", {cfg.upsample_mode} resize-convolution upsampling"
    return (f"ResNet generator, {cfg.n_blocks} residual blocks, width {cfg.base}, instance norm, reflection padding{up}, "
            f"1 channel; discriminator width {cfg.disc_base or cfg.base}{_recipe_options(cfg)}")


def _markers(report: dict) -> str:
    """What ``mask_markers`` filled, for the training-images row (empty when it was off)."""
    m = report.get("markers")
    if not m:
        return ""
    return (f"; burnt-in markers (letters, arrows, labels) filled in {m['with_markers']} of the {m['images']} COVID-19 "
            f"images before training, {100 * m['mean_mask_fraction']:.2f}% of their pixels on average (`{m['file']}`)")


def render_translator_card(run_dir: Path, cfg, report: dict, ids: dict, licence_inputs: dict | None = None) -> Path:
    """The model card of a trained translator. Its licence follows from what it learnt from
    (``licence_inputs``: the COVID-19 images' licences and the source datasets), as the release's does."""
    from ...data.sources.terms import licence_counts, release_licence

    inputs = licence_inputs or {"covid": [], "sources": []}
    learnt = licence_counts(inputs["covid"])
    license_id, why, _ = release_licence(learnt, inputs["sources"])
    values = {
        "license": license_id, "license_why": why,
        "license_extra": "license_name: cxrsynth-mixed-inputs\nlicense_link: README.md\n" if license_id == "other" else "",
        "licence_counts": ", ".join(f"{n:,} {name}" for name, n in learnt.items()) or "none recorded",
        "translator_id": report["translator_id"], "task": cfg.task, "source_label": cfg.task.split("-")[0],
        "code_version": __version__, "size": cfg.size, "preset": cfg.preset,
        "preset_words": PRESET_WORDS[cfg.preset], "architecture": _architecture(cfg),
        "generator_sha256": report["generator_sha256"], "gan_loss": cfg.gan_loss, "lambda_cycle": cfg.lambda_cycle,
        "lambda_identity": cfg.lambda_identity, "lr": cfg.lr, "beta1": cfg.beta1,
        "epochs_constant": cfg.epochs_constant, "epochs_decay": cfg.epochs_decay, "steps": report["steps"],
        "total_steps": report["total_steps"], "finished": "complete" if report["finished"] else "stopped early",
        "batch_size": cfg.batch_size, "seed": cfg.seed, "device": report["device"], "precision": report["precision"],
        "n_source": len(ids["A"]), "n_covid": len(ids["B"]), "markers": _markers(report),
    }
    path = Path(run_dir) / "README.md"
    with atomic_write(path) as fh:
        fh.write(render("translator_card.md", values))
    return path


def architecture_words(cfg) -> str:
    """The generator and discriminator of ``cfg`` (a TrainConfig) in words: the translator card's
    Architecture row, which the release manifest records so that the dataset card says the same."""
    return _architecture(cfg)
