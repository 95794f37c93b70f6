"""The Flax Inception-v3 port and its converter, checked without PyTorch and without the real weights.

The state-dict table below is written from pytorch-fid's FIDInceptionV3 (torchvision's Inception3
constructor with num_classes=1008, aux_logits=False); weight files are written here in both
torch.save formats; an independent NumPy forward pass of the PyTorch-layout state dict (NCHW,
pytorch-fid's pooling rules) is the reference for the Flax network. Whether the port reproduces the
real 2015-12-05 weights' features cannot be checked on a machine without the weight file.
"""

import collections
import pickle
import struct
import sys
import types
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import inception
from jaxgan.errors import UserError


def basic_conv(name, cin, cout, kh, kw=None):
    kw = kh if kw is None else kw
    return {f"{name}.conv.weight": (cout, cin, kh, kw), **{f"{name}.bn.{p}": (cout,) for p in
                                                            ("weight", "bias", "running_mean", "running_var")}}


def pytorch_fid_state_dict_shapes():
    """name -> shape of pytorch-fid's FIDInceptionV3 state dict, from torchvision's constructors."""
    shapes = {}
    for args in [("Conv2d_1a_3x3", 3, 32, 3), ("Conv2d_2a_3x3", 32, 32, 3), ("Conv2d_2b_3x3", 32, 64, 3),
                 ("Conv2d_3b_1x1", 64, 80, 1), ("Conv2d_4a_3x3", 80, 192, 3)]:
        shapes.update(basic_conv(*args))
    for block, cin, pool in [("Mixed_5b", 192, 32), ("Mixed_5c", 256, 64), ("Mixed_5d", 288, 64)]:  # InceptionA
        for args in [("branch1x1", cin, 64, 1), ("branch5x5_1", cin, 48, 1), ("branch5x5_2", 48, 64, 5),
                     ("branch3x3dbl_1", cin, 64, 1), ("branch3x3dbl_2", 64, 96, 3),
                     ("branch3x3dbl_3", 96, 96, 3), ("branch_pool", cin, pool, 1)]:
            shapes.update(basic_conv(f"{block}.{args[0]}", *args[1:]))
    for args in [("branch3x3", 288, 384, 3), ("branch3x3dbl_1", 288, 64, 1), ("branch3x3dbl_2", 64, 96, 3),
                 ("branch3x3dbl_3", 96, 96, 3)]:  # Mixed_6a: InceptionB
        shapes.update(basic_conv(f"Mixed_6a.{args[0]}", *args[1:]))
    for block, c7 in [("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)]:  # InceptionC
        for args in [("branch1x1", 768, 192, 1, 1), ("branch7x7_1", 768, c7, 1, 1), ("branch7x7_2", c7, c7, 1, 7),
                     ("branch7x7_3", c7, 192, 7, 1), ("branch7x7dbl_1", 768, c7, 1, 1),
                     ("branch7x7dbl_2", c7, c7, 7, 1), ("branch7x7dbl_3", c7, c7, 1, 7),
                     ("branch7x7dbl_4", c7, c7, 7, 1), ("branch7x7dbl_5", c7, 192, 1, 7),
                     ("branch_pool", 768, 192, 1, 1)]:
            shapes.update(basic_conv(f"{block}.{args[0]}", *args[1:]))
    for args in [("branch3x3_1", 768, 192, 1, 1), ("branch3x3_2", 192, 320, 3, 3),
                 ("branch7x7x3_1", 768, 192, 1, 1), ("branch7x7x3_2", 192, 192, 1, 7),
                 ("branch7x7x3_3", 192, 192, 7, 1), ("branch7x7x3_4", 192, 192, 3, 3)]:  # Mixed_7a: InceptionD
        shapes.update(basic_conv(f"Mixed_7a.{args[0]}", *args[1:]))
    for block, cin in [("Mixed_7b", 1280), ("Mixed_7c", 2048)]:  # InceptionE
        for args in [("branch1x1", cin, 320, 1, 1), ("branch3x3_1", cin, 384, 1, 1),
                     ("branch3x3_2a", 384, 384, 1, 3), ("branch3x3_2b", 384, 384, 3, 1),
                     ("branch3x3dbl_1", cin, 448, 1, 1), ("branch3x3dbl_2", 448, 384, 3, 3),
                     ("branch3x3dbl_3a", 384, 384, 1, 3), ("branch3x3dbl_3b", 384, 384, 3, 1),
                     ("branch_pool", cin, 192, 1, 1)]:
            shapes.update(basic_conv(f"{block}.{args[0]}", *args[1:]))
    shapes.update({"fc.weight": (1008, 2048), "fc.bias": (1008,)})
    return shapes


def random_state_dict(seed=0):
    """Weights that keep activations O(1) through the 94 layers: He-scaled convolutions, BN near identity."""
    rng = np.random.default_rng(seed)
    state = {}
    for name, shape in pytorch_fid_state_dict_shapes().items():
        if name.endswith("conv.weight"):
            value = rng.normal(size=shape) * np.sqrt(2.0 / np.prod(shape[1:]))
        elif name.endswith(("bn.weight", "running_var")):
            value = rng.uniform(0.5, 1.5, size=shape)
        elif name == "fc.weight":
            value = rng.normal(size=shape) / np.sqrt(shape[1])
        else:
            value = rng.normal(size=shape) * 0.1
        state[name] = value.astype(np.float32)
    return state


def save_like_torch(state_dict, path, legacy=False):
    """Writes `state_dict` as torch.save does (zip, or the legacy stream), with fake torch globals.

    fc.weight is stored transposed in its storage (strides (1, 1008)), as a non-contiguous tensor
    would be, and the first two tensors share one storage at different offsets.
    """
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called: only pickled")

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    torch.FloatStorage = type("FloatStorage", (), {"__module__": "torch"})
    torch._utils = utils

    class Storage:
        def __init__(self, key, flat):
            self.key, self.flat = key, flat

    class Tensor:
        def __init__(self, storage, offset, shape, stride):
            self.args = (storage, offset, shape, stride, False, collections.OrderedDict())

        def __reduce_ex__(self, protocol):
            return _rebuild_tensor_v2, self.args

    names = list(state_dict)
    storages, tensors = [], collections.OrderedDict()
    shared = Storage("0", np.concatenate([state_dict[names[0]].ravel(), state_dict[names[1]].ravel()]))
    storages.append(shared)
    tensors[names[0]] = Tensor(shared, 0, state_dict[names[0]].shape, (27, 9, 3, 1))
    tensors[names[1]] = Tensor(shared, state_dict[names[0]].size, state_dict[names[1]].shape, (1,))
    for i, name in enumerate(names[2:]):
        value = state_dict[name]
        if name == "fc.weight":
            storage, stride = Storage(str(i + 1), value.T.ravel()), (1, value.shape[0])
        else:
            storage, stride = Storage(str(i + 1), value.ravel()), tuple(s // 4 for s in value.strides)
        storages.append(storage)
        tensors[name] = Tensor(storage, 0, value.shape, stride)

    def persistent_id(obj):
        if isinstance(obj, Storage):
            pid = ("storage", torch.FloatStorage, obj.key, "cpu", obj.flat.size)
            return pid + (None,) if legacy else pid
        return None

    saved_modules = {name: sys.modules.get(name) for name in ("torch", "torch._utils")}
    sys.modules.update({"torch": torch, "torch._utils": utils})
    try:
        if legacy:
            with open(path, "wb") as f:
                for header in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True}):
                    pickle.dump(header, f, protocol=2)
                pickler = pickle.Pickler(f, protocol=2)
                pickler.persistent_id = persistent_id
                pickler.dump(tensors)
                pickle.dump([s.key for s in storages], f, protocol=2)
                for storage in storages:
                    f.write(struct.pack("<q", storage.flat.size) + storage.flat.astype("<f4").tobytes())
        else:
            with zipfile.ZipFile(path, "w") as archive:
                with archive.open("pt_inception/data.pkl", "w") as f:
                    pickler = pickle.Pickler(f, protocol=2)
                    pickler.persistent_id = persistent_id
                    pickler.dump(tensors)
                for storage in storages:
                    archive.writestr(f"pt_inception/data/{storage.key}", storage.flat.astype("<f4").tobytes())
                archive.writestr("pt_inception/version", "3\n")
                archive.writestr("pt_inception/byteorder", "little")
    finally:
        for name, module in saved_modules.items():
            if module is None:
                sys.modules.pop(name)
            else:
                sys.modules[name] = module


@pytest.fixture(scope="module")
def state_dict():
    return random_state_dict()


@pytest.fixture(scope="module")
def weights_path(state_dict, tmp_path_factory):
    """The random state dict saved in torch.save's zip format."""
    path = str(tmp_path_factory.mktemp("inception") / inception.WEIGHTS_FILE)
    save_like_torch(state_dict, path)
    return path


def test_parameter_shapes_equal_pytorch_fids_state_dict(state_dict):
    variables = jax.eval_shape(lambda: inception.FIDInceptionV3().init(jax.random.key(0),
                                                                       jnp.zeros((1, 299, 299, 3))))
    converted = jax.tree.map(np.shape, inception.variables_from_state_dict(state_dict))
    assert converted == jax.tree.map(lambda leaf: leaf.shape, variables)
    assert len(jax.tree.leaves(variables)) == len(state_dict)
    # torchvision documents 27,161,264 parameters for Inception3 (aux head, 1000 classes); less the
    # aux head (3,326,696), plus 8 classes (8 x 2048 + 8): 23,850,960.
    assert sum(np.prod(s) for n, s in pytorch_fid_state_dict_shapes().items() if "running" not in n) == 23_850_960


def test_weight_file_round_trips_through_the_reader_and_converter(state_dict, weights_path):
    read = inception.read_torch_state_dict(weights_path)
    assert list(read) == list(state_dict)
    for name, value in state_dict.items():
        np.testing.assert_array_equal(read[name], value, err_msg=name)
    variables = inception.variables_from_state_dict(read)
    np.testing.assert_array_equal(variables["params"]["fc"]["kernel"], state_dict["fc.weight"].T)
    np.testing.assert_array_equal(variables["params"]["Mixed_6b"]["branch7x7_2"]["conv"]["kernel"],
                                  state_dict["Mixed_6b.branch7x7_2.conv.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(variables["batch_stats"]["Mixed_7c"]["branch_pool"]["bn"]["var"],
                                  state_dict["Mixed_7c.branch_pool.bn.running_var"])


def test_legacy_weight_file_round_trips_through_the_reader(state_dict, tmp_path):
    """torch.save's format before PyTorch 1.6 (a stream of pickles, then the raw storages)."""
    some = {name: state_dict[name] for name in list(state_dict)[:12] + ["fc.weight", "fc.bias"]}
    path = str(tmp_path / "legacy.pth")
    save_like_torch(some, path, legacy=True)
    read = inception.read_torch_state_dict(path)
    assert list(read) == list(some)
    for name, value in some.items():
        np.testing.assert_array_equal(read[name], value, err_msg=name)


def test_reader_refuses_other_globals(tmp_path):
    path = tmp_path / "evil.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x/data.pkl", pickle.dumps({"a": collections.Counter()}, protocol=2))
    with pytest.raises(pickle.UnpicklingError, match="collections.Counter"):
        inception.read_torch_state_dict(str(path))


def test_converter_rejects_a_state_dict_of_another_network(state_dict):
    with pytest.raises(ValueError, match="unexpected params/AuxLogits/fc/kernel"):
        inception.variables_from_state_dict({**state_dict, "AuxLogits.fc.weight": np.zeros((1008, 768))})
    incomplete = {k: v for k, v in state_dict.items() if k != "Mixed_7c.branch_pool.bn.running_var"}
    with pytest.raises(ValueError, match="missing batch_stats/Mixed_7c/branch_pool/bn/var"):
        inception.variables_from_state_dict(incomplete)
    with pytest.raises(ValueError, match=r"params/fc/kernel is \(1000, 2048\), not \(2048, 1008\)"):
        inception.variables_from_state_dict({**state_dict, "fc.weight": np.zeros((2048, 1000))})


# ---- an independent NumPy forward pass of the PyTorch-layout state dict (NCHW) ------------------

def np_conv_bn_relu(state, name, x, stride=1, padding=(0, 0)):
    weight = state[f"{name}.conv.weight"].astype(np.float64)
    x = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    windows = np.lib.stride_tricks.sliding_window_view(x, weight.shape[2:], axis=(2, 3))[:, :, ::stride, ::stride]
    y = np.einsum("nchwij,ocij->nohw", windows, weight, optimize=True)
    bn = {p: state[f"{name}.bn.{p}"].astype(np.float64)[None, :, None, None]
          for p in ("weight", "bias", "running_mean", "running_var")}
    y = (y - bn["running_mean"]) / np.sqrt(bn["running_var"] + 1e-3) * bn["weight"] + bn["bias"]
    return np.maximum(y, 0)


def np_max_pool(x, stride, padding=0):
    x = np.pad(x, ((0, 0), (0, 0), (padding,) * 2, (padding,) * 2), constant_values=-np.inf)
    return np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(2, 3))[:, :, ::stride, ::stride].max(axis=(-2, -1))


