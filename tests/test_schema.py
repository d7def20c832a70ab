"""The schema lets nothing invalid through: malformed model files and configs, generated from the schema
itself (hypothesis) and written by hand from what users were seen to type, go through `summary`, `lint` and
the start of `train`. Each ends in a clean error (exit 2, one line naming the file, no traceback) or is
genuinely valid (the model builds and runs a forward pass)."""
from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import HealthCheck, Phase, given, settings, strategies as st

from cnnlab.cli import main
from cnnlab.models import build_model
from cnnlab.schema.config import TrainConfig
from cnnlab.schema.layers import LAYERS, layer_json_schema

NASTY = [None, {}, [], [1, 2, 3], [3, -1], [0, 0], "same ", "abc", "3x3", "", "classes", "relu", True, False,
         -1, 0, 1, 3, 0.5, 2 ** 63, 10 ** 9, -10 ** 9, 1e308, math.inf, -math.inf, math.nan, {"a": 1}]
BASE_MODEL = [{"conv": {"filters": 8, "kernel": 3, "padding": "same", "activation": "relu"}},
              {"batchnorm": {"momentum": 0.1}}, {"maxpool": 2}, {"dropout": 0.2},
              {"residual": {"layers": [{"conv": {"filters": 8, "padding": "same"}}, "relu"]}},
              {"pad": 1}, {"conv": 8}, "leaky_relu", {"scale": 0.5}, "flatten",
              {"dense": {"units": 16, "max_norm": 3}}, {"elu": 1.0}, {"dense": 10}]


def as_yaml(value) -> str:
    """A value as one line of YAML, as a user would type it after --set KEY=."""
    return yaml.safe_dump(value, default_flow_style=True).replace("\n...", "").strip()


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])  # an exception other than a clean exit fails the test with its traceback
    out, err = capsys.readouterr()
    return code, out, err


def assert_clean(code: int, err: str, path: Path, allowed=(0, 2)) -> None:
    assert code in allowed, err
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("cnnlab: error: "), err
        assert "Traceback" not in err
        assert path.name in lines[0] or "--set" in lines[0], lines[0]  # the error names the file


def genuinely_valid(layers) -> None:
    model = build_model(layers, (3, 32, 32), 10)
    with torch.no_grad():
        out = model.eval()(torch.zeros(2, 3, 32, 32))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


# ------------------------------------------------------------------ generated from the schema

def _mutations():
    """(layer position, key, value): a key of that layer's schema (or a stranger) set to a nasty value."""
    def for_position(i):
        entry = BASE_MODEL[i]
        kind = entry if isinstance(entry, str) else next(iter(entry))
        keys = list(LAYERS[kind].model_fields) + ["bogus", "filter"]
        return st.tuples(st.just(i), st.sampled_from(keys), st.sampled_from(NASTY))
    one = st.integers(0, len(BASE_MODEL) - 1).flatmap(for_position)
    structural = st.tuples(st.integers(0, len(BASE_MODEL) - 1), st.just(None), st.sampled_from(
        NASTY + ["conv", "maxpol", {"conv": {}}, {"dense": None}, {"conv": 1, "dense": 2}, {"type": "conv"},
                 {"softmax": 3}, {"residual": []}, {"residual": {"layers": "conv"}}]))
    return st.lists(st.one_of(one, structural), min_size=1, max_size=3)


def mutate(mutations) -> list:
    layers = yaml.safe_load(yaml.safe_dump(BASE_MODEL))
    for position, key, value in mutations:
        if key is None:
            layers[position] = value
            continue
        entry = layers[position]
        if not (isinstance(entry, str) or isinstance(entry, dict) and len(entry) == 1) or \
                (entry if isinstance(entry, str) else next(iter(entry))) not in LAYERS:
            continue  # an earlier mutation made it something else
        kind = entry if isinstance(entry, str) else next(iter(entry))
        args = entry[kind] if isinstance(entry, dict) and isinstance(entry[kind], dict) else \
            ({LAYERS[kind].main: entry[kind]} if isinstance(entry, dict) and LAYERS[kind].main else {})
        args[key] = value
        layers[position] = {kind: args}
    return layers


