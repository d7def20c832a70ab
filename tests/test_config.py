import pytest

from cnnlab.config import Override, augment_settings, resolve
from cnnlab.errors import UserError
from cnnlab.schema.config import TrainConfig


def test_defaults_apply_with_no_file():
    cfg, _ = resolve(None, ["data.name=fashion-mnist", "model=tutorial", "epochs=1", "optimizer.lr=0.1"])
    assert isinstance(cfg, TrainConfig)
    assert cfg.data.name == "fashion-mnist" and cfg.epochs == 1 and cfg.optimizer.lr == 0.1
    assert cfg.batch_size == TrainConfig().batch_size


def test_an_override_names_what_gave_it():
    with pytest.raises(UserError, match=r"^--epochs 0: epochs must be an integer from 1 to 100,000, got 0$"):
        resolve(None, [Override("epochs", 0, "--epochs 0")])
    with pytest.raises(UserError, match=r"^--set epochs=0: epochs must be"):
        resolve(None, ["epochs=0"])
    cfg, _ = resolve(None, ["optimizer.lr=0.5", Override("optimizer.lr", 1e-05, "--lr 1e-05")])
    assert cfg.optimizer.lr == 1e-05  # in order: the last one given wins
    with pytest.raises(UserError, match=r"^--epochs 0: epochs must be"):  # as the CLI hands it over
        resolve(None, [("epochs", 0, "--epochs 0")])


def test_unknown_key_in_a_file_names_the_line_and_the_closest_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 3\noptimizer:\n  name: sgd\n  lrate: 0.1\n")
    with pytest.raises(UserError, match=r"c.yaml line 4: unknown key 'optimizer.lrate' \(did you mean 'lr'\?\)"):
        resolve(path)


def test_a_model_file_given_as_the_config_trains_that_model_with_the_defaults(tmp_path):
    path = tmp_path / "net.yaml"
    path.write_text("layers:\n  - conv: 8\n  - global_avgpool\n  - dense: 10\n")
    cfg, _ = resolve(path)
    assert cfg.model == str(path) and cfg.epochs == 10
    cfg, _ = resolve(path, ["epochs=2"])
    assert cfg.epochs == 2


def test_bad_values_name_the_key_and_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: tutorial\nepochs: -2\n")
    with pytest.raises(UserError, match=r"c.yaml line 2: epochs must be an integer from 1 to 100,000, got -2"):
        resolve(path)


def test_override_typos_are_caught():
    with pytest.raises(UserError, match=r"--set epoch=3: unknown key 'epoch' \(did you mean 'epochs'\?\)"):
        resolve(None, ["epoch=3"])
    with pytest.raises(UserError, match=r"unknown key 'augment.rotation' \(did you mean 'rotate'\?\)"):
        resolve(None, ["augment.rotation=10"])


def test_the_test_set_is_never_used_to_choose():
    with pytest.raises(UserError, match="schedule 'plateau' watches the validation loss; set data.val_split"):
        resolve({"schedule": {"name": "plateau"}})
    with pytest.raises(UserError, match="early stopping needs data.val_split"):
        resolve({"early_stopping": {"patience": 3}})
    cfg, _ = resolve({"schedule": {"name": "plateau"}, "data": {"val_split": 0.1}})
    assert cfg.schedule.name == "plateau"


def test_augmentation_defaults_per_data_set():
    cfg, _ = resolve(None)
    assert augment_settings(cfg, "cifar10").flip == "horizontal"
    assert augment_settings(cfg, "mnist").flip == "none"  # digits are not mirror-symmetric
    cfg, _ = resolve({"augment": {"rotate": 10}})
    s = augment_settings(cfg, "cifar10")
    assert s.rotate == 10 and s.crop == 4 and s.fill == "reflect"
    cfg, _ = resolve({"augment": "none"})
    assert augment_settings(cfg, "cifar10").crop == 0


def test_a_run_records_its_config_resolved_completely(tmp_path):
    from cnnlab.train.session import prepare_config
    model = tmp_path / "net.yaml"
    model.write_text("name: tiny\nlayers:\n  - conv: 8\n  - global_avgpool\n  - dense: 10\n")
    cfg = prepare_config({"model": str(model), "augment": {"rotate": 10}})
    assert cfg.name == "tiny" and cfg.model["layers"][0] == {"conv": 8}  # the model file copied in
    assert cfg.augment.rotate == 10 and cfg.augment.crop == 4 and cfg.augment.cutout == 0  # every key set


def test_invalid_yaml_in_a_config(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 3\nmodel: [a, b\n")
    with pytest.raises(UserError, match=r"c.yaml line \d+: invalid YAML"):
        resolve(path)