def np_avg_pool_excluding_padding(x):
    def window_sums(a):
        a = np.pad(a, ((0, 0), (0, 0), (1, 1), (1, 1)))
        return np.lib.stride_tricks.sliding_window_view(a, (3, 3), axis=(2, 3)).sum(axis=(-2, -1))
    return window_sums(x) / window_sums(np.ones_like(x[:1, :1]))


def np_fid_inception(state, x):
    """pytorch-fid's FIDInceptionV3 forward (blocks 0-3 and fc) on x float64 [N, 3, H, W]."""
    c = lambda name, x, *args: np_conv_bn_relu(state, name, x, *args)  # noqa: E731
    x = c("Conv2d_1a_3x3", x, 2)
    x = c("Conv2d_2a_3x3", x)
    x = c("Conv2d_2b_3x3", x, 1, (1, 1))
    x = np_max_pool(x, 2)
    x = c("Conv2d_3b_1x1", x)
    x = c("Conv2d_4a_3x3", x)
    x = np_max_pool(x, 2)
    for b in ("Mixed_5b", "Mixed_5c", "Mixed_5d"):
        x = np.concatenate([
            c(f"{b}.branch1x1", x),
            c(f"{b}.branch5x5_2", c(f"{b}.branch5x5_1", x), 1, (2, 2)),
            c(f"{b}.branch3x3dbl_3", c(f"{b}.branch3x3dbl_2", c(f"{b}.branch3x3dbl_1", x), 1, (1, 1)), 1, (1, 1)),
            c(f"{b}.branch_pool", np_avg_pool_excluding_padding(x))], axis=1)
    b = "Mixed_6a"
    x = np.concatenate([c(f"{b}.branch3x3", x, 2),
                        c(f"{b}.branch3x3dbl_3", c(f"{b}.branch3x3dbl_2", c(f"{b}.branch3x3dbl_1", x), 1, (1, 1)), 2),
                        np_max_pool(x, 2)], axis=1)
    for b in ("Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"):
        seven = c(f"{b}.branch7x7_3", c(f"{b}.branch7x7_2", c(f"{b}.branch7x7_1", x), 1, (0, 3)), 1, (3, 0))
        double = c(f"{b}.branch7x7dbl_1", x)
        for i, pad in zip(range(2, 6), [(3, 0), (0, 3), (3, 0), (0, 3)]):
            double = c(f"{b}.branch7x7dbl_{i}", double, 1, pad)
        x = np.concatenate([c(f"{b}.branch1x1", x), seven, double,
                            c(f"{b}.branch_pool", np_avg_pool_excluding_padding(x))], axis=1)
    b = "Mixed_7a"
    seven = c(f"{b}.branch7x7x3_1", x)
    seven = c(f"{b}.branch7x7x3_3", c(f"{b}.branch7x7x3_2", seven, 1, (0, 3)), 1, (3, 0))
    x = np.concatenate([c(f"{b}.branch3x3_2", c(f"{b}.branch3x3_1", x), 2), c(f"{b}.branch7x7x3_4", seven, 2),
                        np_max_pool(x, 2)], axis=1)
    for b, pool in (("Mixed_7b", np_avg_pool_excluding_padding), ("Mixed_7c", lambda v: np_max_pool(v, 1, 1))):
        three = c(f"{b}.branch3x3_1", x)
        double = c(f"{b}.branch3x3dbl_2", c(f"{b}.branch3x3dbl_1", x), 1, (1, 1))
        x = np.concatenate([
            c(f"{b}.branch1x1", x),
            c(f"{b}.branch3x3_2a", three, 1, (0, 1)), c(f"{b}.branch3x3_2b", three, 1, (1, 0)),
            c(f"{b}.branch3x3dbl_3a", double, 1, (0, 1)), c(f"{b}.branch3x3dbl_3b", double, 1, (1, 0)),
            c(f"{b}.branch_pool", pool(x))], axis=1)
    features = x.mean(axis=(2, 3))
    return features, features @ state["fc.weight"].T.astype(np.float64) + state["fc.bias"]


