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
    ("duplicate-branch", [{"conv": CR}, {"concat": [[], [{"conv": CR}], []]}] + HEAD,
     [{"conv": CR}, {"concat": [[], [{"conv": CR}], [{"conv": CR}]]}] + HEAD),
])
def test_lint_rule(rule, bad, good):
    assert rule in rules(bad)
    assert rule not in rules(good)


def test_lint_reads_inside_concat_branches():
    inception = [{"conv": CR}, {"concat": [[{"conv": {**C, "kernel": 1}}, "batchnorm", "relu"],
                                           [{"maxpool": {"size": 3, "stride": 1, "padding": "same"}}]]}] + HEAD
    findings = lint(build_model(inception, (3, 32, 32), 10))
    assert [(f.rule, f.layers) for f in findings] == [("bias-before-batchnorm", ["2.1.1", "2.1.2"])]
    # a stride-1 pool is Inception's pooling branch inside a concat; outside one it still wastes time
    assert "pool-stride-1" in rules([{"conv": CR}, {"maxpool": {"size": 3, "stride": 1, "padding": "same"}}] + HEAD)
    duplicate = lint(build_model([{"conv": CR}, {"concat": [[{"maxpool": {"size": 3, "stride": 1, "padding": "same"}}],
                                                            [], [{"maxpool": {"size": 3, "stride": 1,
                                                                              "padding": "same"}}]]}] + HEAD,
                                 (3, 32, 32), 10))
    assert [(f.rule, f.layers) for f in duplicate] == [("duplicate-branch", ["2.1", "2.3"])]
    assert "fix: remove branch 3 of layer 2" in duplicate[0].render()


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


def test_doctor_tells_a_network_knocked_dead_by_a_huge_rate_from_a_broken_one():
    # real curve: SGD lr 0.9 on Fashion-MNIST (bench/doctor_regimes.py)
    r = rows([2.6525, 2.3114, 2.3112, 2.3111, 2.3105, 2.3101, 2.3104, 2.3136],
             [0.101, 0.097, 0.102, 0.100, 0.099, 0.101, 0.101, 0.100], [2.31] * 8, [0.1] * 8)
    for row in r:
        row["lr"] = 0.9
    v = diagnose(r)
    assert v.regime == "lr-too-high" and "2.652" in v.headline and "0.9" in v.headline
    assert "lower the learning rate" in v.prescriptions[0]
    # it learned first, then collapsed
    v = diagnose(rows([1.9, 2.31, 2.31], [0.35, 0.10, 0.10], [2.3] * 3, [0.1] * 3))
    assert v.regime == "lr-too-high" and "0.350" in v.headline


def test_doctor_tells_a_tiny_rate_at_chance_from_a_dead_network():
    # real curves: SGD lr 1e-5 (falls every epoch) and a saturated-sigmoid network (wanders)
    tiny = rows([2.30814, 2.30803, 2.30795, 2.30781, 2.3077], [0.0998, 0.0998, 0.1004, 0.1002, 0.0998],
                [2.308] * 5, [0.096] * 5)
    v = diagnose(tiny)
    assert v.regime == "lr-too-low" and "every one of 5 epochs" in v.headline
    assert "raise the learning rate" in v.prescriptions[0] and "sanity" in v.prescriptions[1]
    dead = rows([2.30464, 2.30462, 2.30458, 2.3046], [0.0976] * 4, [2.304] * 4, [0.1] * 4)
    assert diagnose(dead).regime == "chance"


def test_doctor_a_rate_that_never_decays_and_wobbles_is_too_high():
    # real curve: Fashion-MNIST, tutorial net, SGD at a constant 0.2
    r = rows([1.913, 1.340, 1.096, 1.029, 0.996, 0.987, 0.975, 0.960],
             [0.40, 0.606, 0.723, 0.747, 0.767, 0.774, 0.781, 0.785],
             [1.184, 0.886, 0.767, 0.697, 0.640, 0.634, 0.645, 0.680],
             [0.577, 0.696, 0.699, 0.774, 0.777, 0.778, 0.777, 0.761], prefix="test")
    for row in r:
        row["lr"] = 0.2
    v = diagnose(r)
    assert v.regime == "lr-too-high" and "stayed at 0.2" in v.headline and "(0.645 -> 0.680 at epoch 8)" in v.headline
    assert v.prescriptions[0].startswith("decay the learning rate")
    wide = [dict(row, acc=row["acc"] + 0.1) for row in r]  # training far above test: that is overfitting
    assert diagnose(wide).regime == "overfitting"
    for i, row in enumerate(r):  # the same curve under a decaying schedule is not blamed on the rate
        row["lr"] = 0.2 * (1 - i / len(r))
    assert diagnose(r).regime != "lr-too-high"


