"""``benchmark --eval-only`` and ``cxrsynth.evaluate``: someone else's classifier, scored right (issue 21).

A tiny work folder (24 NIH sample images in a plain labelled folder, 32 px, a rigorous split with 8
images in each of train / validation / test) is enough: nothing is trained, every model is random, and
each test checks the scores against the model run by hand.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import torchvision

import cxrsynth
from cxrsynth.artifacts import SplitData
from cxrsynth.measure import metrics as M
from cxrsynth.core.errors import CheckpointError, ConfigError

from .conftest import NIH, cli_error_line

SIZE = 32
FAST = ["--image-size", str(SIZE), "--set", "bootstrap=20", "--set", "figures=false"]


@pytest.fixture(scope="module")
def wd(tmp_path_factory):
    """normal/ and covid/ folders of 12 NIH images each, ingested at 32 px and split 1/3 each way."""
    from cxrsynth.stages.ingest import IngestConfig, ingest
    from cxrsynth.data.records import read_records
    from cxrsynth.stages.splits import SplitConfig, make_splits

    base = tmp_path_factory.mktemp("eval_only")
    images = sorted((NIH / "images").glob("*.png"))
    for label, chosen in (("normal", images[:12]), ("covid", images[500:512])):
        (base / "src" / label).mkdir(parents=True)
        for p in chosen:
            shutil.copy(p, base / "src" / label / p.name)
    work = base / "wd"
    ingest([base / "src"], IngestConfig(size=SIZE), out_dir=work)
    make_splits(read_records(work / "records.parquet"), SplitConfig(seed=0, fractions=(0.34, 0.33, 0.33)),
                work / "records.parquet", work / "splits.json")
    return work


def split_images(wd, split: str) -> tuple[torch.Tensor, np.ndarray]:
    """The task's images of one split as the benchmark feeds them: (N, 1, 32, 32) in [0, 1], and labels."""
    from cxrsynth.stages.benchmark.arms import eval_items
    from cxrsynth.data.images import load_canonical

    items = eval_items(SplitData.read(wd), "normal-covid", split)
    x = torch.stack([torch.from_numpy(load_canonical(i.path, SIZE).astype(np.float32) / 255).unsqueeze(0) for i in items])
    return x, np.asarray([i.label for i in items])


@torch.no_grad()
def by_hand(net, x, normalize="none"):
    net.eval()
    x = x.expand(-1, 3, -1, -1)
    if normalize == "imagenet":
        x = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return net(x)


def run_cli(wd, out, *args):
    from cxrsynth.cli import main

    main(["-w", str(wd), "benchmark", "--task", "normal-covid", "--out", str(out), *FAST, *args])
    return json.loads((out / "results.json").read_text())


def test_a_torchvision_imagenet_state_dict_is_refused_in_one_line(wd, tmp_path, capsys):
    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "imagenet.pth")
    line = cli_error_line(capsys, ["-w", str(wd), "benchmark", "--task", "normal-covid", "--model", "resnet18",
                                   "--eval-only", str(tmp_path / "imagenet.pth"), "--out", str(tmp_path / "o"), *FAST])
    assert "fc has 1000 outputs; expected 1 (sigmoid) or 2 (softmax) outputs" in line and "imagenet.pth" in line
    assert not (tmp_path / "o" / "results.json").exists()
    # no head at all: refused too, never scored with a random one
    sd = {k: v for k, v in torchvision.models.resnet18().state_dict().items() if not k.startswith("fc.")}
    torch.save(sd, tmp_path / "trunk.pth")
    line = cli_error_line(capsys, ["-w", str(wd), "benchmark", "--task", "normal-covid", "--model", "resnet18",
                                   "--eval-only", str(tmp_path / "trunk.pth"), "--out", str(tmp_path / "o"), *FAST])
    assert "no classifier head (fc.weight missing)" in line and "random head" in line


