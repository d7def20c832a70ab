"""Every lint rule has a model that triggers it and one that must not; the doctor is read on made-up curves."""
import math

import pytest

from cnnlab.diagnose.doctor import diagnose
from cnnlab.diagnose.lint import lint
from cnnlab.diagnose.lr_find import suggest
from cnnlab.models import build_model

C = {"filters": 16, "padding": "same"}
CR = {**C, "activation": "relu"}
HEAD = ["global_avgpool", {"dense": 10}]


def rules(layers, shape=(3, 32, 32), classes=10):
    return [f.rule for f in lint(build_model(layers, shape, classes))]


@pytest.mark.parametrize("rule,bad,good", [
    ("linear-stack", [{"conv": C}, "batchnorm", {"conv": CR}] + HEAD, [{"conv": C}, "batchnorm", "relu", {"conv": CR}] + HEAD),
    ("linear-stack", [{"conv": CR}, "flatten", {"dense": 64}, {"dense": 10}],
     [{"conv": CR}, "flatten", {"dense": {"units": 64, "activation": "relu"}}, {"dense": 10}]),
    ("softmax-output", [{"conv": CR}] + HEAD[:1] + [{"dense": {"units": 10, "activation": "softmax"}}], [{"conv": CR}] + HEAD),
    ("softmax-output", [{"conv": CR}] + HEAD + ["softmax"], [{"conv": CR}] + HEAD),
    ("squashed-output", [{"conv": CR}] + HEAD + ["sigmoid"], [{"conv": CR}] + HEAD),
    ("dense-on-feature-map", [{"conv": CR}, {"dense": {"units": 8, "activation": "relu"}}] + HEAD, [{"conv": CR}] + HEAD),
    ("early-collapse", [{"conv": CR}, {"maxpool": 32}, {"conv": CR}] + HEAD, [{"conv": CR}, {"maxpool": 2}, {"conv": CR}] + HEAD),
    ("kernel-larger-than-input", [{"conv": CR}, {"maxpool": 16}, {"conv": {**CR, "kernel": 3}}] + HEAD,
     [{"conv": CR}, {"maxpool": 8}, {"conv": {**CR, "kernel": 3}}] + HEAD),
    ("pool-stride-1", [{"conv": CR}, {"maxpool": {"size": 2, "stride": 1}}] + HEAD, [{"conv": CR}, {"maxpool": 2}] + HEAD),
    ("parameter-hog", [{"conv": CR}, "flatten", {"dense": {"units": 256, "activation": "relu"}}, {"dense": 10}],
     [{"conv": {**CR, "filters": 256}}, {"conv": {**CR, "filters": 256}}] + HEAD),
    ("batchnorm-then-dropout", [{"conv": CR}, "batchnorm", {"dropout": 0.3}] + HEAD, [{"conv": CR}, "batchnorm", {"maxpool": 2}, {"dropout": 0.3}] + HEAD),
    ("dropout-before-batchnorm", [{"conv": CR}, {"dropout": 0.3}, "batchnorm"] + HEAD, [{"conv": CR}, "batchnorm"] + HEAD),
    ("bias-before-batchnorm", [{"conv": C}, "batchnorm", "relu"] + HEAD, [{"conv": {**C, "bias": False}}, "batchnorm", "relu"] + HEAD),
    ("too-few-filters", [{"conv": CR}, {"conv": {**CR, "filters": 2}}] + HEAD, [{"conv": CR}, {"conv": CR}] + HEAD),
    ("deep-plain-net", [{"conv": {**CR, "filters": 4}}] * 22 + HEAD,
     [{"residual": [{"conv": {**CR, "filters": 3}}]}] * 22 + HEAD),
])
def test_lint_rule(rule, bad, good):
    assert rule in rules(bad)
    assert rule not in rules(good)


def test_named_architectures_lint_clean():
    for name in ("tutorial", "resnet9", "resnet18", "allconv"):
        assert rules(name) == [], name


def test_a_finding_names_layers_why_and_fix():
    finding = lint(build_model([{"conv": C}, {"conv": CR}] + HEAD, (3, 32, 32), 10))[0]
    text = finding.render()
    assert finding.layers == ["1", "2"] and "why:" in text and "fix: add `activation: relu` to layer 1" in text


def rows(train_loss, train_acc, ev_loss=None, ev_acc=None, prefix="val"):
    out = []
    for i, (l, a) in enumerate(zip(train_loss, train_acc)):
        r = {"epoch": i + 1, "loss": l, "acc": a}
        if ev_acc:
            r[f"{prefix}_loss"], r[f"{prefix}_acc"] = ev_loss[i], ev_acc[i]
        out.append(r)
    return out


def test_doctor_diverged():
    v = diagnose(rows([2.0, 1.5, math.nan], [0.3, 0.4, None]))
    assert v.regime == "diverged" and "epoch 3" in v.headline and "learning rate" in v.prescriptions[0]


def test_doctor_chance_level():
    v = diagnose(rows([2.303, 2.302, 2.303], [0.10, 0.10, 0.10], [2.303] * 3, [0.1] * 3))
    assert v.regime == "chance" and "sanity" in v.prescriptions[0]