def test_doctor_does_not_read_a_fit_into_one_or_two_epochs():
    v = diagnose(rows([2.1], [0.17], [1.9], [0.26]))
    assert v.regime == "too-short" and "1 epoch cannot show a trend" in v.headline and "--epochs 5" in v.prescriptions[0]
    assert diagnose(rows([2.1, 1.8], [0.17, 0.3], [1.9, 1.7], [0.26, 0.35])).regime == "too-short"
    assert diagnose(rows([2.0, float("nan")], [0.2, None])).regime == "diverged"  # that still reads at once


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


def test_doctor_a_small_model_still_creeping_up_is_underfitting_first():
    # real curve: the tutorial net at a tenth of its width on CIFAR-10 (bench/doctor_regimes.py)
    train = [0.101, 0.211, 0.274, 0.302, 0.310, 0.317, 0.325, 0.337, 0.339, 0.344]
    test = [0.127, 0.269, 0.307, 0.335, 0.312, 0.335, 0.345, 0.355, 0.364, 0.372]
    v = diagnose(rows([2.31, 2.15, 2.02, 1.97, 1.95, 1.93, 1.92, 1.90, 1.89, 1.88], train,
                      [2.30, 1.99, 1.86, 1.81, 1.84, 1.79, 1.78, 1.75, 1.75, 1.72], test, prefix="test"))
    assert v.regime == "underfitting" and "bigger" in v.prescriptions[0]
    assert "still rising" in v.prescriptions[1]


def test_doctor_still_improving():
    v = diagnose(rows([1.5, 1.2, 1.0, 0.9, 0.8, 0.7], [0.45, 0.55, 0.62, 0.66, 0.7, 0.74],
                      [1.4, 1.15, 0.98, 0.88, 0.79, 0.7], [0.5, 0.58, 0.64, 0.68, 0.72, 0.76], prefix="test"))
    assert v.regime == "still-improving" and "train longer" in v.prescriptions[0] and "test" in v.headline


def test_doctor_reads_the_test_curve_where_the_validation_curve_stops_early():
    # a rescue's final run: validated at the race's rung (epoch 1), then trained on those images too and tested
    out = rows([2.0, 1.5, 1.3, 1.2, 1.1, 1.05], [0.3, 0.5, 0.6, 0.66, 0.7, 0.72],
               [1.4, 1.1, 0.95, 0.85, 0.8, 0.78], [0.45, 0.6, 0.68, 0.72, 0.75, 0.76], prefix="test")
    out[0].update(val_loss=1.5, val_acc=0.42)
    for r in out:
        if r["epoch"] == 1:
            r.pop("test_loss"), r.pop("test_acc")
    v = diagnose(out)
    assert v.regime != "overfitting" and "test" in v.headline and "validation" not in v.headline


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


# ---- the doctor with the run's facts: prescriptions name this model's layers and recipe

def _facts(layers, config_updates=None, data="cifar10"):
    from cnnlab.diagnose.facts import run_facts
    from cnnlab.train.session import prepare_config
    cfg = prepare_config({"model": layers, "data": {"name": data}, **(config_updates or {})})
    return run_facts(build_model(layers, (3, 32, 32), 10), cfg)