SETTINGS = settings(max_examples=140, deadline=None, derandomize=True, database=None,
                    phases=[Phase.explicit, Phase.generate, Phase.shrink],
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@SETTINGS
@given(_mutations())
def test_generated_model_files_end_cleanly_in_summary_lint_and_train(tmp_path, capsys, mutations):
    layers = mutate(mutations)
    model_file = tmp_path / "model.yaml"
    model_file.write_text(yaml.safe_dump({"layers": layers}))
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump({"model": layers, "data": {"name": "cifar10"}}))
    codes = []
    for argv, path in ((("summary", model_file), model_file), (("lint", model_file), model_file),
                       (("train", config_file, "--dry-run"), config_file)):
        code, _, err = run_cli(capsys, *argv)
        assert_clean(code, err, path)
        codes.append(code)
    assert len(set(codes)) == 1, f"summary, lint and train disagree on {layers}: {codes}"
    if codes[0] == 0:
        genuinely_valid(layers)


def _config_leaves(model=TrainConfig, prefix=()):
    for name, field in model.model_fields.items():
        sub = getattr(field.annotation, "model_fields", None)
        if sub is not None:
            yield from _config_leaves(field.annotation, prefix + (name,))
        else:
            yield prefix + (name,)


CONFIG_KEYS = [k for k in _config_leaves() if k[0] not in ("model", "threads", "tensorboard", "device")]


@SETTINGS
@given(st.lists(st.tuples(st.sampled_from(CONFIG_KEYS + [("optimizer", "lrate"), ("epoch",), ("augment", "crp")]),
                          st.sampled_from(NASTY)), min_size=1, max_size=3),
       st.booleans())
def test_generated_configs_end_cleanly_at_the_start_of_train(tmp_path, capsys, changes, as_flags):
    config = {"model": "tutorial", "data": {"name": "cifar10"}}
    flags = []
    for keys, value in changes:
        if keys[0] == "data" and keys[1] in ("name", "dir", "root"):
            continue  # which data set is read is the data loader's business (tested in test_data.py)
        if as_flags:
            flags += ["--set", f"{'.'.join(keys)}={as_yaml(value)}"]
            continue
        node = config
        for key in keys[:-1]:
            node = node.setdefault(key, {}) if isinstance(node.get(key, {}), dict) else node
        node[keys[-1]] = value
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    code, _, err = run_cli(capsys, "train", path, "--dry-run", *flags)
    assert_clean(code, err, path)


# ------------------------------------------------------------------ written by hand: what users typed

NASTY_LAYERS = [
    {"conv": {"filters": 8, "activation": {}}}, {"batchnorm": {"eps": None}}, {"pad": {"value": "3x3"}},
    {"leaky_relu": {"slope": None}}, {"dense": {"units": 2 ** 63}}, {"pad": {"size": 1000000000}},
    {"pad": {"mode": [1, 2, 3]}}, {"conv": {"filters": 8, "stride": 1000000000}},
    {"conv": {"filters": 8, "bias": "same "}}, {"conv": {"filters": 8, "bias": [1, 2, 3]}},
    {"batchnorm": {"eps": math.inf}}, {"scale": {"factor": math.nan}}, {"dropout": -0.1}, {"dropout": 1},
    {"conv": {"filters": 0}}, {"conv": {"filters": 8.5}}, {"conv": {"filters": 8, "kernel": [3]}},
    {"conv": {"filters": 8, "padding": "full"}}, {"maxpool": {"size": 0}}, {"maxpool": {"stride": -2}},
    {"dense": {"units": 10, "max_norm": -1}}, {"elu": {"alpha": math.nan}}, {"conv": {"filters": 8, "groups": 0}},
    {"conv": {"filters": 8, "dilation": [1, 2, 3]}}, {"batchnorm": {"momentum": 1}}, {"spatial_dropout": "x"},
]