def test_doctor_lr_too_high():
    v = diagnose(rows([2.0, 1.6, 1.9, 1.5, 2.1, 1.8], [0.3, 0.4, 0.35, 0.45, 0.3, 0.35],
                      [1.9, 1.7, 2.0, 1.6, 2.2, 1.9], [0.3, 0.38, 0.32, 0.42, 0.28, 0.33]))
    assert v.regime == "lr-too-high" and "lower the learning rate" in v.prescriptions[0]


def test_doctor_lr_too_low():
    v = diagnose(rows([2.30, 2.29, 2.28, 2.27, 2.26], [0.12, 0.13, 0.14, 0.15, 0.16],
                      [2.29, 2.28, 2.27, 2.26, 2.25], [0.13, 0.14, 0.15, 0.16, 0.17]))
    assert v.regime == "lr-too-low" and "raise the learning rate" in v.prescriptions[0]


def test_doctor_overfitting_names_the_epoch_and_gap():
    train_acc = [0.5, 0.6, 0.7, 0.8, 0.88, 0.93]
    v = diagnose(rows([1.4, 1.1, 0.8, 0.55, 0.35, 0.2], train_acc,
                      [1.2, 1.05, 1.0, 1.1, 1.25, 1.4], [0.55, 0.6, 0.63, 0.62, 0.61, 0.61]))
    assert v.regime == "overfitting"
    assert v.headline.startswith("overfitting since epoch 3: training accuracy 0.93 and rising, validation 0.61 "
                                 "and falling; gap 0.32")
    assert "augmentation" in v.prescriptions[0]


def test_doctor_underfitting():
    v = diagnose(rows([1.8, 1.6, 1.55, 1.52, 1.51, 1.5], [0.35, 0.42, 0.44, 0.45, 0.45, 0.45],
                      [1.7, 1.6, 1.56, 1.55, 1.55, 1.55], [0.40, 0.43, 0.44, 0.45, 0.45, 0.45]))
    assert v.regime == "underfitting" and "bigger" in v.prescriptions[0]


def test_doctor_still_improving():
    v = diagnose(rows([1.5, 1.2, 1.0, 0.9, 0.8, 0.7], [0.45, 0.55, 0.62, 0.66, 0.7, 0.74],
                      [1.4, 1.15, 0.98, 0.88, 0.79, 0.7], [0.5, 0.58, 0.64, 0.68, 0.72, 0.76], prefix="test"))
    assert v.regime == "still-improving" and "train longer" in v.prescriptions[0] and "test" in v.headline


def test_doctor_good_fit():
    v = diagnose(rows([1.2, 0.8, 0.6, 0.5, 0.45, 0.44, 0.44], [0.6, 0.75, 0.84, 0.89, 0.91, 0.92, 0.92],
                      [1.0, 0.7, 0.55, 0.5, 0.48, 0.47, 0.47], [0.65, 0.76, 0.82, 0.84, 0.85, 0.852, 0.852]))
    assert v.regime == "good-fit"


def test_lr_find_suggestion_rule():
    lrs = [10 ** (-6 + i * 0.1) for i in range(60)]
    losses = [2.3 - 2.0 / (1 + math.exp(-(math.log10(lr) + 3) * 3)) + (0.5 * max(0, math.log10(lr) + 1.5) ** 2)
              for lr in lrs]
    suggestion, rule, steepest, minimum = suggest(lrs, losses)
    assert suggestion == pytest.approx(minimum / 10) and "one tenth" in rule
    assert 1e-4 < steepest < 1e-2 < minimum


# ---------------------------------------------------------------- the commands, as a user types them

def test_lint_command(tmp_path, capsys):
    from cnnlab.cli import main
    path = tmp_path / "m.yaml"
    path.write_text("layers:\n  - conv: {filters: 16}\n  - conv: {filters: 16, activation: relu}\n"
                    "  - flatten\n  - dense: {units: 10, activation: softmax}\n")
    assert main(["lint", str(path), "--strict"]) == 1
    out = capsys.readouterr().out
    assert "[linear-stack] layers 1, 2" in out and "[softmax-output] layer 4" in out
    assert main(["lint", "resnet9"]) == 0 and "no findings" in capsys.readouterr().out


def test_doctor_sanity_and_lr_find_commands(data_dir, tmp_path, capsys):
    from cnnlab.cli import main
    run = tmp_path / "run"
    base = ["--data", "mnist", "--data-dir", str(data_dir), "--model", "tutorial"]
    assert main(["train", *base, "--epochs", "2", "--batch-size", "32", "--run-dir", str(run)]) == 0
    out = capsys.readouterr().out
    assert "Diagnosis:" in out  # the short verdict at the end of every train
    assert main(["doctor", str(run)]) == 0
    assert capsys.readouterr().out.startswith("Diagnosis: ")
    assert main(["sanity", *base, "--steps", "300"]) == 0
    out = capsys.readouterr().out
    assert "Overfit one batch: PASSED" in out and "Gradient norm per layer" in out
    assert main(["sanity", *base[:4], "--model", "[{conv: 8}, {conv: 8}, flatten, {dense: 10}, sigmoid]",
                 "--steps", "20"]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "likely cause" in out
    png = tmp_path / "lr.png"
    assert main(["lr-find", *base, "--steps", "30", "--batch-size", "32", "--out", str(png)]) == 0
    assert "Suggested learning rate:" in capsys.readouterr().out and png.exists()
