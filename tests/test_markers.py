"""Burnt-in markers (translate/markers.py): drawn onto real NIH normals, found, filled; recorded by training."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from cxrsynth.core.errors import ConfigError
from cxrsynth.data.images import load_canonical
from cxrsynth.core.paths import read_json, read_jsonl
from cxrsynth.stages.translate.markers import MarkerParams, clean, detect, load_clean
from cxrsynth.stages.translate.train import TrainingSet, resolve_train_config, train

from .conftest import NIH, TINY


def _normals(n: int) -> list[str]:
    """The first ``n`` 'No Finding' files of the NIH sample, in the CSV's order (not picked by hand)."""
    with open(NIH / "Data_Entry_2017.csv") as fh:
        rows = [r["Image Index"] for r in csv.DictReader(fh) if r["Finding Labels"] == "No Finding"]
    return rows[:n]


def _draw_markers(img: np.ndarray) -> np.ndarray:
    """What the COVID-19 figures carry, drawn at 512 px: a side letter in the corner, a date over the lung,
    a label low down, a white arrow on the hilum and a black one on the upper lung."""
    pil = Image.fromarray(img)
    d = ImageDraw.Draw(pil)
    d.text((20, 20), "R", fill=255, font=ImageFont.load_default(size=28))
    d.text((130, 300), "2020.1.1", fill=255, font=ImageFont.load_default(size=20))
    d.text((330, 470), "PA ERECT", fill=255, font=ImageFont.load_default(size=28))
    d.line([(330, 220), (380, 190)], fill=255, width=5)
    d.polygon([(318, 228), (336, 206), (343, 226)], fill=255)
    d.line([(160, 150), (200, 120)], fill=0, width=4)
    d.polygon([(150, 158), (166, 138), (172, 156)], fill=0)
    return np.asarray(pil).copy()


@pytest.mark.parametrize("name", _normals(3))
def test_drawn_text_and_arrows_are_found_and_filled(name):
    orig = load_canonical(NIH / "images" / name, 512)
    drawn = _draw_markers(orig)
    change = np.abs(drawn.astype(int) - orig)
    strokes = change >= 40  # the visible strokes; the faint anti-aliased fringe is not asked for
    assert strokes.sum() > 1000

    found, n = detect(drawn)
    assert n >= 5
    assert (found & strokes).sum() / strokes.sum() >= 0.8  # recall of the drawn strokes
    near = ndimage.binary_dilation(strokes, iterations=3)
    assert (found & ~near).mean() < 0.01  # what else it flags: the image's own labels, thin dark air
    assert detect(orig)[0].mean() < 0.01  # the clean image is (almost) left alone

    out, mask, _ = clean(drawn)
    zone = ndimage.binary_dilation(strokes, iterations=1)
    before, after = change[zone].mean(), np.abs(out.astype(int) - orig)[zone].mean()
    assert after < 0.2 * before, (before, after)
    assert np.array_equal(out[~mask], drawn[~mask])  # only the mask is repainted


def test_median_fill_also_restores_the_drawn_region():
    orig = load_canonical(NIH / "images" / _normals(1)[0], 512)
    drawn = _draw_markers(orig)
    zone = ndimage.binary_dilation(np.abs(drawn.astype(int) - orig) >= 40, iterations=1)
    out, mask, _ = clean(drawn, MarkerParams(fill="median"))
    before, after = np.abs(drawn.astype(int) - orig)[zone].mean(), np.abs(out.astype(int) - orig)[zone].mean()
    assert after < 0.25 * before, (before, after)


def test_load_clean_changes_only_images_with_markers(tmp_path):
    """A smooth image has nothing to find and comes back exactly as loaded; a marked one is filled, at the
    size asked for."""
    y, x = np.mgrid[0:600, 0:600]
    smooth = (60 + 120 * np.exp(-((x - 300) ** 2 + (y - 300) ** 2) / 2e4)).astype(np.uint8)
    Image.fromarray(smooth).save(tmp_path / "smooth.png")
    arr, rec = load_clean(tmp_path / "smooth.png", 128, "s")
    assert np.array_equal(arr, load_canonical(tmp_path / "smooth.png", 128))
    assert (rec.record_id, rec.components, rec.mask_fraction) == ("s", 0, 0.0)

    marked = _draw_markers(load_canonical(NIH / "images" / _normals(1)[0], 512))
    Image.fromarray(marked).save(tmp_path / "marked.png")
    arr, rec = load_clean(tmp_path / "marked.png", 128, "m")
    assert arr.shape == (128, 128) and arr.dtype == np.uint8
    assert rec.components >= 5 and 0.005 < rec.mask_fraction < 0.05
    assert not np.array_equal(arr, load_canonical(tmp_path / "marked.png", 128))


def test_parameters_are_checked():
    for bad in (dict(grow=-1), dict(radius=0.9), dict(bright=300), dict(fill="telea"), dict(work_size=8)):
        with pytest.raises(ConfigError):
            MarkerParams(**bad)
    with pytest.raises(ValueError, match="2-D uint8"):
        detect(np.zeros((4, 4, 3), np.uint8))


def test_switch_is_off_in_every_preset():
    for preset in ("canonical", "paper", "refined"):
        assert resolve_train_config(overrides=[f"preset={preset}"]).mask_markers is False


def test_training_with_the_switch_records_each_covid_image(planned_workdir, tmp_path):
    run = tmp_path / "run"
    rep = train(planned_workdir, resolve_train_config(overrides=TINY + ["mask_markers=true", "max_steps=1"]),
                out_dir=run)
    covid = read_json(planned_workdir / "plan.json")["tasks"]["normal-covid"]["translator_train"]["covid"]
    rows = read_jsonl(run / "markers.jsonl")
    assert [r["record_id"] for r in rows] == covid
    assert all(set(r) == {"record_id", "mask_fraction", "components", "size"} for r in rows)
    saved = json.loads((run / "train_report.json").read_text())["markers"]
    assert saved == rep["markers"] and saved["file"] == "markers.jsonl"
    assert saved["images"] == len(covid) and saved["with_markers"] == sum(r["components"] > 0 for r in rows)
    assert saved["mean_mask_fraction"] == pytest.approx(np.mean([r["mask_fraction"] for r in rows]), abs=1e-6)
    assert saved["params"]["work_size"] == 512 and "top-hat" in saved["method"]
    # the publication figures of the plan do carry markers, and the model card says what was filled
    assert saved["with_markers"] >= len(covid) // 2
    assert f"burnt-in markers (letters, arrows, labels) filled in {saved['with_markers']} of the {len(covid)}" in \
        (run / "README.md").read_text()
    # a run without the switch cannot resume one with it (the images differ), and cleans nothing
    with pytest.raises(ConfigError, match="changes the run"):
        train(planned_workdir, resolve_train_config(overrides=TINY + ["max_steps=1"]), resume=True, out_dir=run)
    assert TrainingSet(planned_workdir, "normal-covid", 64, jitter=False).markers is None
