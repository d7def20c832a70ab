"""A finished run loads as one TrainedModel, and every tool that uses a run agrees with it: `cnnlab eval`
scores as the final evaluation of training did, and predict, the report and See give the same probabilities."""
import json

import pytest
import torch
from PIL import Image

from cnnlab import Run, UserError
from cnnlab.cli import main
from cnnlab.train import TrainedModel
from cnnlab.train.predict import predict
from cnnlab.train.session import prepare_data
from cnnlab.viz.activations import see
from cnnlab.viz.report import build_figures


def cli(*args):
    return main([str(a) for a in args])


@pytest.fixture
def cifar_run(data_dir, tmp_path, capsys):
    """Two epochs on the tiny CIFAR-10 set with the data set's augmentation asked for (a run this short has
    none by default): natural images, so training flips and the test set gets flip TTA."""
    run = tmp_path / "run"
    assert cli("train", "--data", "cifar10", "--data-dir", data_dir, "--set", "model=tutorial", "--set",
               "batch_size=32", "--set", "eval_batch_size=100", "--set", "augment.flip=horizontal", "--epochs", 2,
               "--run-dir", run) == 0
    capsys.readouterr()
    return run


def test_eval_gives_result_json_figures_to_the_last_digit(cifar_run, capsys):
    result = json.loads((cifar_run / "result.json").read_text())
    assert result["tta"] == "flip"
    assert cli("eval", cifar_run, "--json") == 0
    again = json.loads(capsys.readouterr().out)
    for key in ("test_acc", "test_loss", "test_acc_tta", "test_loss_tta", "tta"):
        assert again[key] == result[key], key
    assert again["split"] == "test" and again["images"] == 20
    assert cli("eval", cifar_run) == 0
    line = capsys.readouterr().out
    assert f"test accuracy {result['test_acc']:.4f}" in line and f"with flip TTA {result['test_acc_tta']:.4f}" in line


def test_predict_report_and_see_give_the_same_probabilities(cifar_run, tmp_path):
    run = Run(cifar_run)
    test_x = prepare_data(run.config).test_x
    paths = []
    for i, image in enumerate(test_x):  # PNG is lossless: the files decode to the test images themselves
        paths.append(tmp_path / f"test{i}.png")
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(paths[-1])
    predicted = predict(cifar_run, paths, top_k=10)
    trained = TrainedModel.load(cifar_run, device="cpu")
    classes = trained.classes
    from_predict = torch.tensor([[dict(item["top"])[name] for name in classes] for item in predicted])
    assert torch.equal(from_predict, build_figures(run)["probabilities"])
    assert torch.equal(from_predict, trained.probabilities(test_x))
    seen = see(run, test_x[3], top_k=10)["top"]
    assert [s["class"] for s in seen] == [name for name, _ in predicted[3]["top"]]
    assert [s["p"] for s in seen] == [round(p, 4) for _, p in predicted[3]["top"]]


def test_images_of_another_shape_are_refused_with_the_shape_expected(cifar_run):
    trained = TrainedModel.load(cifar_run, device="cpu")
    with pytest.raises(UserError, match=r"takes uint8 N x 3 x 32 x 32"):
        trained.probabilities(torch.zeros(1, 1, 28, 28, dtype=torch.uint8))
