"""The techniques issue 24 added as config keys, each on its own and in a run at toy scale: averaged weights
(`average`), lower resolution early (`resolution`), data filtering (`select`), the whitening bias's decaying
rate (`whiten: {bias_decay}`), airbench's depth-3 groups, and the FLOPs each one changes."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

import cnnlab
from conftest import same_weights_after_a_stop
from cnnlab.app.recipes import budget
from cnnlab.config import resolve
from cnnlab.models import build_model
from cnnlab.schema.config import AverageConfig
from cnnlab.train.averaging import WeightAverage
from cnnlab.train.augment import BatchResizer, resized_images
from cnnlab.train.filtering import example_losses, hardest, kept_count
from cnnlab.train.flops import macs_at, training_flop
from cnnlab.train.optim import group_lr, make_optimizer

TINY = {"name": "airbench", "widths": [8, 16, 16]}


def cli(*args):
    return subprocess.run([sys.executable, "-m", "cnnlab", *args], capture_output=True, text=True)


def test_the_keys_validate_and_bad_values_say_what_is_valid():
    cfg, _ = resolve({"average": {"mode": "ema"}, "resolution": {"size": 24, "epochs": 2},
                      "select": {"keep": 0.5, "after": 1}})
    assert cfg.average.every == 5 and cfg.resolution.size == 24 and cfg.select.keep == 0.5
    share, _ = resolve({"resolution": {"size": 0.75, "epochs": 2}})  # a share of the height: any data set
    assert (share.resolution.pixels(32), share.resolution.pixels(28), share.resolution.pixels(64)) == (24, 21, 48)
    assert cfg.resolution.pixels(64) == 24  # pixels are pixels
    recipe = resolve({"recipe": "cifar10-fast"})[0].resolution  # 0.7 of the epochs: 7 of 10, 6 of 8, never the last
    assert [recipe.small_epochs(n) for n in (10, 8, 5, 3, 1)] == [7, 6, 4, 2, 0]  # halves round up: 3.5 -> 4
    assert [cfg.resolution.small_epochs(n) for n in (5, 1)] == [2, 1]  # a count as written, up to the run's length
    dotted = resolve({"recipe": "cifar10-fast"}, ["resolution.epochs=0.5"])[0].resolution  # --set into the recipe's
    assert (dotted.size, dotted.epochs, dotted.resize) == (0.75, 0.5, "batch")
    for bad, words in ((["select={keep: 0}"], "select.keep"), (["average={mode: swa}"], "average.mode"),
                       (["resolution={size: 24}"], "resolution.epochs"),
                       (["resolution={size: 1.5, epochs: 2}"], "a whole number from 4 to 4096 (24), or a share"),
                       (["resolution={size: 24, epochs: 1.5}"], "or a share of the run's epochs between 0 and 1"),
                       (["resolution={size: .inf, epochs: 2}"], "resolution.size must be"),
                       (["resolution={size: .nan, epochs: 2}"], "resolution.size must be"),
                       (["resolution.sise=2"], "did you mean 'size'")):
        out = cli("train", "--dry-run", *[a for o in bad for a in ("--set", o)])
        assert out.returncode == 2 and words in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_flops_count_lower_resolution_and_filtering_epoch_by_epoch():
    cfg, _ = resolve({"model": TINY, "epochs": 4, "resolution": {"size": 24, "epochs": 1},
                      "select": {"keep": 0.25, "after": 2}})
    full, small = macs_at(TINY, (3, 32, 32), 10), macs_at(TINY, (3, 24, 24), 10)
    assert small < 0.6 * full
    flop = training_flop(cfg, (3, 32, 32), 10, 1000)
    assert flop.epochs == [6 * small * 1000, 6 * full * 1000, 2 * full * 1000 + 6 * full * 250,
                           2 * full * 1000 + 6 * full * 250]
    share, _ = resolve({"model": TINY, "epochs": 4, "resolution": {"size": 0.75, "epochs": 1},
                        "select": {"keep": 0.25, "after": 2}})
    assert training_flop(share, (3, 32, 32), 10, 1000).epochs == flop.epochs  # 0.75 of 32 is 24
    assert training_flop(share, (1, 28, 28), 10, 1000).epochs[0] == 6 * macs_at(TINY, (1, 21, 21), 10) * 1000
    eight = budget("cifar10-fast", ["epochs=8"])["epoch_pflop"]  # the recipe's shares: 6 small epochs, 2 full
    assert eight[5] < eight[6] == eight[7] and len(set(eight[:6])) == 1
    plain = budget("cifar10-fast", ["epochs=8", "resolution=null"])
    early = budget("cifar10-fast", ["epochs=8", "resolution={size: 24, epochs: 2}"])
    assert early["pflop"] < 0.9 * plain["pflop"] and early["epoch_pflop"][2] == plain["epoch_pflop"][2]


def test_lookahead_pulls_the_weights_back_and_ema_hands_its_average_over_at_the_end():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    start = {k: v.clone() for k, v in model.state_dict().items()}
    look = WeightAverage(model, AverageConfig(mode="lookahead", every=1, decay=0.5, ramp=0))
    with torch.no_grad():
        model[0].weight.add_(1.0)
    look.update(step=1, progress=0.5)  # d = 0.5: halfway back to where the average was
    assert torch.allclose(model[0].weight, start["0.weight"] + 0.5)
    assert torch.allclose(look.average["0.weight"], model[0].weight)
    assert "1.num_batches_tracked" not in look.average  # counts are not averaged
    ema = WeightAverage(model, AverageConfig(mode="ema", every=2, decay=1.0, ramp=1))
    before = model[0].weight.clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)
    ema.update(step=1, progress=0.5)  # not a step that updates (every 2): nothing moves
    assert torch.equal(ema.average["0.weight"], before)
    ema.update(step=2, progress=0.0)  # d = 0 at the start: the average is the weights
    assert torch.equal(ema.average["0.weight"], model[0].weight)
    with torch.no_grad():
        model[0].weight.add_(1.0)
    ema.update(step=3, progress=0.5, last=True)  # the last step always updates: d = 0.5
    assert torch.allclose(ema.average["0.weight"], model[0].weight - 0.5)
    ema.finish()
    assert torch.allclose(model[0].weight, ema.average["0.weight"])


def test_resized_sets_keep_the_picture_and_the_dtype():
    x = (torch.rand(7, 3, 32, 32) * 255).to(torch.uint8)
    small = resized_images(x, 24, chunk=3)  # in chunks: the same as at once
    assert small.shape == (7, 3, 24, 24) and small.dtype == torch.uint8
    assert torch.equal(small, resized_images(x, 24))
    assert torch.allclose(small.float().mean((2, 3)), x.float().mean((2, 3)), atol=3)  # the same picture, smaller
    assert resized_images(torch.rand(1, 3, 32, 48), 16).shape == (1, 3, 16, 24)


def test_the_batch_resizer_is_f_interpolate_as_two_matmuls():
    """`resolution: {resize: batch}` resizes each augmented batch: the same numbers as F.interpolate (bilinear,
    antialiased), width in proportion, the memory layout kept."""
    for shape, size in (((5, 3, 32, 32), 24), ((2, 1, 32, 48), 20), ((3, 3, 28, 28), 14)):
        x = torch.randn(shape).contiguous(memory_format=torch.channels_last)
        out = BatchResizer(*shape[2:], size)(x)
        want = torch.nn.functional.interpolate(x, size=out.shape[2:], mode="bilinear", antialias=True,
                                               align_corners=False)
        assert out.shape[2] == size and out.shape[3] == round(shape[3] * size / shape[2])
        assert torch.allclose(out, want, atol=1e-5) and out.is_contiguous(memory_format=torch.channels_last)


def test_example_losses_match_the_batch_loss():
    out, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 0, 1])
    assert example_losses(out, y, 0.2, False).mean() == pytest.approx(
        torch.nn.functional.cross_entropy(out, y, label_smoothing=0.2).item(), rel=1e-6)
    probs = out.softmax(1)
    assert torch.allclose(example_losses(probs, y, 0.0, True), example_losses(out, y, 0.0, False), atol=1e-5)


def test_the_whitening_bias_decays_to_zero_in_a_group_of_its_own():
    cfg, _ = resolve({"recipe": "cifar10-fast", "model": {**TINY, "whiten_bias_decay": True}})
    model = build_model(cfg.model, (3, 32, 32), 10)
    opt = make_optimizer(model, cfg.optimizer)
    decaying = [g for g in opt.param_groups if g.get("decay_epochs")]
    assert len(decaying) == 1 and decaying[0]["params"][0].shape == (24,) and decaying[0]["decay_epochs"] == 3
    peak = cfg.optimizer.lr * decaying[0]["lr_scale"]
    assert group_lr(decaying[0], 0.5 * cfg.optimizer.lr, cfg.optimizer.lr, 1.5) == pytest.approx(peak / 2)
    assert group_lr(decaying[0], cfg.optimizer.lr, cfg.optimizer.lr, 3.0) == 0.0
    plain = make_optimizer(build_model(TINY, (3, 32, 32), 10), cfg.optimizer)
    assert not any(g.get("decay_epochs") for g in plain.param_groups)


def test_airbench_depth_3_has_residual_groups_and_costs_more():
    deep = build_model({"name": "airbench", "widths": [8, 16, 16], "depth": 3}, (3, 32, 32), 10)
    assert sum(isinstance(m, cnnlab.models.modules.Residual) for m in deep.modules()) == 3
    assert deep(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert macs_at({**TINY, "depth": 3}, (3, 32, 32), 10) > macs_at(TINY, (3, 32, 32), 10)
    out = cli("train", "--dry-run", "--set", "model={name: airbench, depth: 4}")
    assert out.returncode == 2 and "depth must be 2" in out.stderr


def test_filtering_trains_on_the_hardest_share_and_leaves_batchnorm_statistics_alone(data_dir, tmp_path):
    from cnnlab.train.session import Session, prepare_config
    s = Session(prepare_config({"recipe": "cifar10-fast", "model": TINY, "epochs": 1, "batch_size": 20,
                                "select": {"keep": 0.25}, "data": {"dir": str(data_dir)}}))
    t = s.trainer
    xb = t.augmenter.train_batch(t.train_x[:20], t.generator, torch.arange(20), 0)
    yb = t.train_y[:20]
    stats = [bn.running_mean.clone() for bn in t.norms]
    kept_x, kept_y, scored, correct = hardest(t.model, xb, yb, 0.25, 7, t.norms, t.placement.autocast, 0.2, False)
    assert all(torch.equal(a, bn.running_mean) for a, bn in zip(stats, t.norms))  # scoring left them alone
    assert len(kept_y) == 5
    with torch.no_grad(), t.placement.autocast():
        t.model.train()
        losses = example_losses(t.model(xb), yb, 0.2, False)
    assert set(losses.topk(5).indices.tolist()) == {int((xb == k).all(dim=(1, 2, 3)).nonzero()[0])
                                                   for k in kept_x}
    assert scored.sum().item() == pytest.approx(losses.sum().item(), rel=1e-2)
    assert kept_count(0.25, 20) == 5 and kept_count(0.01, 20) == 2 and kept_count(0.5, 1) == 1


@pytest.mark.parametrize("resize", ["once", "batch"])
def test_a_run_with_every_technique_trains_resumes_and_records_them(data_dir, tmp_path, resize):
    """Lower resolution first (the set resized once, or each batch), then filtering, with an EMA and the
    decaying whitening bias: the run trains, stopped after epoch 1 and resumed it ends with the same weights,
    and config.yaml records the keys."""
    cfg = {"recipe": "cifar10-fast", "model": {**TINY, "whiten_bias_decay": True}, "epochs": 3,
           "batch_size": 20, "threads": 1, "eval_every": 1, "data": {"dir": str(data_dir)},
           "average": {"mode": "ema", "every": 2}, "resolution": {"size": 24, "epochs": 1, "resize": resize},
           "select": {"keep": 0.5, "after": 2}}
    straight, _, same = same_weights_after_a_stop(cfg, tmp_path)
    assert same
    text = (straight.dir / "config.yaml").read_text()
    assert "resolution:" in text and "select:" in text and "mode: ema" in text
    result = json.loads((straight.dir / "result.json").read_text())
    assert 0 <= result["test_acc"] <= 1


@pytest.mark.parametrize("resize", ["once", "batch"])
def test_the_flops_counted_are_the_images_and_sizes_the_engine_trains_on(data_dir, tmp_path, resize):
    """A forward hook counts what the network sees in training (size, images; scoring forwards apart from
    trained ones), and the count priced at the network's MACs per size equals `training_flop`, whether the
    set is resized once or each batch."""
    from cnnlab.train.session import Session, prepare_config
    cfg = prepare_config({"recipe": "cifar10-fast", "model": TINY, "epochs": 3, "batch_size": 16, "threads": 1,
                          "eval_every": 3, "resolution": {"size": 20, "epochs": 1, "resize": resize},
                          "select": {"keep": 0.3, "after": 2}, "data": {"dir": str(data_dir)}})
    s = Session(cfg)
    seen = []
    s.model.register_forward_pre_hook(
        lambda m, args: seen.append((torch.is_grad_enabled(), args[0].shape[2], len(args[0]))) if m.training else None)
    s.trainer.fit()
    macs = {32: macs_at(TINY, (3, 32, 32), 10), 20: macs_at(TINY, (3, 20, 20), 10)}
    counted = sum((6 if grad else 2) * macs[size] * n for grad, size, n in seen)
    images = len(s.data.train_x)
    assert counted == pytest.approx(training_flop(cfg, (3, 32, 32), 10, images).total, rel=0.02)
    assert {size for _, size, _ in seen} == {20, 32}


def test_a_recipe_s_share_of_the_height_fits_mnist_s_28_pixels(data_dir, tmp_path):
    """cifar10-fast's first epochs at 0.75 of the height: 21x21 for MNIST, then 28x28; a share that rounds up
    to the full height is refused with what would be valid."""
    from cnnlab.train.session import Session, prepare_config
    cfg = prepare_config({"recipe": "cifar10-fast", "model": TINY, "epochs": 2, "batch_size": 40, "threads": 1,
                          "eval_every": 2, "resolution": {"epochs": 1}, "data": {"name": "mnist", "dir": str(data_dir)}})
    assert cfg.resolution.size == 0.75 and cfg.resolution.resize == "batch"  # the recipe's, kept under the override
    s = Session(cfg)
    sizes = set()
    s.model.register_forward_pre_hook(lambda m, args: sizes.add(args[0].shape[2]) if m.training else None)
    s.trainer.fit()
    assert sizes == {21, 28}
    out = cli("train", "--data", "mnist", "--data-dir", str(data_dir), "--epochs", "1", "--no-store",
              "--set", "resolution={size: 0.99, epochs: 1}", "--run-dir", str(tmp_path / "r"))
    assert out.returncode != 0 and "resolution.size: 0.99 of 28 pixels is 28, not below" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


def test_the_engine_sets_the_decaying_group_s_rate_each_step(data_dir):
    from cnnlab.train.session import Session, prepare_config
    cfg = prepare_config({"recipe": "cifar10-fast", "model": {**TINY, "whiten_bias_decay": True}, "epochs": 4,
                          "batch_size": 40, "threads": 1, "data": {"dir": str(data_dir)}})
    s = Session(cfg)
    rates = []
    s.trainer.events.listeners.append(lambda e: e.type == "batch_end" and rates.append(
        [g["lr"] for g in s.trainer.optimizer.param_groups if g.get("decay_epochs")][0]))
    s.trainer.events.listeners[-1].every = 1  # a batch_end every step
    s.trainer.fit()
    per_epoch = s.trainer.batches_per_epoch
    peak = cfg.optimizer.groups.bias.lr
    assert rates[0] == pytest.approx(peak)
    for i in range(len(rates)):  # each step sets it from the epochs done: falling to zero over its 3 epochs
        assert rates[i] == pytest.approx(peak * max(0.0, 1 - i / per_epoch / 3)), i
    assert rates[-1] == 0.0 and per_epoch >= 2


def test_resolution_must_lower_the_size_and_fit_the_network(data_dir, tmp_path):
    base = ["train", "--data-dir", str(data_dir), "--epochs", "1", "--no-store", "--set", "threads=1"]
    out = cli(*base, "--set", "resolution={size: 32, epochs: 1}", "--run-dir", str(tmp_path / "a"))
    assert out.returncode != 0 and "resolution.size: 32, not below" in out.stderr and "Traceback" not in out.stderr
    flat = "model=[{conv: 8}, flatten, {dense: classes}]"
    out = cli(*base, "--set", flat, "--set", "resolution={size: 24, epochs: 1}", "--run-dir", str(tmp_path / "b"))
    assert out.returncode != 0 and "does not take 24-pixel images" in out.stderr and "Traceback" not in out.stderr
    out = cli("train", "--dry-run", "--recipe", "cifar10-fast", "--model", "tutorial")  # flattens: one size only
    assert out.returncode == 2 and "resolution.size (recipe cifar10-fast's): the model does not take 24-pixel" \
        in out.stderr and "--set resolution=null" in out.stderr and "Traceback" not in out.stderr, out.stderr
    out = cli("train", "--dry-run", "--set", "model=[{whiten: {bias_decay: true}}, global_avgpool, {dense: classes}]")
    assert out.returncode == 2 and "give bias_epochs" in out.stderr


@pytest.mark.parametrize("name", ["cifar10-fast", "cifar10-95", "cifar10-96"])
def test_each_recipe_s_own_network_trains_a_short_run(name, data_dir, tmp_path):
    """The short-run check behind the recipes too long to run here (cifar10-96 is ~1.5 h of this CPU): the
    recipe as shipped — its network at full width, its resolution phase (shares of the height and the epochs),
    its augmentation and TTA — on the tiny set for 2 epochs, the first at 24x24: it trains with a finite loss
    and writes the run with its TTA."""
    runner = cnnlab.Job({"recipe": name, "epochs": 2, "batch_size": 24, "threads": 1, "eval_every": 2,
                         "data": {"dir": str(data_dir)}}, run_dir=tmp_path / name, store=False)
    job = runner.run()
    assert [runner.session.trainer.input_size(e) for e in (0, 1)] == [24, None]
    rows = job.metrics
    assert len(rows) == 2 and all(r["loss"] == r["loss"] for r in rows)
    result = json.loads((job.dir / "result.json").read_text())
    assert result["tta"] == "6-view" and 0 <= result["test_acc_tta"] <= 1