@pytest.mark.parametrize("bad", NASTY_LAYERS, ids=as_yaml)
def test_what_users_typed_is_refused_with_the_layer_and_key(tmp_path, capsys, bad):
    path = tmp_path / "model.yaml"
    path.write_text(yaml.safe_dump({"layers": [{"conv": {"filters": 8, "padding": "same"}}, bad, "flatten",
                                               {"dense": 10}]}, default_flow_style=None))
    for command in ("summary", "lint"):
        code, _, err = run_cli(capsys, command, path)
        assert_clean(code, err, path, allowed=(2,))
        assert "line 3: layer 2:" in err
        kind = next(iter(bad))
        key = list(bad[kind])[-1] if isinstance(bad[kind], dict) else LAYERS[kind].main  # the bad one is last
        assert f"{kind} {key}:" in err or f"{kind}:" in err


NASTY_SETS = ["optimizer.momentum=abc", "optimizer.momentum=-1", "schedule.warmup=abc", "data.limit=abc",
              "optimizer.weight_decay=-1", "schedule.warmup=-0.5", "data.limit=-1", "grad_clip=true",
              "epochs=0", "epochs=1.5", "batch_size=-8", "optimizer.lr=0", "optimizer.lr=.nan", "seed=-1",
              "loss.label_smoothing=1", "data.val_split=1", "augment.crop=-4", "augment.flip=sideways",
              "augment.scale=2", "precision=fp8", "device=gpu", "name=../../etc", "optimizer.betas=[1, 2]",
              "optimizer.name=sgdd"]


@pytest.mark.parametrize("override", NASTY_SETS)
def test_bad_set_values_are_refused_naming_the_flag(capsys, override):
    code, _, err = run_cli(capsys, "train", "--set", override, "--dry-run")
    assert code == 2 and err.startswith(f"cnnlab: error: --set {override}: ") and len(err.splitlines()) == 1, err


# ------------------------------------------------------------------ the schema itself

def test_every_numeric_argument_has_a_range():
    def numbers(node, path):
        if isinstance(node, dict):
            if node.get("type") in ("integer", "number"):
                low = "minimum" in node or "exclusiveMinimum" in node
                high = "maximum" in node or "exclusiveMaximum" in node
                assert low and high, f"{path} has no range: {node}"
            for key, value in node.items():
                numbers(value, f"{path}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                numbers(value, f"{path}[{i}]")
    numbers(layer_json_schema(), "layers")
    numbers(TrainConfig.model_json_schema(), "config")


def test_the_docs_layer_table_matches_the_schema():
    page = (Path(__file__).resolve().parents[1] / "docs" / "model-language.md").read_text()
    table = page[page.index("| layer | keys"):].split("\n\n")[0].splitlines()[2:]
    documented = {}
    for row in table:
        names, keys, shorthand = [c.strip() for c in row.strip("|").split("|")]
        for name, extra in re.findall(r"`(\w+)`(?: \((\w+) [^)]*\))?", names):
            plain = keys
            while re.search(r"\([^()]*\)", plain):
                plain = re.sub(r"\([^()]*\)", "", plain)
            listed = [item.split()[0] for item in plain.split(" — ")[0].split(",") if item.split() and
                      item.split()[0] != "—"]
            documented[name] = (sorted(listed + ([extra] if extra else [])), shorthand.strip("`") or None)
    assert set(documented) == set(LAYERS)
    for name, schema in LAYERS.items():
        assert documented[name] == (sorted(schema.model_fields), schema.main), name


def test_a_layer_list_validates_against_the_published_json_schema():
    jsonschema = pytest.importorskip("jsonschema")
    full = [{"conv": {"filters": 8}}, {"maxpool": {"size": 2}}, {"flatten": {}}, {"dense": {"units": "classes"}}]
    jsonschema.validate({"layers": full}, layer_json_schema())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"layers": [{"conv": {"filters": 0}}]}, layer_json_schema())


def test_cnnlab_schema_prints_both_schemas(capsys):
    import json
    assert main(["schema", "model"]) == 0
    model = json.loads(capsys.readouterr().out)
    assert {"conv", "dense", "residual"} <= {next(iter(o["properties"])) for o in model["$defs"]["Layer"]["oneOf"]}
    assert main(["schema", "config"]) == 0
    assert "optimizer" in json.loads(capsys.readouterr().out)["properties"]