def test_run_facts_of_the_keras_example():
    from pathlib import Path
    example = Path(__file__).resolve().parent.parent / "examples" / "keras-cifar10.yaml"
    from cnnlab.diagnose.facts import run_facts
    from cnnlab.train.session import prepare_config
    cfg = prepare_config(str(example))
    facts = run_facts(build_model(cfg.model, (3, 32, 32), 10), cfg)
    assert facts["dropout"] == [{"layer": "6", "rate": 0.2}, {"layer": "12", "rate": 0.3},
                                {"layer": "18", "rate": 0.4}, {"layer": "21", "rate": 0.5},
                                {"layer": "23", "rate": 0.5}]
    assert facts["batchnorm"] and facts["conv_filters"] == [32, 32, 64, 64, 128, 128]
    assert facts["dense_head"]["layer"] == "20" and facts["dense_head"]["share"] == pytest.approx(0.72, abs=0.01)
    assert facts["augment"] == ["crop", "flip"] and facts["weight_decay"] == 5e-4


UNDERFIT = rows([1.8, 1.6, 1.55, 1.52, 1.51, 1.5], [0.35, 0.42, 0.44, 0.45, 0.45, 0.45],
                [1.7, 1.6, 1.56, 1.55, 1.55, 1.55], [0.40, 0.43, 0.44, 0.45, 0.45, 0.45])


def test_underfitting_prescriptions_name_the_heavy_dropout_and_skip_what_the_model_has():
    facts = _facts([{"conv": CR}, "batchnorm", {"maxpool": 2}, {"dropout": 0.5}, {"conv": {**CR, "filters": 32}},
                    "global_avgpool", {"dropout": 0.5}, {"dense": 10}])
    v = diagnose(UNDERFIT, 10, facts)
    assert v.regime == "underfitting"
    assert v.prescriptions[0].startswith("halve the heavy dropout (0.5 at layers 4 and 7)")
    assert "16-32 -> 32-64" in v.prescriptions[1]
    assert not any("batchnorm" in p for p in v.prescriptions)  # it has BatchNorm already
    plain = diagnose(UNDERFIT, 10, _facts([{"conv": CR}, {"conv": CR}] + HEAD))
    assert "bigger" in plain.prescriptions[0] and any("batchnorm" in p for p in plain.prescriptions)
    assert not any("dropout" in p for p in plain.prescriptions)
    # without batchnorm, with dropout: batchnorm goes in and the dropout comes out, as the rescue does it
    dropped = diagnose(UNDERFIT, 10, _facts([{"conv": CR}, {"conv": CR}, {"dropout": 0.25}] + HEAD))
    assert dropped.prescriptions[-1].startswith("add `batchnorm` after the convolutions and take the dropout out")


OVERFIT = rows([1.4, 1.1, 0.8, 0.55, 0.35, 0.2], [0.5, 0.6, 0.7, 0.8, 0.88, 0.93],
               [1.2, 1.05, 1.0, 1.1, 1.25, 1.4], [0.55, 0.6, 0.63, 0.62, 0.61, 0.61])


def test_overfitting_prescriptions_follow_what_the_run_lacked():
    bare = _facts([{"conv": CR}, "flatten", {"dense": {"units": 256, "activation": "relu"}}, {"dense": 10}],
                  {"augment": "none", "optimizer": {"weight_decay": 0.0}, "loss": {"label_smoothing": 0.0}})
    v = diagnose(OVERFIT, 10, bare)
    assert v.prescriptions[0].startswith("add data augmentation: the run used none")
    assert "layer 3 (dense 256) holds" in v.prescriptions[1]
    assert any("weight_decay 5e-4 (the run used none)" in p for p in v.prescriptions)
    assert any("add dropout" in p for p in v.prescriptions)
    dressed = _facts([{"conv": CR}, {"dropout": 0.3}] + HEAD)
    v = diagnose(OVERFIT, 10, dressed)
    assert v.prescriptions[0].startswith("strengthen the augmentation (now crop, flip)")
    assert not any("weight decay" in p or "add dropout" in p or "dense head" in p for p in v.prescriptions)


def test_run_facts_read_a_users_own_module():
    import torch.nn as nn
    from cnnlab.diagnose.facts import run_facts
    from cnnlab.train.session import prepare_config
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Dropout(0.4), nn.Flatten(), nn.LazyLinear(10))
    facts = run_facts(net, prepare_config({"data": {"name": "cifar10"}}))
    assert facts["dropout"] == [{"layer": "2", "rate": 0.4}] and facts["conv_filters"] == [8]
    assert not facts["batchnorm"]


