"""Generation: exact counts, provenance that validates and leaks nothing, resume, sharing by rank."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from cxrsynth.core.config import resolve
from cxrsynth.artifacts import GeneratedSet
from cxrsynth.stages.generate import GenerateConfig
from cxrsynth.pipeline import generate_in
from cxrsynth.core.paths import read_json, sha256_file
from cxrsynth.core.schemas import validate

from .conftest import copy_workdir


def _label_only(wd):
    from cxrsynth.data.records import read_records

    return {r.record_id for r in read_records(wd / "records.parquet") if not r.has_pixels}


def test_exact_count_provenance_and_privacy(trained, tmp_path):
    wd = copy_workdir(trained, tmp_path / "wd")
    cfg = resolve(GenerateConfig, overrides=["limit=45", "shard_size=20", "batch_size=4", "workers=0"])
    rep = generate_in(wd, cfg)
    plan = read_json(wd / "plan.json")
    for config, task in (("g_nc", "normal-covid"), ("g_pc", "pneumonia-covid")):
        s = rep["configs"][config]
        assert s["generated"] == 45 and s["shards"] == 3
        assert s["planned"] == plan["tasks"][task]["translate"]["n"]
        assert s["to_generate"] == 45 and s["label_only_skipped"] == sum(
            1 for r in plan["tasks"][task]["translate"]["record_ids"] if r in _label_only(wd))
        prov = GeneratedSet(wd / "generated").provenance(config)
        assert len(prov) == 45 and len({p["id"] for p in prov}) == 45
        for p in prov:
            validate(p, "provenance")
            path = wd / "generated" / p["file"]
            assert sha256_file(path) == p["png_sha256"]
            img = Image.open(path)
            assert img.mode == "L" and img.size == (64, 64)
            assert p["translator_id"] == s["translator_id"]
        mapping = [json.loads(x) for f in sorted((wd / "generated" / "private" / config).glob("*.jsonl"))
                   for x in f.read_text().splitlines()]
        assert [m["id"] for m in mapping] == [p["id"] for p in prov]
        planned = plan["tasks"][task]["translate"]["record_ids"]
        assert all(m["record_id"] in planned for m in mapping)
        # nothing public names a record, a patient or a source path
        public = "".join(f.read_text() for f in (wd / "generated" / config).rglob("provenance.jsonl"))
        for m in mapping[:10]:
            assert m["record_id"] not in public
        assert "images/" not in public and "nih" not in public.lower()


def test_translation_is_the_generator_applied(trained, tmp_path):
    """One PNG re-derived by hand: decode the source, run the generator, quantise."""
    import torch

    from cxrsynth.data.images import load_canonical
    from cxrsynth.data.records import read_records
    from cxrsynth.stages.translate.checkpoint import load_generator

    wd = copy_workdir(trained, tmp_path / "wd")
    generate_in(wd, resolve(GenerateConfig, overrides=["limit=3", "configs=g_nc", "workers=0", "precision=fp32"]))
    p = GeneratedSet(wd / "generated").provenance("g_nc")[1]
    m = [json.loads(x) for x in (wd / "generated/private/g_nc/shard-00000.jsonl").read_text().splitlines()][1]
    rec = {r.record_id: r for r in read_records(wd / "records.parquet")}[m["record_id"]]
    net, _ = load_generator(wd / "translators/normal-covid/generator.safetensors")
    x = torch.from_numpy(load_canonical(rec.path, 64)).float()[None, None] / 127.5 - 1
    with torch.no_grad():
        y = ((net(x).clamp(-1, 1) + 1) * 127.5).round().byte()[0, 0].numpy()
    got = np.asarray(Image.open(wd / "generated" / p["file"]))
    assert np.array_equal(got, y)


def test_resume_keeps_finished_shards_and_redoes_damaged_ones(trained, tmp_path):
    wd = copy_workdir(trained, tmp_path / "wd")
    cfg = resolve(GenerateConfig, overrides=["limit=30", "shard_size=10", "configs=g_nc", "workers=0"])
    generate_in(wd, cfg)
    out = wd / "generated" / "g_nc"
    before = {p["id"]: p["png_sha256"] for p in GeneratedSet(wd / "generated").provenance("g_nc")}
    victim = next((out / "shard-00001").glob("*.png"))
    victim.write_bytes(b"broken")
    (out / "shard-00002.done.json").unlink()  # as if killed before the marker
    assert not GeneratedSet(wd / "generated").shard_is_done("g_nc", "shard-00001")
    rep = generate_in(wd, cfg)["configs"]["g_nc"]
    assert rep["shards_skipped_done"] == 1 and rep["generated"] == 20
    after = {p["id"]: p["png_sha256"] for p in GeneratedSet(wd / "generated").provenance("g_nc")}
    assert after == before  # same ids and same pixels: the translation is deterministic


def test_kill_during_generation_then_resume(trained, tmp_path):
    wd = copy_workdir(trained, tmp_path / "wd")
    args = [sys.executable, "-m", "cxrsynth.cli", "-w", str(wd), "generate", "--configs", "g_nc", "--limit", "120",
            "--batch-size", "1", "--set", "shard_size=10", "--set", "workers=0"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = wd / "generated" / "g_nc"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob("*.done.json"))) < 2:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(list(out.glob("*.done.json")))
    assert 2 <= done_before < 12, "killed part-way"
    res = subprocess.run(args + ["--json"], capture_output=True, text=True, check=True)
    rep = json.loads(res.stdout)["configs"]["g_nc"]
    assert rep["shards_skipped_done"] == done_before
    prov = GeneratedSet(wd / "generated").provenance("g_nc")
    assert len(prov) == 120 and len({p["id"] for p in prov}) == 120
    assert not list(out.glob(".shard-*"))  # no temporary folder left behind as a shard


def test_ranks_split_the_shards(trained, tmp_path):
    one = copy_workdir(trained, tmp_path / "one")
    two = copy_workdir(trained, tmp_path / "two")
    # the same id secret makes the two layouts comparable
    (two / "generated" / "private").mkdir(parents=True)
    cfg = resolve(GenerateConfig, overrides=["limit=25", "shard_size=5", "configs=g_pc", "workers=0"])
    generate_in(one, cfg)
    (two / "generated" / "private" / "id_secret").write_text((one / "generated/private/id_secret").read_text())
    r0 = generate_in(two, cfg, rank=0, world=2)["configs"]["g_pc"]
    r1 = generate_in(two, cfg, rank=1, world=2)["configs"]["g_pc"]
    assert (r0["shards_mine"], r1["shards_mine"]) == (3, 2)
    assert r0["generated"] + r1["generated"] == 25
    a = {p["id"]: p["png_sha256"] for p in GeneratedSet(one / "generated").provenance("g_pc")}
    b = {p["id"]: p["png_sha256"] for p in GeneratedSet(two / "generated").provenance("g_pc")}
    assert a == b


def test_missing_generator_is_a_clear_error(planned_workdir, tmp_path):
    from cxrsynth.core.errors import CheckpointError

    wd = copy_workdir(planned_workdir, tmp_path / "wd")
    import shutil

    shutil.rmtree(wd / "translators", ignore_errors=True)
    with pytest.raises(CheckpointError, match="generator file not found"):
        generate_in(wd, GenerateConfig(configs=("g_nc",)))


def test_minmax_output_stretches_each_image_and_is_its_own_shard(trained, tmp_path):
    """The authors' output mapping (per-image min..max stretch) is an option; switching it regenerates."""
    wd = copy_workdir(trained, tmp_path / "wd")
    base = ["limit=6", "shard_size=6", "batch_size=3", "workers=0", "configs=[g_nc]"]
    clamp = generate_in(wd, resolve(GenerateConfig, overrides=base))
    assert clamp["configs"]["g_nc"]["generated"] == 6
    before = {p["id"]: p["png_sha256"] for p in GeneratedSet(wd / "generated").provenance("g_nc")}
    rep = generate_in(wd, resolve(GenerateConfig, overrides=base + ["output=minmax"]))
    assert rep["configs"]["g_nc"]["generated"] == 6 and rep["configs"]["g_nc"]["shards_skipped_done"] == 0
    prov = GeneratedSet(wd / "generated").provenance("g_nc")
    assert all(before[p["id"]] != p["png_sha256"] for p in prov)
    for p in prov:
        arr = np.asarray(Image.open(wd / "generated" / p["file"]))
        assert arr.min() == 0 and arr.max() == 255
    again = generate_in(wd, resolve(GenerateConfig, overrides=base + ["output=minmax"]))
    assert again["configs"]["g_nc"]["shards_skipped_done"] == 1 and again["configs"]["g_nc"]["generated"] == 0


