"""Starting from trained weights: a file, a training script's checkpoint, a past run; PyTorch models made by a
function or with arguments (tests/pytorch_cifar: models of a well-known public CIFAR-10 collection, MIT)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import save_file

import cnnlab
from cnnlab.cli import main
from cnnlab.errors import UserError
from cnnlab.interop.pytorch import import_pytorch, load
from cnnlab.models import build_model
from cnnlab.models.weights import load_weights

CIFAR = Path(__file__).parent / "pytorch_cifar"


@pytest.mark.parametrize("reference, params", [
    ("resnet.py:ResNet18", 11_173_962),              # a function returning the module
    ("vgg.py:VGG('VGG16')", 14_728_266),             # a class that needs an argument
    ("mobilenetv2.py:MobileNetV2", 2_296_922),
])
def test_factory_functions_and_constructor_arguments_import_with_their_counts(reference, params):
    imported = import_pytorch(str(CIFAR / reference), (3, 32, 32))
    assert imported.params == params
    built = build_model(imported.spec, (3, 32, 32), 10)
    assert sum(p.numel() for p in built.parameters()) == params


def test_arguments_can_come_with_args_and_a_missing_one_is_named(tmp_path, capsys):
    out = tmp_path / "vgg11.yaml"
    assert main(["import", str(CIFAR / "vgg.py:VGG"), "--args", "'VGG11'", "-o", str(out)]) == 0
    assert "made the model with VGG('VGG11')" in capsys.readouterr().out
    assert main(["import", str(CIFAR / "vgg.py:VGG"), "-o", str(tmp_path / "x.yaml")]) == 2
    err = capsys.readouterr().err
    assert "VGG() fails" in err and "vgg.py:VGG(vgg_name=...)" in err and "Traceback" not in err


def test_their_checkpoint_loads_into_the_imported_model_and_computes_what_theirs_does(tmp_path):
    net = load(str(CIFAR / "resnet.py:ResNet18"))[0].eval()
    with torch.no_grad():  # trained-looking statistics, so that a wrong pairing shows
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2)
    checkpoint = tmp_path / "ckpt.pth"  # as their training script saves it, through DataParallel
    torch.save({"net": torch.nn.DataParallel(net).state_dict(), "acc": 93.02, "epoch": 199}, checkpoint)
    assert next(iter(torch.load(checkpoint)["net"])).startswith("module.")
    imported = import_pytorch(str(CIFAR / "resnet.py:ResNet18"), (3, 32, 32))
    ours = build_model(imported.spec, (3, 32, 32), 10)
    loaded = load_weights(ours, checkpoint, ours.spec["weights_names"])
    assert not loaded.new and not loaded.unused and not loaded.replaced
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(ours.eval()(x), net(x), atol=1e-5)


def test_a_run_continues_from_another_run_s_weights_with_its_parent(data_dir, tmp_path):
    base = cnnlab.train({"model": "tutorial", "data": {"name": "mnist", "dir": str(data_dir)}, "epochs": 1,
                         "threads": 1}, run_dir=str(tmp_path / "base"), quiet=True, store=False)
    heard = []
    run = cnnlab.Job({"model": {"name": "tutorial", "weights": str(base.dir)}, "epochs": 1, "threads": 1,
                      "data": {"name": "mnist", "dir": str(data_dir)}}, run_dir=tmp_path / "next",
                     listeners=[heard.append], store=False).run()
    assert run.config.parent == "base" and run.config.weights == str(base.dir)
    assert run.result["weights"]["loaded"] == 10 and run.result["weights"]["new"] == []
    assert any(e.type == "log" and e.data["text"] == f"weights from {base.dir}: 10 tensors loaded" for e in heard)
    saved = yaml.safe_load((run.dir / "config.yaml").read_text())
    assert saved["weights"] == str(base.dir) and saved["model"] in ("tutorial", {"name": "tutorial"})


def test_the_classifier_is_made_new_for_another_class_count(tmp_path):
    ten = build_model("tutorial", (1, 28, 28), 10)
    save_file({k: v.contiguous() for k, v in ten.state_dict().items()}, str(tmp_path / "w.safetensors"))
    five = build_model("tutorial", (1, 28, 28), 5)
    report = load_weights(five, tmp_path / "w.safetensors")
    head = [name for name, _, _ in report.replaced]
    assert head and all(name.startswith(f"layers.{len(five.infos) - 1}.") for name in head)
    assert "new classifier (the class count differs)" in "\n".join(report.lines())
    assert torch.equal(five.state_dict()["layers.0.0.weight"], ten.state_dict()["layers.0.0.weight"])


class Payload:  # what a pickle that runs code on load would hold
    def __reduce__(self):
        return (print, ("this ran",))


@pytest.mark.parametrize("make, says", [
    (lambda p: torch.save({"net": Payload()}, p), "refused, it holds Python objects that would run code"),
    (lambda p: p.write_bytes(b"PK\x03\x04 truncated"), "cannot be read as PyTorch weights"),
    (lambda p: p.write_text("root:x:0:0:root:/root:/bin/bash\n"), "it is a text file (it begins 'root:x:0:0"),
    (lambda p: (torch.save(build_model("tutorial", (1, 28, 28), 10).state_dict(), p),
                p.write_bytes(p.read_bytes()[:4000])), "it is a zip archive cut short or damaged"),
    (lambda p: torch.save({"epoch": 3, "acc": 0.9}, p), "holds a dict without a state dict (its keys: epoch, acc)"),
    (lambda p: torch.save({"conv.weight": torch.zeros(2, 2)}, p), "none of its 1 tensors fits this model"),
    (lambda p: torch.save(build_model("tutorial", (3, 28, 28), 10).state_dict(), p),
     "they were trained on 3-channel images and this data has 1"),
    (lambda p: torch.save({**build_model("tutorial", (1, 28, 28), 10).state_dict(),
                           "layers.0.0.weight": torch.zeros(7, 1, 5, 5)}, p), "is (7, 1, 5, 5) in the file and"),
])
def test_a_weights_file_that_is_not_weights_for_this_model_gets_one_sentence(make, says, tmp_path, data_dir, capsys):
    path = tmp_path / "w.pth"
    make(path)
    with pytest.raises(UserError) as err:
        load_weights(build_model("tutorial", (1, 28, 28), 10), path)
    assert says in str(err.value) and "\n" not in str(err.value)
    code = main(["train", "--data", "mnist", "--data-dir", str(data_dir), "--weights", str(path), "--epochs", "1",
                 "--run-dir", str(tmp_path / "run"), "--no-store"])
    out = capsys.readouterr()
    assert code == 2 and says in out.err and "Traceback" not in out.err and "this ran" not in out.out


def test_weights_given_twice_and_a_missing_file(tmp_path, data_dir):
    cfg = {"model": {"name": "tutorial", "weights": "a.pt"}, "weights": "b.pt",
           "data": {"name": "mnist", "dir": str(data_dir)}}
    with pytest.raises(UserError, match="given twice"):
        cnnlab.Job(cfg, run_dir=tmp_path / "r", store=False)
    with pytest.raises(UserError, match="no such file or run directory"):
        load_weights(build_model("tutorial", (1, 28, 28), 10), tmp_path / "nothing.pt")


def test_a_fine_tune_trains_the_head_first_with_the_body_s_statistics_kept_then_everything(data_dir, tmp_path):
    small_cnn = str(Path(__file__).parents[1] / "examples" / "small-cnn.yaml")
    data = {"name": "mnist", "dir": str(data_dir)}
    base = cnnlab.train({"model": small_cnn, "data": data, "epochs": 1, "threads": 1, "batch_size": 50},
                        run_dir=str(tmp_path / "base"), quiet=True, store=False)
    start = {k: v.clone() for k, v in cnnlab.Run(base.dir).model.state_dict().items()}
    job = cnnlab.Job({"model": small_cnn, "data": data, "epochs": 2, "threads": 1, "batch_size": 50,
                      "weights": str(base.dir), "finetune": {"freeze": "body", "head_epochs": 1}},
                     run_dir=tmp_path / "tuned", store=False)
    after = []
    job.listeners.append(lambda e: e.type == "epoch_end" and after.append(
        {k: v.detach().clone() for k, v in job.session.model.state_dict().items()}))
    job.run()
    head = max(int(k.split(".")[1]) for k in start)  # the last layer, the classifier
    body = [k for k in start if int(k.split(".")[1]) != head and not k.endswith("num_batches_tracked")]
    assert all(torch.equal(after[0][k], start[k]) for k in body)  # weights and BatchNorm statistics kept
    assert not all(torch.equal(after[0][k], start[k]) for k in start if int(k.split(".")[1]) == head)
    assert not all(torch.equal(after[1][k], after[0][k]) for k in body)  # then everything trains
    scales = sorted({g["lr_scale"] for g in job.session.trainer.optimizer.param_groups})
    assert scales[0] == pytest.approx(0.01) and scales[-1] == 1.0  # lr/100 at the first layer, lr at the head
    summary = job.session.summary
    assert summary.trainable == sum(p.numel() for p in job.session.model.layers[head].parameters())
    assert [r.frozen for r in summary.rows if r.params and r.depth == 0][-1] is False
    assert any(r.layer.endswith("(frozen)") for r in summary.rows)


def test_lint_warns_of_a_frozen_net_trained_too_long_and_a_fine_tune_at_a_scratch_rate():
    from cnnlab.diagnose.lint import lint_training
    from cnnlab.train.session import prepare_config
    long = prepare_config({"epochs": 30, "weights": "w.pt", "finetune": {"head_epochs": "all"}})
    scratch = prepare_config({"epochs": 5, "weights": "w.pt"})
    gentle = prepare_config({"epochs": 5, "weights": "w.pt", "finetune": {}})
    assert [f.rule for f in lint_training(long)] == ["frozen-too-long"]
    assert [f.rule for f in lint_training(scratch)] == ["finetune-at-scratch-rate"]
    assert lint_training(gentle) == []


def test_the_doctor_prescribes_differently_for_a_run_from_weights():
    from cnnlab.diagnose.doctor import diagnose
    rows = [{"epoch": e, "loss": 2.0 - 0.01 * e, "acc": 0.3 + 0.01 * e, "val_loss": 2.0 - 0.01 * e,
             "val_acc": 0.3 + 0.01 * e, "lr": 0.01} for e in range(1, 13)]
    base = {"dropout": [], "batchnorm": True, "conv_filters": [32, 64], "dense_head": None, "weight_decay": 5e-4,
            "label_smoothing": 0.1, "augment": ["crop"], "recipe": None}
    scratch = diagnose(rows, 10, {**base, "pretrained": None})
    frozen = diagnose(rows, 10, {**base, "pretrained": {"weights": "runs/a", "finetune": {
        "freeze": "body", "head_epochs": "all", "rates": "discriminative", "spread": 100.0}}})
    assert frozen.regime == scratch.regime and frozen.prescriptions[0].startswith("unfreeze more")
    assert frozen.prescriptions[1:] == scratch.prescriptions
    assert any("started from the weights of runs/a" in d for d in frozen.details)


def test_a_layer_the_weights_left_new_trains_while_the_rest_of_the_body_is_frozen(data_dir, tmp_path):
    state = build_model("tutorial", (1, 28, 28), 10).state_dict()
    state["layers.0.0.weight"] = torch.zeros(7, 1, 5, 5)  # another first conv: left new with weights_partial
    torch.save(state, tmp_path / "w.pt")
    cfg = {"model": "tutorial", "data": {"name": "mnist", "dir": str(data_dir)}, "epochs": 3, "threads": 1,
           "weights": str(tmp_path / "w.pt"), "weights_partial": True, "finetune": {"freeze": "body", "head_epochs": 2}}
    job = cnnlab.Job(cfg, run_dir=tmp_path / "tuned", store=False)
    seen, logs = [], []
    job.listeners += [lambda e: e.type in ("fit_start", "epoch_end") and seen.append(
                          {k: v.detach().clone() for k, v in job.session.model.state_dict().items()}),
                      lambda e: e.type == "log" and logs.append(e.data["text"]),
                      lambda e: e.type == "epoch_end" and e.data["row"]["epoch"] == 1 and job.stop()]
    job.run()
    start, first = seen
    head = max(int(k.split(".")[1]) for k in start)
    frozen = [k for k in start if int(k.split(".")[1]) not in (0, head) and k.endswith("weight")]
    assert frozen and all(torch.equal(first[k], start[k]) for k in frozen)
    assert not torch.equal(first["layers.0.0.weight"], start["layers.0.0.weight"])  # random: it trains
    assert any("1 layer whose weights were left new train from the start" in line for line in logs)
    assert "(frozen)" not in job.session.summary.rows[0].layer
    resumed = cnnlab.Job.resume(tmp_path / "tuned", store=False)  # epoch 2, still in the head epochs
    resumed.listeners.append(lambda e: e.type == "epoch_end" and seen.append(
        {k: v.detach().clone() for k, v in resumed.session.model.state_dict().items()}))
    resumed.run()
    second = seen[2]
    assert all(torch.equal(second[k], start[k]) for k in frozen)
    assert not torch.equal(second["layers.0.0.weight"], first["layers.0.0.weight"])
