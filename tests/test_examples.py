"""Every shipped example resolves, builds, and lints without surprises."""
from pathlib import Path

import pytest

from cnnlab.config import resolve
from cnnlab.data import SOURCES
from cnnlab.models import build_model

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_builds(path, monkeypatch):
    monkeypatch.chdir(path.parents[1])
    import yaml
    data = yaml.safe_load(path.read_text())
    if "layers" in data:  # a model file
        build_model(path, (1, 28, 28), 10)
        return
    if "space" in data:  # a sweep file: its base resolves and every space key names something
        from cnnlab.sweep.spec import apply_params, base_config, load_spec
        from cnnlab.train.session import prepare_config
        spec, _ = load_spec(path)
        sample = {k: p.choices[0] if p.type == "categorical" else (int(p.low) if p.type == "int" else p.low)
                  for k, p in spec.space.items()}
        cfg = prepare_config(apply_params(base_config(spec), sample))
        build_model(cfg.model, SOURCES[cfg.data.name].input_shape, SOURCES[cfg.data.name].num_classes)
        return
    cfg, _ = resolve(path)
    name = cfg.data.name
    shape, classes = (SOURCES[name].input_shape, SOURCES[name].num_classes) if name in SOURCES else ((3, 32, 32), 5)
    model = build_model(cfg.model, shape, classes)
    assert model.num_classes == classes
