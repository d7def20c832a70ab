"""Every shipped example resolves, builds, and lints without surprises."""
from pathlib import Path

import pytest
import torch
import yaml

from cnnlab.config import resolve
from cnnlab.data import SOURCES
from cnnlab.diagnose.lint import lint
from cnnlab.models import build_model

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.yaml"))
# what lint says of each example's model; any other finding is a surprise (keras-cifar10 is Keras's classic net,
# kept as it is: its 2048 -> 1024 dense layer holds most of the parameters)
FINDINGS = {"keras-cifar10.yaml": ["parameter-hog"]}


def _kind(path: Path) -> str:
    data = yaml.safe_load(path.read_text())
    return "model" if "layers" in data else "sweep" if "space" in data else "config"


def test_there_are_examples_of_each_kind():
    assert {_kind(p) for p in EXAMPLES} == {"model", "sweep", "config"}
    assert set(FINDINGS) <= {p.name for p in EXAMPLES}


def _get(cfg, dotted: str):
    node = cfg
    for part in dotted.split("."):
        node = node[int(part)] if isinstance(node, list) else node[part] if isinstance(node, dict) \
            else getattr(node, part)
    return node


def _builds(model_spec, shape, classes):
    """The model, checked to take a batch of the input shape to one output per class."""
    model = build_model(model_spec, shape, classes)
    assert model.num_classes == classes
    with torch.no_grad():
        assert model.eval()(torch.zeros(2, *shape)).shape == (2, classes)
    return model


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_builds(path, monkeypatch):
    monkeypatch.chdir(path.parents[1])
    kind = _kind(path)
    if kind == "model":
        model = _builds(path, (1, 28, 28), 10)
    elif kind == "sweep":  # its base resolves and every space key names something the trial's config holds
        from cnnlab.sweep.spec import apply_params, base_config, load_spec
        from cnnlab.train.session import prepare_config
        spec, _ = load_spec(path)
        base = base_config(spec)
        sample = {}
        for key, p in spec.space.items():  # a value other than the base's, so a key that sets nothing shows
            options = p.choices if p.type == "categorical" else [int(p.low), int(p.high)] if p.type == "int" \
                else [p.low, p.high]
            sample[key] = next(v for v in options if v != _get(base, key))
        cfg = prepare_config(apply_params(base_config(spec), sample))
        assert {key: _get(cfg, key) for key in sample} == sample
        name = cfg.data.name
        model = _builds(cfg.model, SOURCES[name].input_shape, SOURCES[name].num_classes)
    else:
        cfg, _ = resolve(path)
        name = cfg.data.name
        shape, classes = (SOURCES[name].input_shape, SOURCES[name].num_classes) if name in SOURCES else ((3, 32, 32), 5)
        model = _builds(cfg.model, shape, classes)
    assert [f.rule for f in lint(model)] == FINDINGS.get(path.name, [])
