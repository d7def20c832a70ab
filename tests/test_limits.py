"""Input limits (cnnlab/schema/limits.py), shared by the CLI, the Python API and the web server: a YAML alias
that refers to itself, an alias bomb, a model of 300,000 layers or of blocks nested thousands deep, and a JSON
body nested past reason are each refused in well under a second with one line naming the file, the line
and the limit, while ordinary models and configs (aliases included) load as before, lines and all."""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import cnnlab
from cnnlab.cli import main
from cnnlab.config import resolve
from cnnlab.diagnose.check import check_model
from cnnlab.diagnose.lint import lint_spec
from cnnlab.errors import UserError
from cnnlab.models.registry import list_models, model_spec
from cnnlab.schema.limits import (MAX_BODY_BYTES, MAX_DEPTH, MAX_JSON_DEPTH, MAX_LAYERS, MAX_UPLOAD_BYTES,
                                  MAX_YAML_DEPTH, MAX_YAML_NODES, check_json_depth, check_model_size, json_depth)
from cnnlab.yamlio import parse_yaml

REPO = Path(__file__).resolve().parents[1]
SHAPE = (3, 32, 32)
SELF_MODEL = "name: loop\nlayers: &a [*a]\n"
SELF_CONFIG = "data: {name: cifar10}\nepochs: 1\nmodel: &a [*a]\n"


def bomb(last_key: str) -> str:
    """'Billion laughs': nine levels of nine aliases each, 9^9 = 387,420,489 values once expanded, in 300 bytes.
    `last_key` is where the document uses it (`layers` in a model file, `model` in a config)."""
    lines, previous = ["a: &a [x, x, x, x, x, x, x, x, x]"], "a"
    for name in "bcdefghi":
        lines.append(f"{name}: &{name} [{', '.join(['*' + previous] * 9)}]")
        previous = name
    return "\n".join(lines) + f"\n{last_key}: *i\n"


def cli(capsys, *argv) -> tuple[int, str, str, float]:
    start = time.perf_counter()
    code = main([str(a) for a in argv])
    seconds = time.perf_counter() - start
    out, err = capsys.readouterr()
    return code, out, err, seconds


