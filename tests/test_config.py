import pytest

from seethrough.config import TrainConfig, list_presets, load_preset, resolve_config


def test_precedence_defaults_preset_file_flags(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("epochs: 7\nlr: 0.5\n")
    cfg = resolve_config(preset="demo", config_file=path, overrides={"lr": 0.25, "batch_size": None})
    assert cfg.img_size == load_preset("demo")["img_size"]    # from the preset
    assert cfg.epochs == 7                                       # file beats preset
    assert cfg.lr == 0.25                                        # flag beats file
    assert cfg.batch_size == load_preset("demo")["batch_size"]  # None means "not given"


def test_unknown_key_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("epoch: 3\n")
    with pytest.raises(ValueError, match=r"bad.yaml: unknown keys \['epoch'\]"):
        resolve_config(config_file=path)


@pytest.mark.parametrize("key, value, flag", [
    ("epochs", 0, "--epochs"), ("lr", -1.0, "--lr"), ("optimizer", "adam", "--optimizer"),
    ("precision", "fp8", "--precision"), ("on_bad_image", "ignore", "--on-bad-image"),
    ("weight_decay", -0.1, "--weight-decay"), ("in_chans", 2, "--in-chans"),
])
def test_invalid_values_name_the_flag(key, value, flag):
    with pytest.raises(ValueError, match=flag):
        TrainConfig(**{key: value}).validate()


def test_presets_are_loadable_and_valid():
    names = list_presets()
    assert {"demo", "fc-mnist", "fc-cub", "fc-context", "fc-imagenet"} <= set(names)
    for name in names:
        resolve_config(preset=name)


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown preset 'nope'; choose one of .*demo"):
        resolve_config(preset="nope")


def test_yaml_round_trip(tmp_path):
    cfg = resolve_config(preset="fc-cub")
    cfg.save(tmp_path / "c.yaml")
    assert resolve_config(config_file=tmp_path / "c.yaml") == cfg


def test_option_mappings_merge_across_layers():
    cfg = resolve_config(preset="fc-imagenet", overrides={"data_options": {"val_dir": "/v"}})
    assert cfg.data_options == {"num_classes": 10, "val_dir": "/v"}


def test_every_preset_builds_its_model():
    import seethrough

    for name in list_presets():
        cfg = resolve_config(preset=name)
        model = seethrough.create_model(
            cfg.model, num_classes=cfg.data_options.get("num_classes", 10), backbone=cfg.backbone,
            pretrained=False, in_chans=cfg.in_chans, freeze_layers=cfg.freeze_layers,
            output_stride=cfg.output_stride, stem=cfg.stem, **cfg.model_options)
        assert model.config["name"] == cfg.model, name


def test_scouter_presets_follow_the_original_commands():
    cub_pos = resolve_config(preset="scouter-cub-pos")
    assert cub_pos.model_options == {"sign": 1, "slots_per_class": 5, "lambda_value": 10.0, "power": 2, "to_k_layer": 3}
    assert (cub_pos.backbone, cub_pos.batch_size, cub_pos.epochs, cub_pos.use_pre) == ("resnest50d.in1k", 64, 150, "runs/fc-cub")
    mnist_neg = resolve_config(preset="scouter-mnist-neg")
    assert (mnist_neg.freeze_layers, mnist_neg.stem, mnist_neg.use_pre, mnist_neg.model_options["sign"]) == (3, "mnist", None, -1)


def test_a_preset_extends_a_recipe_and_overrides_it():
    from seethrough.config import load_preset

    base, cub = load_preset("intr"), load_preset("intr-cub")
    assert cub["num_classes"] == 200 and cub["out"] == "runs/intr-cub"
    assert cub["model_options"] == base["model_options"] and cub["lr_backbone"] == base["lr_backbone"] == 1e-5
    assert "extends" not in cub and "description" not in cub


def test_prototype_presets_keep_the_last_batch_and_lvw_flips():
    """Audit B1 (LVW's main_lvw.py flips image and map) and P4 (both originals keep the last
    partial batch)."""
    from seethrough.config import resolve_config

    for preset in ("protopnet", "protopnet-cub", "lvw", "lvw-pet37"):
        assert resolve_config(preset=preset).drop_last is False, preset
    for preset in ("lvw", "lvw-pet37"):
        assert resolve_config(preset=preset).augment == "flip", preset