def test_a_one_logit_checkpoint_is_scored_with_a_sigmoid(wd, tmp_path):
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=1)
    torch.save(net.state_dict(), tmp_path / "binary.pth")
    x, y = split_images(wd, "test")
    for normalize in ("none", "imagenet"):
        out = tmp_path / normalize
        res = run_cli(wd, out, "--model", "resnet18", "--eval-only", str(tmp_path / "binary.pth"),
                      "--threshold", "0.5", "--normalize", normalize)
        ev = res["evaluation"]
        assert ev["head"] == "1 logit (sigmoid)" and ev["normalize"] == normalize
        assert ev["threshold"] == 0.5 and ev["threshold_source"] == "given"
        want = torch.sigmoid(by_hand(net, x, normalize))[:, 0].numpy()
        test = res["runs"][0]["test"]
        assert test["auroc"] == pytest.approx(M.auroc(y, want))
        assert test["confusion"]["tp"] + test["confusion"]["fn"] == int(y.sum())
        assert test["confusion"]["tp"] == int(((want >= 0.5) & (y == 1)).sum())
        tables = (out / "tables.md").read_text()
        assert f"input normalisation {normalize}; threshold 0.5 (given)" in tables


def test_two_logits_and_the_positive_index(wd):
    torch.manual_seed(1)
    net = torchvision.models.resnet18(num_classes=2)
    x, y = split_images(wd, "test")
    probs = torch.softmax(by_hand(net, x), 1).numpy()
    one = cxrsynth.evaluate(net, "normal-covid", wd, image_size=SIZE, threshold=0.5, bootstrap=0)
    zero = cxrsynth.evaluate(net, "normal-covid", wd, image_size=SIZE, threshold=0.5, bootstrap=0, positive_index=0)
    assert np.allclose(one.scores, probs[:, 1], atol=1e-5) and np.allclose(zero.scores, probs[:, 0], atol=1e-5)
    assert one.head.endswith("index 1") and zero.head.endswith("index 0")
    with pytest.raises(ConfigError, match="goes with a 2-logit head"):
        cxrsynth.evaluate(torchvision.models.resnet18(num_classes=1), "normal-covid", wd, image_size=SIZE, positive_index=0)


def test_threshold_youden_is_chosen_on_validation(wd, tmp_path):
    torch.manual_seed(2)
    net = torchvision.models.resnet18(num_classes=1)
    xv, yv = split_images(wd, "validation")
    want = M.youden_threshold(yv, torch.sigmoid(by_hand(net, xv))[:, 0].numpy())
    res = cxrsynth.evaluate(net, "normal-covid", wd, image_size=SIZE, threshold="youden", bootstrap=0)
    assert res.threshold == pytest.approx(want, abs=1e-6) and res.threshold_source == "validation (Youden's J)"
    assert res.validation["threshold"] == res.threshold and sum(res.validation["confusion"].values()) == len(yv)
    # the test split is scored at that threshold
    assert res.confusion["tp"] == sum(s >= res.threshold and lab == 1 for s, lab in zip(res.scores, res.labels))
    # the rigorous protocol's default is the same; the paper's is 0.5; a bad value is one clear error
    assert cxrsynth.evaluate(net, "normal-covid", wd, image_size=SIZE, bootstrap=0).threshold == res.threshold
    paper = cxrsynth.evaluate(net, "normal-covid", wd, image_size=SIZE, bootstrap=0, protocol="paper")
    assert paper.threshold == 0.5 and paper.threshold_source.startswith("fixed 0.5")
    for bad in ("abc", "1.5", "nan"):
        with pytest.raises(ConfigError, match="threshold must be a number in"):
            cxrsynth.evaluate(net, "normal-covid", wd, image_size=SIZE, threshold=bad)


def test_evaluate_takes_a_module_and_returns_a_typed_result(wd, tmp_path):
    assert {"evaluate", "EvalResult", "load"} <= set(cxrsynth.__all__)

    class Tiny(torch.nn.Module):  # a grey-input model: it is fed 1 channel, read from its first convolution
        def __init__(self, outputs=1):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 4, 3)
            self.fc = torch.nn.Linear(4, outputs)

        def forward(self, x):
            assert x.shape[1] == 1
            return self.fc(self.conv(x).mean((2, 3)))

    torch.manual_seed(3)
    net = Tiny()
    res = cxrsynth.evaluate(net, "normal-covid", wd, image_size=SIZE, threshold=0.5, bootstrap=30, normalize="xrv",
                            out_dir=tmp_path / "out")
    assert isinstance(res, cxrsynth.EvalResult) and res.model == "Tiny" and res.checkpoint is None
    x, y = split_images(wd, "test")
    with torch.no_grad():
        want = torch.sigmoid(net.eval()(x * 2048 - 1024))[:, 0].numpy()  # xrv: [-1024, 1024]
    assert np.allclose(res.scores, want, atol=1e-5) and res.n_test == len(y) == 8
    assert res.auroc == pytest.approx(M.auroc(y, want)) and len(res.auroc_ci95) == 2
    assert res.sensitivity == pytest.approx(((want >= 0.5) & (y == 1)).sum() / y.sum())
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["eval_only"] and saved["evaluation"]["normalize"] == "xrv"
    assert saved["runs"][0]["test"]["auroc"] == res.auroc
    with pytest.raises(CheckpointError, match=r"has 3 outputs; expected 1 \(sigmoid\) or 2 \(softmax\)"):
        cxrsynth.evaluate(Tiny(3), "normal-covid", wd, image_size=SIZE)