def one_line_error(err: str, *words: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cnnlab: error: "), err
    assert "Traceback" not in err and "RecursionError" not in err
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def nested(depth: int, inner=("relu",)) -> list:
    """A layer list with residual blocks nested `depth` deep, ending in a classifier."""
    layers = list(inner)
    for _ in range(depth):
        layers = [{"residual": {"layers": layers}}]
    return layers + ["flatten", {"dense": 10}]


# ------------------------------------------------------------------ YAML aliases, through the CLI

@pytest.mark.parametrize("command", ["summary", "lint"])
def test_summary_and_lint_refuse_a_model_whose_alias_refers_to_itself(tmp_path, capsys, command):
    bad = tmp_path / "bad.yaml"
    bad.write_text(SELF_MODEL)
    code, out, err, _ = cli(capsys, command, bad)
    assert code == 2 and out == ""
    line = one_line_error(err, "bad.yaml line 2:", "'*a' refers to itself")
    assert line.startswith(f"cnnlab: error: {bad} line 2:")


def test_train_dry_run_refuses_a_config_whose_alias_refers_to_itself(tmp_path, capsys):
    bad = tmp_path / "bad-config.yaml"
    bad.write_text(SELF_CONFIG)
    code, out, err, _ = cli(capsys, "train", bad, "--dry-run")
    assert code == 2
    one_line_error(err, "bad-config.yaml line 3:", "'*a' refers to itself")


def test_summary_refuses_a_config_whose_model_alias_refers_to_itself(tmp_path, capsys):
    bad = tmp_path / "bad-config.yaml"
    bad.write_text(SELF_CONFIG)
    code, _, err, _ = cli(capsys, "summary", bad)
    assert code == 2
    one_line_error(err, "bad-config.yaml line 3:", "'*a' refers to itself")


def test_set_override_cannot_smuggle_in_a_self_referencing_alias(capsys):
    code, _, err, _ = cli(capsys, "train", "--set", "model=&a [*a]", "--dry-run")
    assert code == 2
    one_line_error(err, "--set model=&a [*a]", "refers to itself")


@pytest.mark.parametrize("command, name, key", [("summary", "bad.yaml", "layers"), ("lint", "bad.yaml", "layers"),
                                                 ("train", "bad-config.yaml", "model")])
def test_an_alias_bomb_is_refused_in_well_under_a_second(tmp_path, capsys, command, name, key):
    bad = tmp_path / name
    bad.write_text(bomb(key))
    code, _, err, seconds = cli(capsys, command, bad, *(["--dry-run"] if command == "train" else []))
    assert code == 2
    # *e is the alias that takes the document past the limit: a..e hold 74,737 values, *e adds 66,430
    one_line_error(err, f"{name} line 6:", "'*e'", f"{MAX_YAML_NODES:,}")
    assert seconds < 0.5, seconds


def test_the_command_itself_prints_one_line_and_no_traceback(tmp_path):
    """What a user sees at the shell: `cnnlab summary bad.yaml` in a fresh process."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(SELF_MODEL)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-m", "cnnlab", "summary", str(bad)], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    one_line_error(done.stderr, "bad.yaml line 2:", "refers to itself")


# ------------------------------------------------------------------ YAML limits, in the loader

def test_the_alias_named_is_the_one_inside_its_own_anchor():
    text = "layers: &block\n  - conv: 8\n  - residual:\n      layers: *block\n"
    with pytest.raises(UserError, match=r"^block\.yaml line 4: the alias '\*block' refers to itself"):
        parse_yaml(text, "block.yaml")


def test_a_long_literal_document_stops_at_the_node_limit(monkeypatch):
    # at the real limit (100,000) PyYAML's pure-Python composer takes ~2 s to get there: test the rule at 1,000
    monkeypatch.setattr("cnnlab.yamlio.MAX_YAML_NODES", 1000)
    text = "name: long\nlayers:\n" + "  - relu\n" * 1200
    with pytest.raises(UserError, match=r"^long\.yaml line 998: this value takes the document past 1,000 values"):
        parse_yaml(text, "long.yaml")  # line 998 holds the 1,001st: the root, 2 keys, "long", the list, 996 relus


@pytest.mark.parametrize("text", ["layers: " + "[" * 5000 + "]" * 5000,
                                  "layers:\n" + "".join("  " * i + "-\n" for i in range(1, 300))],
                         ids=["flow", "block"])
def test_deeply_nested_yaml_is_refused_not_a_recursion_error(text):
    with pytest.raises(UserError, match=rf"^deep\.yaml line \d+: nested more than {MAX_YAML_DEPTH} levels deep"):
        parse_yaml(text, "deep.yaml")


def test_aliases_used_sensibly_still_load_with_their_lines(tmp_path, capsys):
    good = tmp_path / "model.yaml"
    good.write_text("name: aliased\n"
                    "layers:\n"
                    "  - &c3 {conv: {filters: 8, kernel: 3, padding: same, activation: relu}}\n"
                    "  - *c3\n"
                    "  - maxpool: 2\n"
                    "  - residual: {layers: [*c3, *c3]}\n"
                    "  - global_avgpool\n"
                    "  - dense: 10\n")
    located = parse_yaml(good.read_text(), "model.yaml")
    assert located.data["layers"][1] == located.data["layers"][0]
    # an alias is its anchored value, so its lines are the anchor's (as they always were)
    assert located.lines[("layers", 1)] == 3 and located.lines[("layers", 3, "residual", "layers")] == 6
    assert located.lines[("layers", 2)] == 5
    code, out, err, _ = cli(capsys, "summary", good)
    assert code == 0, err
    assert "conv 8 3x3 same relu" in out


def test_errors_still_name_their_lines_in_a_model_and_a_config(tmp_path, capsys):
    model = tmp_path / "model.yaml"
    model.write_text("layers:\n  - conv: 8\n  - relu\n  - maxpool: 0\n  - flatten\n  - dense: 10\n")
    code, _, err, _ = cli(capsys, "summary", model)
    assert code == 2
    one_line_error(err, "model.yaml line 4: layer 3: maxpool")
    config = tmp_path / "config.yaml"
    config.write_text("data:\n  name: cifar10\nepochs: 2\noptimizer:\n  lr: 0.1\n  momentom: 0.9\n")
    with pytest.raises(UserError, match=r"config\.yaml line 6: unknown key 'optimizer\.momentom' "
                                        r"\(did you mean 'momentum'\?\)"):
        resolve(str(config))
    cfg, located = resolve("data: {name: cifar10}\nepochs: 3\nmodel: tutorial\n")
    assert cfg.epochs == 3 and located.where(("model",)) == "<config> line 3"


# ------------------------------------------------------------------ layer count and nesting depth

BIG = [{"conv": {"filters": 8, "kernel": 3, "padding": "same", "activation": "relu"}}] * 300_000


@pytest.mark.parametrize("entry", [lambda spec: cnnlab.build_model(spec, SHAPE, 10),
                                   lambda spec: lint_spec(spec, SHAPE, 10),
                                   lambda spec: check_model(spec, SHAPE, 10)],  # what the web server calls
                         ids=["build_model", "lint_spec", "check_model"])
def test_a_300000_layer_model_is_refused_at_once(entry):
    start = time.perf_counter()
    with pytest.raises(UserError, match=rf"^model: the model has 300,000 layers .*at most {MAX_LAYERS:,}$"):
        entry(BIG)
    assert time.perf_counter() - start < 1.0


def test_a_model_file_over_the_layer_limit_names_its_line(tmp_path, capsys):
    big = tmp_path / "big.yaml"
    big.write_text("name: long\nlayers:\n" + "  - relu\n" * MAX_LAYERS + "  - flatten\n  - dense: 10\n")
    for command in ("summary", "lint"):
        code, _, err, seconds = cli(capsys, command, big)
        assert code == 2
        one_line_error(err, "big.yaml line 2:", f"{MAX_LAYERS + 2:,} layers", f"at most {MAX_LAYERS:,}")
        assert seconds < 1.0


def test_train_dry_run_refuses_a_config_with_too_many_layers(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text("data: {name: cifar10}\nmodel:\n  layers:\n" + "    - relu\n" * (MAX_LAYERS + 1))
    code, _, err, _ = cli(capsys, "train", config, "--dry-run")
    assert code == 2
    one_line_error(err, "config.yaml line 3:", f"{MAX_LAYERS + 1:,} layers")


def test_layers_inside_blocks_count_too():
    blocks = [{"residual": ["relu"] * 10}] * (MAX_LAYERS // 10)  # 100 blocks of 10: 1,100 layers in all
    with pytest.raises(UserError, match=rf"at least [\d,]+ layers \(counting those inside blocks\)"):
        cnnlab.build_model(blocks, SHAPE, 10)


def test_blocks_nested_past_the_limit_are_refused_before_anything_recurses():
    start = time.perf_counter()
    with pytest.raises(UserError, match=rf"^model: layer (1\.){{{MAX_DEPTH}}}1: blocks nested more than "
                                        rf"{MAX_DEPTH} deep"):
        cnnlab.build_model(nested(5000), SHAPE, 10)  # recursing builders would have hit RecursionError
    assert time.perf_counter() - start < 1.0
    with pytest.raises(UserError, match="blocks nested more than"):
        cnnlab.build_model(nested(MAX_DEPTH + 1), SHAPE, 10)
    model = cnnlab.build_model(nested(MAX_DEPTH), SHAPE, 10)  # at the limit: builds
    assert model.num_classes == 10


def test_every_spelling_of_a_block_is_counted():
    for block in (lambda inner: {"residual": inner}, lambda inner: {"residual": {"layers": inner}},
                  lambda inner: {"type": "residual", "layers": inner}, lambda inner: {"Residual": inner}):
        layers = ["relu"]
        for _ in range(MAX_DEPTH + 1):
            layers = [block(layers)]
        with pytest.raises(UserError, match="blocks nested more than"):
            check_model_size(layers)


def test_a_list_that_contains_itself_ends():
    loop: list = []
    loop.append({"residual": loop})
    with pytest.raises(UserError, match="nested more than"):
        cnnlab.build_model(loop, SHAPE, 10)


def test_a_deeply_nested_model_file_names_the_block_line(tmp_path, capsys):
    text, indent = "layers:\n", "  "
    for _ in range(MAX_DEPTH + 1):
        text += f"{indent}- residual:\n"
        indent += "    "
    text += f"{indent}- relu\n"
    deep = tmp_path / "deep.yaml"
    deep.write_text(text)
    code, _, err, _ = cli(capsys, "summary", deep)
    assert code == 2
    one_line_error(err, f"deep.yaml line {MAX_DEPTH + 2}:", "blocks nested more than")


def test_a_registered_model_cannot_be_asked_for_millions_of_layers():
    start = time.perf_counter()
    with pytest.raises(UserError, match=r"model 'resnet18': depth 1,000,000,000 cannot fit"):
        cnnlab.build_model({"model": "resnet18", "depth": 10 ** 9}, SHAPE, 10)
    with pytest.raises(UserError, match="layers"):
        cnnlab.build_model({"model": "resnet18", "depth": 100}, SHAPE, 10)
    assert time.perf_counter() - start < 1.0


def test_the_shipped_models_are_far_under_the_limits():
    for name in list_models():
        check_model_size(model_spec(name, SHAPE, 10)["layers"], name)  # raises if not
    assert len(model_spec("resnet18", SHAPE, 10)["layers"]) < MAX_LAYERS // 10


# ------------------------------------------------------------------ JSON request bodies

@pytest.mark.parametrize("text, depth", [
    ("1", 0), ("[]", 1), ("[[1], [2, [3]]]", 3), ('{"a": [1, {"b": []}]}', 4),
    ('["[[[[", "}}}"]', 1),                                  # brackets inside strings do not count
    ('{"k\\"[[": "\\\\", "v": [["\\"]]]"]]}', 3),            # nor do escaped quotes end a string
    ('{"model": {"layers": [{"residual": {"layers": ["relu"]}}]}}', 6),
])
def test_json_depth_counts_bracket_nesting_outside_strings(text, depth):
    assert json_depth(text) == depth
    assert json_depth(text.encode()) == depth
    if depth:
        assert json.loads(text) is not None  # the cases are real JSON


def test_json_depth_stops_past_the_limit():
    deep = b"[" * 1_000_000 + b"]" * 1_000_000  # json.loads would raise RecursionError
    start = time.perf_counter()
    assert json_depth(deep) == MAX_JSON_DEPTH + 1
    assert json_depth(b"[" * 50 + b"]" * 50, limit=10) == 11
    with pytest.raises(UserError, match=rf"^request body: JSON nested more than {MAX_JSON_DEPTH} levels"):
        check_json_depth(deep)
    check_json_depth(b'{"a": [1, 2]}')  # shallow: no error
    # an unterminated string full of escaped quotes is not re-scanned from every quote
    assert json_depth(b'"' + b'\\"[' * 1_000_000) == 0
    assert time.perf_counter() - start < 1.0


def test_an_upload_at_the_upload_limit_fits_in_a_body():
    image = base64.b64encode(b"\x89PNG" + b"\0" * (MAX_UPLOAD_BYTES - 4)).decode()
    body = json.dumps({"image": f"data:image/png;base64,{image}", "top_k": 5}).encode()
    assert len(body) <= MAX_BODY_BYTES
    assert json_depth(body) == 1


def test_a_model_at_the_depth_limit_fits_the_json_and_yaml_limits(tmp_path):
    spec = nested(MAX_DEPTH, inner=[{"conv": {"filters": 8, "kernel": [3, 3], "padding": "same"}}])
    body = json.dumps({"data": "cifar10", "model": {"name": "deep", "layers": spec}})
    assert json_depth(body) <= MAX_JSON_DEPTH
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"data": {"name": "cifar10"}, "model": {"layers": spec}}))  # JSON is YAML
    cfg, _ = resolve(str(config))
    assert cnnlab.build_model(cfg.model, SHAPE, 10).num_classes == 10