def test_paper_translator_generates_with_the_authors_minmax_by_default(planned_workdir, tmp_path):
    """output=auto: a translator trained with --preset paper gets the authors' per-image min-max stretch,
    any other translator the clamp (output_mode); an explicit output wins."""
    from cxrsynth.stages.generate import output_mode
    from cxrsynth.stages.translate.train import resolve_train_config, train

    assert output_mode("auto", {"preset": "paper"}) == "minmax" and output_mode("auto", {"preset": "canonical"}) == "clamp"
    assert output_mode("clamp", {"preset": "paper"}) == "clamp"
    import shutil

    wd = copy_workdir(planned_workdir, tmp_path / "wd")
    shutil.rmtree(wd / "translators", ignore_errors=True)  # the session's fixture may have trained canonical ones here
    train(wd, resolve_train_config(None, ["preset=paper", "task=normal-covid", "size=64", "max_steps=1", "batch_size=2",
                                          "save_every=2", "sample_every=4"]))
    base = ["limit=3", "shard_size=3", "batch_size=3", "workers=0", "configs=[g_nc]"]
    rep = generate_in(wd, resolve(GenerateConfig, overrides=base))
    assert rep["configs"]["g_nc"]["output"] == "minmax" and rep["configs"]["g_nc"]["generated"] == 3
    for p in GeneratedSet(wd / "generated").provenance("g_nc"):
        arr = np.asarray(Image.open(wd / "generated" / p["file"]))
        assert arr.min() == 0 and arr.max() == 255
    clamp = generate_in(wd, resolve(GenerateConfig, overrides=base + ["output=clamp"]))
    assert clamp["configs"]["g_nc"]["output"] == "clamp" and clamp["configs"]["g_nc"]["shards_skipped_done"] == 0