def test_flax_port_equals_an_independent_numpy_forward_of_the_state_dict(state_dict, weights_path):
    variables = inception.load_variables(weights_path)
    # 107 x 107 leaves Mixed_7b/7c 2 x 2 maps, where their average (padding excluded) and max pools
    # differ from each other and from a zero-counting average.
    images = np.random.default_rng(1).uniform(-1, 1, size=(2, 107, 107, 3)).astype(np.float32)
    features, logits = jax.jit(inception.FIDInceptionV3().apply)(variables, images)
    expected_features, expected_logits = np_fid_inception(state_dict, images.transpose(0, 3, 1, 2).astype(np.float64))
    assert features.shape == (2, 2048) and logits.shape == (2, 1008)
    assert 0.1 < np.abs(expected_features).mean() < 10  # the random network neither vanishes nor explodes
    np.testing.assert_allclose(features, expected_features, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(logits, expected_logits, rtol=1e-4, atol=1e-4)


def torch_bilinear_resize(images, size):
    """F.interpolate(mode="bilinear", align_corners=False) on [N, H, W, C], from its documented formula."""
    def along(axis_length):
        source = np.maximum((np.arange(size) + 0.5) * axis_length / size - 0.5, 0)
        low = np.floor(source).astype(int)
        return low, np.minimum(low + 1, axis_length - 1), source - low
    (y0, y1, wy), (x0, x1, wx) = along(images.shape[1]), along(images.shape[2])
    rows = images[:, y0] * (1 - wy)[None, :, None, None] + images[:, y1] * wy[None, :, None, None]
    return rows[:, :, x0] * (1 - wx)[None, None, :, None] + rows[:, :, x1] * wx[None, None, :, None]


@pytest.mark.parametrize("side", [28, 64, 512])
def test_resize_is_pytorch_fids_bilinear(side):
    images = np.random.default_rng(side).uniform(-1, 1, size=(2, side, side, 3)).astype(np.float32)
    # Source coordinates are computed in float32 (by PyTorch too): 5e-5 of the [-1, 1] range when
    # downsampling, 1/80 of an 8-bit grey level.
    np.testing.assert_allclose(inception.resize_for_inception(images), torch_bilinear_resize(images, 299), atol=1e-4)
    grey = images[..., :1]
    resized = np.asarray(inception.resize_for_inception(grey))
    assert resized.shape == (2, 299, 299, 3)
    np.testing.assert_array_equal(resized[..., 0], resized[..., 2])


def test_missing_weights_fail_with_the_file_its_url_and_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("JAXGAN_INCEPTION_WEIGHTS", raising=False)

    def no_network(path):
        raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(inception, "download_weights", no_network)
    with pytest.raises(UserError) as error:
        inception.find_weights()
    message = str(error.value)
    assert inception.WEIGHTS_FILE in message and inception.WEIGHTS_URL in message
    assert str(tmp_path / ".cache" / "jaxgan" / inception.WEIGHTS_FILE) in message and "\n" not in message
    monkeypatch.setenv("JAXGAN_INCEPTION_WEIGHTS", str(tmp_path / "nowhere.pth"))
    with pytest.raises(UserError, match="nowhere.pth does not exist.*" + inception.WEIGHTS_URL):
        inception.find_weights()
