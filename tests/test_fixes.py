"""One-click lint fixes: each finding with a mechanical fix carries it as an edit, and
cnnlab.app.models.apply_fix applies it to the layer list the user wrote (and says what changed)."""
from __future__ import annotations

import pytest

from cnnlab.app.models import apply_fix, check
from cnnlab.errors import UserError

HEAD = [{"conv": {"filters": 16, "padding": "same"}}, "relu", {"maxpool": 2}]


def fixed(model, rule, data="mnist"):
    """Apply the one finding `rule` the check reports, and check the result again."""
    finding = next(f for f in check(model, data)["findings"] if f["rule"] == rule)
    out = apply_fix(model, rule, finding["layers"], data)
    assert rule not in [f["rule"] for f in check(out["layers"], data)["findings"]]
    return out


def test_a_softmax_layer_before_the_loss_is_removed():
    out = fixed(HEAD + ["flatten", {"dense": 10}, "softmax"], "softmax-output")
    assert out["layers"] == HEAD + ["flatten", {"dense": 10}]
    assert out["description"] == "removed layer 6 (softmax)" and out["changed"] == []


def test_a_softmax_activation_on_the_last_dense_is_dropped_keeping_its_units():
    out = fixed(HEAD + ["flatten", {"dense": {"units": 10, "activation": "softmax"}}], "softmax-output")
    assert out["layers"][-1] == {"dense": {"units": 10}} and out["changed"] == ["5"]
    assert out["description"] == "dropped activation from layer 5 (dense)"


def test_stacked_linear_layers_get_a_relu_between_them():
    out = fixed([{"conv": {"filters": 16, "padding": "same"}}, {"conv": {"filters": 16, "padding": "same"}}, "relu",
                 "flatten", {"dense": 10}], "linear-stack")
    assert [l if isinstance(l, str) else next(iter(l)) for l in out["layers"]][:3] == ["conv", "relu", "conv"]
    assert out["changed"] == ["2"] and out["description"] == "added relu after layer 1 (conv)"


def test_dense_on_feature_maps_gets_a_global_average_pool_before_it():
    out = fixed(HEAD + [{"dense": 10}], "dense-on-feature-map")
    assert out["layers"] == HEAD + ["global_avgpool", {"dense": 10}] and out["changed"] == ["4"]


def test_bias_before_batchnorm_and_too_few_filters_set_one_key_written_as_shorthand():
    out = fixed([{"conv": 16}, "batchnorm", "relu", "flatten", {"dense": 10}], "bias-before-batchnorm")
    assert out["layers"][0] == {"conv": {"filters": 16, "bias": False}}
    out = fixed([{"conv": 2}, "relu", "global_avgpool", {"dense": 10}], "too-few-filters")
    assert out["layers"][0] == {"conv": {"filters": 32}}


def test_a_pool_with_stride_one_gets_stride_two():
    model = [{"conv": 16}, "relu", {"maxpool": {"size": 2, "stride": 1}}, "flatten", {"dense": 10}]
    out = fixed(model, "pool-stride-1")
    assert out["layers"][2] == {"maxpool": {"size": 2, "stride": 2}} and out["description"].startswith("set stride: 2")


def test_a_parameter_hog_head_gets_global_avgpool_instead_of_flatten():
    model = [{"conv": {"filters": 64, "padding": "same"}}, "relu", "flatten", {"dense": 256}, "relu", {"dense": 10}]
    out = fixed(model, "parameter-hog", data="cifar10")
    assert out["layers"][2] == "global_avgpool" and out["description"] == "replaced layer 3 (flatten) by global_avgpool"


def test_a_deep_plain_net_gets_batchnorm_after_every_conv():
    model = [{"conv": {"filters": 4, "padding": "same", "activation": "relu"}}] * 21 + ["global_avgpool", {"dense": 10}]
    out = fixed(model, "deep-plain-net")
    assert len(out["layers"]) == 23 + 21 and out["changed"] == [str(2 * n) for n in range(1, 22)]


def test_a_fix_for_a_finding_the_model_does_not_have_says_what_it_has():
    with pytest.raises(UserError, match="no finding 'softmax-output' at layer 9.*linear-stack"):
        apply_fix([{"conv": 8}, {"conv": 8}, "relu", "flatten", {"dense": 10}], "softmax-output", ["9"], "mnist")


def test_the_route_applies_a_fix(client):
    model = HEAD + ["flatten", {"dense": 10}, "softmax"]
    body = client.post("/api/model/fix", json={"model": model, "data": "mnist", "rule": "softmax-output",
                                                "layers": ["6"]}).json()
    assert body["layers"] == model[:-1] and body["description"] == "removed layer 6 (softmax)"
    finding = client.post("/api/check", json={"model": model, "data": "mnist"}).json()["findings"][0]
    assert finding["edit"] == [{"op": "remove", "layer": "6"}]
    assert client.post("/api/model/fix", json={"model": model, "rule": "nope", "layers": ["1"]}).status_code == 400


def test_model_diff_aligns_layers_by_kind_and_names_changed_keys():
    from cnnlab.track.compare import model_diff
    a = [{"conv": 16}, "relu", {"maxpool": 2}, "flatten", {"dense": 10}, "softmax"]
    b = [{"conv": {"filters": 32}}, "batchnorm", "relu", {"maxpool": 2}, "flatten", {"dense": 10}]
    rows = model_diff(a, b)
    assert [(r["op"], r["kind"], r["a"], r["b"]) for r in rows] == [
        ("changed", "conv", 1, 1), ("added", "batchnorm", None, 2), ("same", "relu", 2, 3),
        ("same", "maxpool", 3, 4), ("same", "flatten", 4, 5), ("same", "dense", 5, 6), ("removed", "softmax", 6, None)]
    assert rows[0]["changes"] == {"filters": [16, 32]}


def test_compare_gives_each_later_runs_model_against_the_first(tmp_path, data_dir):
    import cnnlab
    from cnnlab.app import runs
    from cnnlab.rundir import Run
    common = {"data": {"name": "mnist", "dir": str(data_dir), "limit": 64}, "epochs": 1, "batch_size": 32, "threads": 1}
    first = cnnlab.train({**common, "model": HEAD + ["flatten", {"dense": 10}, "softmax"]}, run_dir=tmp_path / "a",
                         quiet=True)
    second = cnnlab.train({**common, "parent": "a", "model": HEAD + ["flatten", {"dense": 10}]},
                          run_dir=tmp_path / "b", quiet=True)
    assert second.config.parent == "a"
    out = runs.compare([Run(first.dir), Run(second.dir)])
    assert [(r["op"], r["kind"]) for r in out["model_diff"]["b"] if r["op"] != "same"] == [("removed", "softmax")]


def test_check_counts_a_blocks_inner_layers_in_its_row():
    body = check("resnet9", "cifar10")
    residual = next(r for r in body["layers"] if r["layer"].startswith("residual"))
    # two convs 128 -> 128 (3x3, no bias) and two batchnorms (scale, shift and the two running statistics)
    assert residual["params"] == 2 * (128 * 128 * 9 + 4 * 128) and residual["macs"] == 2 * 37_748_736
    assert sum(r["params"] for r in body["layers"]) == body["totals"]["params"]
