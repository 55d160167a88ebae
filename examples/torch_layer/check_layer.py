"""The glue that checks the BiBench-style layers with fdaref's torch adapter (all of it is here).

    PYTHONPATH=examples/torch_layer fdaref conform --torch-layer check_layer:make_layer --layer-kind conv2d --preset bibench
"""
from fdaref.conformance.adapters import TorchLayerMapping, check_torch_layer

from bibench_style import FDAConv2d, FDASign, WrongFDAConv2d, WrongFDASign

BIBENCH = {"zero": 0.0, "estimator": "fda", "omega": 0.1, "clip": 1.0, "eta_kind": "sin", "a": 0.1, "k": 64,
           "scale": "channel", "pad_value": 0.0, "eval_noise": True}   # eval adds alpha * e(t), like BiBench
MAPPING = TorchLayerMapping(weight="weight", bias="bias",
                            weight_noise=("noise_w.fc1.weight", "noise_w.fc2.weight"),
                            activation_noise=("noise_a.fc1.weight", "noise_a.fc2.weight"),
                            noise_as_linear=True, n="n", alpha="alpha", sign=FDASign.apply, implements=BIBENCH)


def make_layer(in_channels, out_channels, kernel_size, stride, padding, bias):
    return FDAConv2d(in_channels, out_channels, kernel_size, stride, padding, bias)


def make_wrong_layer(in_channels, out_channels, kernel_size, stride, padding, bias):
    return WrongFDAConv2d(in_channels, out_channels, kernel_size, stride, padding, bias)


make_layer.fdaref_mapping = MAPPING
make_wrong_layer.fdaref_mapping = TorchLayerMapping(**{**MAPPING.__dict__, "sign": WrongFDASign.apply})

if __name__ == "__main__":
    print(check_torch_layer(make_layer, kind="conv2d", preset="bibench", raise_on_failure=False).render())
