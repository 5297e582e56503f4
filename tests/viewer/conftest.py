"""Tiny untrained models (every kind of extras) and the views the viewer tests open."""
import pytest
import torch

import seethrough
from seethrough.protocol import load_protocol

SIZE = 48
DATA = "synthetic"
DATA_OPTIONS = {"difficulty": "benchmark", "num_classes": 4, "num_samples": 12, "img_size": SIZE}
TINY = {"fc": {}, "intr": {"d_model": 16, "nheads": 2, "num_encoder_layers": 1, "num_decoder_layers": 1,
                           "dim_feedforward": 32},
        "castream": {"taps": "feature_info"}, "scouter": {"sign": -1}}
#: Images of the views.
IMAGES = 10


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("viewer-models")
    dirs = {}
    for name, options in TINY.items():
        torch.manual_seed(0)
        model = seethrough.create_model(name, num_classes=4, backbone="test_resnet", pretrained=False,
                                        output_stride=8, **options)
        model.save_pretrained(root / name, img_size=SIZE, classes=[f"class-{i}" for i in range(4)])
        dirs[name] = root / name
    return dirs


@pytest.fixture(scope="session")
def run_view(model_dirs, tmp_path_factory):
    from seethrough.viewer import write_view

    out = tmp_path_factory.mktemp("view-runs")
    write_view([str(p) for p in model_dirs.values()], out, limit=IMAGES, explainers=["native", "random"],
               data=DATA, data_options=DATA_OPTIONS)
    return out


@pytest.fixture(scope="session")
def evaluate_output(model_dirs, tmp_path_factory):
    out = tmp_path_factory.mktemp("evaluate")
    protocol = load_protocol("benchmark", explainers=["native", "random"],
                             metrics=["insertion", "deletion", "single_deletion"],
                             overrides=["insertion.steps=4", "deletion.steps=4"])
    seethrough.evaluate([str(model_dirs["fc"]), str(model_dirs["intr"])], data=DATA, data_options=DATA_OPTIONS,
                        protocol=protocol, out=out, limit=6, progress=False, accelerator="cpu")
    return out
