"""`cxrsynth release` has one config tree (PipelineConfig): --set SECTION.KEY=VALUE reaches each stage."""

from __future__ import annotations

import pytest

from cxrsynth import pipeline
from cxrsynth.core.errors import ConfigError
from cxrsynth.pipeline import PipelineConfig, resolve_pipeline

from .conftest import cli_error_line

pytestmark = pytest.mark.no_data


class Stop(Exception):
    """Raised by a spied stage: the test has seen what it wanted."""


def _spy(monkeypatch, name: str, seen: list):
    def fake(*args, **kwargs):
        seen.append((args, kwargs))
        raise Stop

    monkeypatch.setattr(pipeline, name, fake)


def test_cli_sets_reach_the_tree(monkeypatch, tmp_path):
    from cxrsynth.cli import main

    seen = []
    _spy(monkeypatch, "release", seen)
    with pytest.raises(Stop):
        main(["-w", str(tmp_path), "release", "--set", "train.max_steps=5", "--set", "generate.precision=fp32",
              "--set", "audit.sample=20", "--set", "plan.per_domain=8", "--limit", "3", "--version", "1.2.3",
              "--preset", "paper"])
    cfg = seen[0][0][2]
    assert isinstance(cfg, PipelineConfig)
    assert cfg.train == {"max_steps": 5, "preset": "paper"}
    assert (cfg.generate.precision, cfg.generate.limit, cfg.generate.configs) == ("fp32", 3, cfg.release.configs)
    assert (cfg.audit.sample, cfg.plan.per_domain, cfg.release.version) == (20, 8, "1.2.3")


def test_release_keys_keep_their_short_spelling():
    cfg = resolve_pipeline(overrides=["version=2.0.0", "configs=g_nc", "release.name=mine"])
    assert (cfg.release.version, cfg.release.name, cfg.release.configs) == ("2.0.0", "mine", ("g_nc",))
    assert cfg.generate.configs == ("g_nc",)  # generation makes what the release packages


def test_train_section_reaches_the_train_config(monkeypatch, tmp_path):
    """A translator the release trains gets --set train.* over its defaults (or its saved config)."""
    seen = []
    _spy(monkeypatch, "train", seen)
    cfg = resolve_pipeline(overrides=["train.max_steps=5", "train.size=128"])
    with pytest.raises(Stop):
        pipeline._ensure_translator(pipeline.WorkLayout(tmp_path), "pneumonia-covid", cfg, progress=False)
    (workdir, tcfg), kwargs = seen[0]
    assert (tcfg.task, tcfg.max_steps, tcfg.size, kwargs["resume"]) == ("pneumonia-covid", 5, 128, False)
    # a saved run keeps its recipe; the section still applies on top
    saved = cfg.train_config("normal-covid", {"preset": "paper", "size": 64, "task": "normal-covid"})
    assert (saved.preset, saved.generator, saved.size, saved.max_steps) == ("paper", "unet", 128, 5)


def test_generate_section_reaches_generation(monkeypatch, tmp_path):
    seen = []
    _spy(monkeypatch, "generate_in", seen)
    monkeypatch.setattr(pipeline, "_ensure_plan", lambda *a: None)
    cfg = resolve_pipeline(overrides=["generate.precision=fp32", "generate.batch_size=2"])
    given = {"normal-covid": str(tmp_path), "pneumonia-covid": str(tmp_path)}  # nothing to train
    with pytest.raises(Stop):
        pipeline.release(tmp_path / "wd", tmp_path / "out", cfg, translators=given, audit=False)
    (workdir, gcfg, translators), kwargs = seen[0]
    assert (gcfg.precision, gcfg.batch_size, translators) == ("fp32", 2, given)
    assert kwargs["rt"].precision == "fp32"  # the release's Runtime, with generate's precision


@pytest.mark.parametrize("setting, message", [
    ("train.bogus=1", "unknown config key train.bogus"),
    ("generate.bogus=1", "unknown config key generate.bogus"),
    ("bogus=1", "unknown config key bogus"),
    ("train.max_steps=abc", "train.max_steps must be an integer"),
    ("generate.precision=fp8", "generate.precision must be one of"),
    ("train.preset=fast", "unknown train.preset"),
    ("train.task=normal-covid", "train.task is set per translator"),
    ("generate.configs=g_nc", "generate.configs differ from release.configs"),
])
def test_wrong_settings_fail_at_once(setting, message, monkeypatch, tmp_path, capsys):
    seen = []
    _spy(monkeypatch, "release", seen)
    line = cli_error_line(capsys, ["-w", str(tmp_path), "release", "--set", setting])
    assert message in line and not seen


def test_train_set_names_its_replacement(tmp_path, capsys):
    from cxrsynth.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["-w", str(tmp_path), "release", "--train-set", "max_steps=5"])
    assert exc.value.code == 2 and "--set train.KEY=VALUE" in capsys.readouterr().err


def test_config_file_sections(tmp_path):
    path = tmp_path / "release.yaml"
    path.write_text("train: {max_steps: 7}\ngenerate: {precision: bf16}\nrelease: {version: 3.1.4}\n")
    cfg = resolve_pipeline(path, ["train.max_steps=9"])
    assert (cfg.train, cfg.generate.precision, cfg.release.version) == ({"max_steps": 9}, "bf16", "3.1.4")
    with pytest.raises(ConfigError, match="train must be a mapping"):
        resolve_pipeline(overrides=["train=5"])


def test_benchmark_typed_options_and_sets_reach_its_config(monkeypatch, tmp_path):
    """Command-line options arrive typed (no k=v string round trip) and sit above --set."""
    import cxrsynth.pipeline as pipeline
    from cxrsynth.cli import main

    seen = []

    def fake(*args, **kwargs):
        seen.append((args, kwargs))
        raise Stop

    monkeypatch.setattr(pipeline, "benchmark_in", fake)  # what the command calls with the work folder
    (tmp_path / "splits.json").write_text("{}")
    with pytest.raises(Stop):
        main(["-w", str(tmp_path), "benchmark", "--set", "fit.precision=fp32", "--set", "fit.max_epochs=9",
              "--max-epochs", "2", "--task", "normal-covid", "--arm", "real", "--arm", "real-oversampled",
              "--limit", "4", "--out", str(tmp_path / "b")])
    cfg = seen[0][0][2]
    assert (cfg.fit.precision, cfg.fit.max_epochs, cfg.limit) == ("fp32", 2, 4)
    assert cfg.tasks == ("normal-covid",) and cfg.arms == ("real", "real-oversampled")


@pytest.mark.parametrize("setting, key", [("fit.no_such_key=1", "fit.no_such_key"), ("no_such=1", "no_such")])
def test_benchmark_unknown_keys_fail_naming_the_key(setting, key, tmp_path, capsys):
    line = cli_error_line(capsys, ["-w", str(tmp_path), "benchmark", "--set", setting, "--out", str(tmp_path / "b")])
    assert f"unknown config key {key}" in line


def test_nest_keeps_types_and_drops_what_was_not_given():
    from cxrsynth.core.config import nest

    assert nest({"a.b": 1.5, "a.c": None, "d": ("x", "y"), "e": False}) == {"a": {"b": 1.5}, "d": ("x", "y"), "e": False}