def test_tensor_size_mismatch_is_one_error_line(wd, tmp_path, capsys):
    net = torchvision.models.resnet18(num_classes=1)
    net.conv1 = torch.nn.Conv2d(1, 64, 7, 2, 3, bias=False)  # a grey-input fine-tune, given as plain resnet18
    torch.save(net.state_dict(), tmp_path / "grey.pth")
    line = cli_error_line(capsys, ["-w", str(wd), "benchmark", "--task", "normal-covid", "--model", "resnet18",
                                   "--eval-only", str(tmp_path / "grey.pth"), "--out", str(tmp_path / "o"), *FAST])
    assert "checkpoint tensors do not fit" in line and "conv1.weight is [64, 1, 7, 7] in the file, [64, 3, 7, 7]" in line


def test_init_takes_a_fine_tuned_torchvision_state_dict(tmp_path):
    """N09: a 2-class fine-tune as --init: its trunk is loaded, its fc is replaced by the benchmark's head."""
    from cxrsynth.measure.classifiers import build

    tuned = torchvision.models.resnet18(num_classes=2)
    torch.save(tuned.state_dict(), tmp_path / "tuned.pth")
    model = build("resnet18", str(tmp_path / "tuned.pth"))
    assert torch.equal(model.stem[0].weight, tuned.conv1.weight) and model.head.out_features == 2
    tuned.conv1 = torch.nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    torch.save(tuned.state_dict(), tmp_path / "grey.pth")
    with pytest.raises(CheckpointError, match=r"conv1.weight is \[64, 1, 7, 7\] in the file"):
        build("resnet18", str(tmp_path / "grey.pth"))


def test_eval_options_need_eval_only_and_the_hint_names_a_real_flag(wd, tmp_path, capsys):
    from cxrsynth.cli import main

    with pytest.raises(SystemExit):
        main(["-w", str(wd), "benchmark", "--threshold", "0.3", "--out", str(tmp_path / "o")])
    assert "go with --eval-only" in capsys.readouterr().err
    line = cli_error_line(capsys, ["-w", str(wd), "benchmark", "--task", "normal-covid", "--arm", "real+own",
                                   "--out", str(tmp_path / "o")])
    assert "--arm real" in line and "--arms" not in line


def test_a_benchmark_checkpoint_names_its_own_architecture(wd, tmp_path, capsys):
    """What `cxrsynth benchmark` saves scores as before: no --model needed (the file names resnet18)."""
    from safetensors.torch import load_file, save_file

    from cxrsynth.stages.benchmark.run import _save_model
    from cxrsynth.measure.classifiers import build

    torch.manual_seed(4)
    model = build("resnet18")
    _save_model(model, tmp_path / "model.safetensors", "resnet18")
    res = run_cli(wd, tmp_path / "o", "--eval-only", str(tmp_path / "model.safetensors"), "--threshold", "0.5")
    assert res["evaluation"]["model"] == "resnet18" and res["evaluation"]["head"].startswith("2 logits")
    x, y = split_images(wd, "test")
    with torch.no_grad():
        want = torch.softmax(model.eval()(x), 1)[:, 1].numpy()
    assert res["runs"][0]["test"]["auroc"] == pytest.approx(M.auroc(y, want))
    # the same file without its head is refused, not scored with a random one
    sd = {k: v for k, v in load_file(str(tmp_path / "model.safetensors")).items() if not k.startswith("head.")}
    save_file(sd, str(tmp_path / "headless.safetensors"), metadata={"arch": "resnet18"})
    line = cli_error_line(capsys, ["-w", str(wd), "benchmark", "--task", "normal-covid", "--eval-only",
                                   str(tmp_path / "headless.safetensors"), "--out", str(tmp_path / "o2"), *FAST])
    assert "has no head (head.weight)" in line and "headless.safetensors" in line