def test_doctor_on_a_broken_run_directory_says_which_file(tmp_path, capsys):
    from cnnlab.cli import main
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("model: tutorial\ndata: {name: cifar10}\n")
    assert main(["doctor", str(run)]) == 2
    assert "data.json: missing" in capsys.readouterr().err
    (run / "data.json").write_text('{"classes": ["a", "b"], "input_shape": [3, 32, 32]}')
    (run / "metrics.csv").write_text("epoch,loss,acc\n1,2.0,0.5\n2,oops,0.6\n")
    assert main(["doctor", str(run)]) == 2
    assert "metrics.csv line 3: column 'loss' holds 'oops'" in capsys.readouterr().err
    (run / "metrics.csv").write_text("epoch,loss,acc\n1,2.0,0.5\n")
    (run / "config.yaml").write_text("model: [unclosed\n")
    assert main(["doctor", str(run)]) == 2
    assert "config.yaml line" in capsys.readouterr().err


@pytest.mark.parametrize("run_dir,regime,first", [
    ("keras-cifar10", "still-improving", "train longer: --epochs 40"),
    ("keras-cifar10-bf16", "still-improving", "train longer: --epochs 40"),
    ("keras-cifar10-e40", "underfitting", "halve the heavy dropout (0.3 at layer 12, 0.4 at layer 18, 0.5 at layers "
                                          "21 and 23)"),
    ("keras-cifar10-half-dropout", "underfitting", "make the model bigger: double the filters of every conv "
                                                   "(32-64-128 -> 64-128-256"),
])
def test_the_verdicts_the_readme_quotes_on_the_recorded_keras_runs(run_dir, regime, first):
    from pathlib import Path
    from cnnlab.diagnose.facts import facts_for_run
    from cnnlab.train import Run
    run = Run(Path(__file__).resolve().parent.parent / "docs" / "results" / run_dir)
    verdict = diagnose(run.metrics, len(run.data_info["classes"]), facts_for_run(run))
    assert verdict.regime == regime and verdict.prescriptions[0].startswith(first)


def test_a_recipe_run_is_diagnosed_against_its_budget():
    """cifar10-90 is small and short on purpose: the doctor says so and offers cifar10-fast before 'bigger'."""
    from cnnlab.diagnose.facts import run_facts
    from cnnlab.train.session import prepare_config
    cfg = prepare_config({"recipe": "cifar10-90"})
    facts = run_facts(build_model(cfg.model, (3, 32, 32), 10), cfg)
    assert facts["recipe"]["name"] == "cifar10-90" and [r["name"] for r in facts["recipe"]["stronger"]] == ["cifar10-fast", "cifar10-95", "cifar10-96"]
    v = diagnose(UNDERFIT, 10, facts)
    assert v.regime == "underfitting" and v.details[0].startswith("this run is recipe cifar10-90 — 90% on CIFAR-10")
    assert v.prescriptions[0].startswith("for more accuracy at a measured cost: --recipe cifar10-fast — 94%")
    assert any("bigger" in p for p in v.prescriptions[1:])  # still there, after the recipe
    top = prepare_config({"recipe": "cifar10-fast"})
    facts = run_facts(build_model(top.model, (3, 32, 32), 10), top)
    assert [r["name"] for r in facts["recipe"]["stronger"]] == ["cifar10-95", "cifar10-96"]
    assert "recipe cifar10-fast" in diagnose(UNDERFIT, 10, facts).details[0]
    other = prepare_config({"recipe": "cifar10-90", "data": {"name": "cifar100"}})  # another data set: no offer
    assert recipe_names(run_facts(build_model(other.model, (3, 32, 32), 100), other)) == []
    plain = _facts([{"conv": CR}, {"conv": CR}] + HEAD)  # no recipe: nothing changes
    assert plain["recipe"] is None and not diagnose(UNDERFIT, 10, plain).details[0].startswith("this run is")


def recipe_names(facts):
    return [r["name"] for r in facts["recipe"]["stronger"]]