def grey_binary_net():
    """A factory for --model tests.test_eval_only:grey_binary_net (the README's third example)."""
    torch.manual_seed(5)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                               torch.nn.Linear(4, 1))


def test_timm_and_factory_checkpoints(wd, tmp_path):
    import timm
    from safetensors.torch import save_file

    x, y = split_images(wd, "test")
    torch.manual_seed(6)
    tnet = timm.create_model("resnet18", pretrained=False, num_classes=2)
    save_file(tnet.state_dict(), str(tmp_path / "timm.safetensors"))
    res = cxrsynth.evaluate(tmp_path / "timm.safetensors", "normal-covid", wd, model="timm:resnet18", image_size=SIZE,
                            normalize="imagenet", threshold=0.5, bootstrap=0)
    want = torch.softmax(by_hand(tnet, x, "imagenet"), 1)[:, 1].numpy()
    assert np.allclose(res.scores, want, atol=1e-5) and res.head.startswith("2 logits")
    fnet = grey_binary_net()
    with torch.no_grad():  # the checkpoint's weights, not the factory's own, must be scored
        fnet.get_submodule("0").weight.add_(0.5)
        fnet.get_submodule("3").bias.add_(-0.2)
    torch.save(fnet.state_dict(), tmp_path / "factory.pth")
    res = cxrsynth.evaluate(tmp_path / "factory.pth", "normal-covid", wd, model="tests.test_eval_only:grey_binary_net",
                            image_size=SIZE, threshold=0.5, bootstrap=0)
    with torch.no_grad():
        want = torch.sigmoid(fnet.eval()(x))[:, 0].numpy()
        assert not np.allclose(want, torch.sigmoid(grey_binary_net().eval()(x))[:, 0].numpy(), atol=1e-3)
    assert np.allclose(res.scores, want, atol=1e-5) and res.head == "1 logit (sigmoid)"
    torch.save(timm.create_model("resnet18", pretrained=False).state_dict(), tmp_path / "timm1000.pth")
    with pytest.raises(CheckpointError, match="fc has 1000 outputs"):
        cxrsynth.evaluate(tmp_path / "timm1000.pth", "normal-covid", wd, model="timm:resnet18", image_size=SIZE)


def test_a_model_that_cannot_take_the_input_is_one_clear_error(wd):
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 1))  # made for 8 px only
    with pytest.raises(ConfigError, match="does not run on a blank 3-channel 32 px image"):
        cxrsynth.evaluate(net, "normal-covid", wd, image_size=SIZE)


def test_eval_only_scores_at_the_size_the_file_was_trained_at(wd, tmp_path, capsys):
    """A benchmark checkpoint records its training size: --eval-only uses it when --image-size is left out,
    and refuses another size in one line, since a CNN scored at another scale is silently worse."""
    from cxrsynth.cli import main
    from cxrsynth.measure.classifiers import build
    from cxrsynth.stages.benchmark.run import _save_model

    torch.manual_seed(4)
    model = build("resnet18")
    _save_model(model, tmp_path / "model.safetensors", "resnet18", SIZE)
    out = tmp_path / "o"
    main(["-w", str(wd), "benchmark", "--task", "normal-covid", "--out", str(out), "--set", "bootstrap=20",
          "--set", "figures=false", "--eval-only", str(tmp_path / "model.safetensors"), "--threshold", "0.5"])
    res = json.loads((out / "results.json").read_text())
    assert res["config"]["image_size"] == SIZE
    x, y = split_images(wd, "test")  # the test images at SIZE, as the file says
    with torch.no_grad():
        want = torch.softmax(model.eval()(x), 1)[:, 1].numpy()
    assert res["runs"][0]["test"]["auroc"] == pytest.approx(M.auroc(y, want))
    line = cli_error_line(capsys, ["-w", str(wd), "benchmark", "--task", "normal-covid", "--out", str(tmp_path / "o2"),
                                   "--image-size", "48", "--eval-only", str(tmp_path / "model.safetensors")])
    assert "trained at 32 px" in line and "--image-size 32" in line and "model.safetensors" in line
