"""Inception-v3 of TF FID and pytorch-fid (the 2015-12-05 graph) in Flax, and its weight converter.

The network is pytorch-fid's `FIDInceptionV3` (src/pytorch_fid/inception.py): torchvision's
Inception3 with 1008 classes and no auxiliary head, whose Mixed_5b-d, 6b-e and 7b blocks average-pool
without counting the padding (as TensorFlow does) and whose last block (Mixed_7c) max-pools in its
pool branch. Its parameter names are pytorch-fid's state-dict names, so the converter is a renaming
plus a transposition. Features are the 2048-d global average of Mixed_7c ("pool3"), logits its
1008-way linear head.

Weights: pytorch-fid's `pt_inception-2015-12-05-6726825d.pth` (a PyTorch pickle, read here without
PyTorch by a restricted unpickler that only rebuilds tensors), looked up in --inception-weights,
$JAXGAN_INCEPTION_WEIGHTS, then ~/.cache/jaxgan/, and downloaded there when the network allows.
"""

import collections
import functools
import hashlib
import os
import pickle
import struct
import urllib.request
import zipfile

import flax.linen as nn
import flax.traverse_util
import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.errors import UserError

WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{WEIGHTS_FILE}"
WEIGHTS_SHA256_PREFIX = "6726825d"  # torch.hub's convention: the file name carries its hash's start
INPUT_SIZE = 299
NUM_FEATURES = 2048
NUM_LOGITS = 1008


class BasicConv(nn.Module):
    """torchvision's BasicConv2d: convolution without bias, batch norm (eps 1e-3, running stats), ReLU."""

    features: int
    kernel: tuple[int, int]
    stride: int = 1
    padding: tuple[int, int] = (0, 0)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = nn.Conv(self.features, self.kernel, self.stride, padding=[(p, p) for p in self.padding],
                    use_bias=False, name="conv")(x)
        x = nn.BatchNorm(use_running_average=True, epsilon=1e-3, name="bn")(x)
        return nn.relu(x)


def average_pool_3x3_same(x: jax.Array) -> jax.Array:
    """3x3 stride-1 average over the pixels inside the image only (TF's SAME; torch count_include_pad=False)."""
    return nn.avg_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)), count_include_pad=False)


def max_pool_3x3_valid_stride2(x: jax.Array) -> jax.Array:
    return nn.max_pool(x, (3, 3), (2, 2))


class InceptionA(nn.Module):
    pool_features: int

    @nn.compact
    def __call__(self, x):
        branch1x1 = BasicConv(64, (1, 1), name="branch1x1")(x)
        branch5x5 = BasicConv(48, (1, 1), name="branch5x5_1")(x)
        branch5x5 = BasicConv(64, (5, 5), padding=(2, 2), name="branch5x5_2")(branch5x5)
        branch3x3dbl = BasicConv(64, (1, 1), name="branch3x3dbl_1")(x)
        branch3x3dbl = BasicConv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(branch3x3dbl)
        branch3x3dbl = BasicConv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_3")(branch3x3dbl)
        branch_pool = BasicConv(self.pool_features, (1, 1), name="branch_pool")(average_pool_3x3_same(x))
        return jnp.concatenate([branch1x1, branch5x5, branch3x3dbl, branch_pool], axis=-1)


class InceptionB(nn.Module):
    @nn.compact
    def __call__(self, x):
        branch3x3 = BasicConv(384, (3, 3), stride=2, name="branch3x3")(x)
        branch3x3dbl = BasicConv(64, (1, 1), name="branch3x3dbl_1")(x)
        branch3x3dbl = BasicConv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(branch3x3dbl)
        branch3x3dbl = BasicConv(96, (3, 3), stride=2, name="branch3x3dbl_3")(branch3x3dbl)
        return jnp.concatenate([branch3x3, branch3x3dbl, max_pool_3x3_valid_stride2(x)], axis=-1)


class InceptionC(nn.Module):
    channels_7x7: int

    @nn.compact
    def __call__(self, x):
        c7 = self.channels_7x7
        branch1x1 = BasicConv(192, (1, 1), name="branch1x1")(x)
        branch7x7 = BasicConv(c7, (1, 1), name="branch7x7_1")(x)
        branch7x7 = BasicConv(c7, (1, 7), padding=(0, 3), name="branch7x7_2")(branch7x7)
        branch7x7 = BasicConv(192, (7, 1), padding=(3, 0), name="branch7x7_3")(branch7x7)
        branch7x7dbl = BasicConv(c7, (1, 1), name="branch7x7dbl_1")(x)
        branch7x7dbl = BasicConv(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_2")(branch7x7dbl)
        branch7x7dbl = BasicConv(c7, (1, 7), padding=(0, 3), name="branch7x7dbl_3")(branch7x7dbl)
        branch7x7dbl = BasicConv(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_4")(branch7x7dbl)
        branch7x7dbl = BasicConv(192, (1, 7), padding=(0, 3), name="branch7x7dbl_5")(branch7x7dbl)
        branch_pool = BasicConv(192, (1, 1), name="branch_pool")(average_pool_3x3_same(x))
        return jnp.concatenate([branch1x1, branch7x7, branch7x7dbl, branch_pool], axis=-1)


class InceptionD(nn.Module):
    @nn.compact
    def __call__(self, x):
        branch3x3 = BasicConv(192, (1, 1), name="branch3x3_1")(x)
        branch3x3 = BasicConv(320, (3, 3), stride=2, name="branch3x3_2")(branch3x3)
        branch7x7x3 = BasicConv(192, (1, 1), name="branch7x7x3_1")(x)
        branch7x7x3 = BasicConv(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(branch7x7x3)
        branch7x7x3 = BasicConv(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(branch7x7x3)
        branch7x7x3 = BasicConv(192, (3, 3), stride=2, name="branch7x7x3_4")(branch7x7x3)
        return jnp.concatenate([branch3x3, branch7x7x3, max_pool_3x3_valid_stride2(x)], axis=-1)


class InceptionE(nn.Module):
    """`max_pool`: the pool branch of pytorch-fid's FIDInceptionE_2 (Mixed_7c), a 3x3 stride-1 max
    pool where the other blocks average; the 2015-12-05 graph has it so."""

    max_pool: bool = False

    @nn.compact
    def __call__(self, x):
        branch1x1 = BasicConv(320, (1, 1), name="branch1x1")(x)
        branch3x3 = BasicConv(384, (1, 1), name="branch3x3_1")(x)
        branch3x3 = jnp.concatenate([BasicConv(384, (1, 3), padding=(0, 1), name="branch3x3_2a")(branch3x3),
                                     BasicConv(384, (3, 1), padding=(1, 0), name="branch3x3_2b")(branch3x3)], -1)
        branch3x3dbl = BasicConv(448, (1, 1), name="branch3x3dbl_1")(x)
        branch3x3dbl = BasicConv(384, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(branch3x3dbl)
        branch3x3dbl = jnp.concatenate([
            BasicConv(384, (1, 3), padding=(0, 1), name="branch3x3dbl_3a")(branch3x3dbl),
            BasicConv(384, (3, 1), padding=(1, 0), name="branch3x3dbl_3b")(branch3x3dbl)], -1)
        if self.max_pool:
            pooled = nn.max_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)))
        else:
            pooled = average_pool_3x3_same(x)
        branch_pool = BasicConv(192, (1, 1), name="branch_pool")(pooled)
        return jnp.concatenate([branch1x1, branch3x3, branch3x3dbl, branch_pool], axis=-1)


class FIDInceptionV3(nn.Module):
    """x float [N, H, W, 3] in [-1, 1], H, W >= 75 (299 for the reference protocol)
    -> (pool3 features float [N, 2048], logits float [N, 1008])."""

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = BasicConv(32, (3, 3), stride=2, name="Conv2d_1a_3x3")(x)
        x = BasicConv(32, (3, 3), name="Conv2d_2a_3x3")(x)
        x = BasicConv(64, (3, 3), padding=(1, 1), name="Conv2d_2b_3x3")(x)
        x = max_pool_3x3_valid_stride2(x)
        x = BasicConv(80, (1, 1), name="Conv2d_3b_1x1")(x)
        x = BasicConv(192, (3, 3), name="Conv2d_4a_3x3")(x)
        x = max_pool_3x3_valid_stride2(x)
        x = InceptionA(32, name="Mixed_5b")(x)
        x = InceptionA(64, name="Mixed_5c")(x)
        x = InceptionA(64, name="Mixed_5d")(x)
        x = InceptionB(name="Mixed_6a")(x)
        x = InceptionC(128, name="Mixed_6b")(x)
        x = InceptionC(160, name="Mixed_6c")(x)
        x = InceptionC(160, name="Mixed_6d")(x)
        x = InceptionC(192, name="Mixed_6e")(x)
        x = InceptionD(name="Mixed_7a")(x)
        x = InceptionE(name="Mixed_7b")(x)
        x = InceptionE(max_pool=True, name="Mixed_7c")(x)
        features = x.mean(axis=(1, 2))
        return features, nn.Dense(NUM_LOGITS, name="fc")(features)


def resize_for_inception(images: jax.Array) -> jax.Array:
    """images float [N, H, W, C in (1, 3)] in [-1, 1] -> float [N, 299, 299, 3] in [-1, 1].

    Bilinear with half-pixel centres and no antialiasing, which is pytorch-fid's
    F.interpolate(mode="bilinear", align_corners=False) (tested against that formula). Grey images
    are repeated into the three channels. TF FID fed uint8 images to the graph's own resize instead;
    pytorch-fid documents that its numbers differ slightly from TF FID's for that reason.
    """
    resized = jax.image.resize(images, (images.shape[0], INPUT_SIZE, INPUT_SIZE, images.shape[-1]), "bilinear",
                               antialias=False)
    return jnp.repeat(resized, 3, axis=-1) if images.shape[-1] == 1 else resized


# ---- the PyTorch weight file, read without PyTorch ----------------------------------------------

_LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C  # torch.save before the zip format (PyTorch < 1.6)
_STORAGE_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
                   "LongStorage": np.int64, "IntStorage": np.int32, "ByteStorage": np.uint8}


class _StorageType:
    def __init__(self, name: str):
        self.dtype = np.dtype(_STORAGE_DTYPES[name]).newbyteorder("<")


class _Storage:
    """A flat array of one torch storage, filled when its bytes are read."""

    def __init__(self, dtype: np.dtype, numel: int):
        self.dtype, self.numel, self.array = dtype, numel, None


class _TensorRecord:
    """What torch._utils._rebuild_tensor_v2 received: a strided view of a storage."""

    def __init__(self, storage, offset, size, stride, *_):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def to_numpy(self) -> np.ndarray:
        flat = self.storage.array
        itemsize = flat.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(flat[self.offset:], self.size, [s * itemsize for s in self.stride])
        return np.array(view, dtype=flat.dtype.newbyteorder("="))


def _rebuild_parameter(tensor, requires_grad, backward_hooks, *_):
    return tensor


class _StateDictUnpickler(pickle.Unpickler):
    """Unpickles a torch state dict, allowing only the few globals a dict of tensors refers to."""

    ALLOWED = {("collections", "OrderedDict"): collections.OrderedDict,
               ("torch._utils", "_rebuild_tensor_v2"): _TensorRecord,
               ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
               ("torch", "Size"): tuple}

    def __init__(self, file, storages: dict):
        super().__init__(file)
        self.storages = storages

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return self.ALLOWED[module, name]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"{module}.{name} is not part of a state dict of tensors; refusing to load it")

    def persistent_load(self, pid):
        # ("storage", type, key, location, numel) in zip files; one more field (a view) in legacy ones.
        storage_type, key, numel = pid[1], str(pid[2]), pid[4]
        if len(pid) > 5 and pid[5] is not None:
            raise pickle.UnpicklingError("storage views are not supported")
        if key not in self.storages:
            self.storages[key] = _Storage(storage_type.dtype, numel)
        return self.storages[key]


def read_torch_state_dict(path: str) -> dict[str, np.ndarray]:
    """name -> array of a PyTorch state dict saved by torch.save, in either of its formats:

    - zip (PyTorch >= 1.6): `<root>/data.pkl` is the pickle, `<root>/data/<key>` each storage's raw
      little-endian bytes;
    - legacy: pickles of the magic number, the protocol version and the system info, then the
      object, then the list of storage keys, then each storage as int64 element count + raw bytes.
    Only tensors and ordered dicts are rebuilt; any other global in the pickle is refused.
    """
    storages: dict[str, _Storage] = {}
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            pickle_name = next(n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl")
            root = pickle_name[:-len("data.pkl")]
            with archive.open(pickle_name) as f:
                state_dict = _StateDictUnpickler(f, storages).load()
            for key, storage in storages.items():
                storage.array = np.frombuffer(archive.read(f"{root}data/{key}"), storage.dtype)
    else:
        with open(path, "rb") as f:
            if pickle.load(f) != _LEGACY_MAGIC_NUMBER:
                raise ValueError(f"{path} is not a file written by torch.save")
            pickle.load(f), pickle.load(f)  # protocol version, system info
            state_dict = _StateDictUnpickler(f, storages).load()
            for key in pickle.load(f):
                (numel,) = struct.unpack("<q", f.read(8))
                storage = storages[str(key)]
                storage.array = np.frombuffer(f.read(numel * storage.dtype.itemsize), storage.dtype)
    return {name: tensor.to_numpy() for name, tensor in state_dict.items()}


@functools.cache
def _variable_shapes() -> dict[str, tuple[int, ...]]:
    """"collection/module/.../leaf" -> shape of every FIDInceptionV3 variable (traced once, not run)."""
    variables = jax.eval_shape(lambda: FIDInceptionV3().init(jax.random.key(0),
                                                             jnp.zeros((1, INPUT_SIZE, INPUT_SIZE, 3))))
    return {name: leaf.shape for name, leaf in flax.traverse_util.flatten_dict(variables, sep="/").items()}


def variables_from_state_dict(state_dict: dict[str, np.ndarray]) -> dict:
    """pytorch-fid's FIDInceptionV3 state dict -> Flax variables {"params", "batch_stats"} of FIDInceptionV3.

    Convolution weights [out, in, kh, kw] become kernels [kh, kw, in, out]; the linear head's
    [1008, 2048] weight becomes a [2048, 1008] kernel; batch norm's weight, bias, running mean and
    running variance become scale, bias (params) and mean, var (batch_stats). `num_batches_tracked`
    counters are dropped. Raises ValueError on a missing, unexpected or misshapen entry.
    """
    renames = {"conv.weight": ("params", "kernel", (2, 3, 1, 0)), "bn.weight": ("params", "scale", None),
               "bn.bias": ("params", "bias", None), "bn.running_mean": ("batch_stats", "mean", None),
               "bn.running_var": ("batch_stats", "var", None), "fc.weight": ("params", "kernel", (1, 0)),
               "fc.bias": ("params", "bias", None)}
    flat = {}
    for name, value in state_dict.items():
        if name.endswith("num_batches_tracked"):
            continue
        *modules, layer, kind = name.split(".")
        if f"{layer}.{kind}" not in renames:
            raise ValueError(f"unexpected entry {name} in the Inception state dict")
        collection, leaf, axes = renames[f"{layer}.{kind}"]
        value = np.asarray(value, np.float32)
        flat["/".join([collection, *modules, layer, leaf])] = value.transpose(axes) if axes else value
    expected = _variable_shapes()
    problems = ([f"missing {n}" for n in expected if n not in flat]
                + [f"unexpected {n}" for n in flat if n not in expected]
                + [f"{n} is {flat[n].shape}, not {s}" for n, s in expected.items() if n in flat and flat[n].shape != s])
    if problems:
        raise ValueError(f"the state dict does not fit FIDInceptionV3 ({len(problems)} problems): "
                         f"{'; '.join(problems[:4])}")
    return flax.traverse_util.unflatten_dict(flat, sep="/")


def default_weights_path() -> str:
    return os.path.join(os.path.expanduser("~"), ".cache", "jaxgan", WEIGHTS_FILE)


def find_weights(path: str | None = None) -> str:
    """The weight file: `path`, else $JAXGAN_INCEPTION_WEIGHTS, else ~/.cache/jaxgan/ (downloaded there
    if absent and the network allows). Raises UserError naming the file, its URL and where to put it."""
    where = (f"download {WEIGHTS_URL} on a machine with network and put it at {default_weights_path()}, "
             f"or pass --inception-weights PATH (or set JAXGAN_INCEPTION_WEIGHTS=PATH)")
    path = path or os.environ.get("JAXGAN_INCEPTION_WEIGHTS")
    if path:
        if not os.path.isfile(path):
            raise UserError(f"the Inception weights file {path} does not exist: {where}")
        return path
    path = default_weights_path()
    if not os.path.isfile(path):
        try:
            download_weights(path)
        except OSError as e:
            raise UserError(f"the Inception weights {WEIGHTS_FILE} are not in {os.path.dirname(path)} and could not "
                            f"be downloaded ({' '.join(str(e).split())[:120]}): {where}") from None
    return path


def download_weights(path: str) -> None:
    """Downloads WEIGHTS_URL to `path` (through a temporary file), checking the hash in its name."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    partial = f"{path}.{os.getpid()}.partial"
    with urllib.request.urlopen(WEIGHTS_URL, timeout=30) as response, open(partial, "wb") as f:
        digest = hashlib.sha256()
        while chunk := response.read(1 << 20):
            digest.update(chunk)
            f.write(chunk)
    if not digest.hexdigest().startswith(WEIGHTS_SHA256_PREFIX):
        os.remove(partial)
        raise OSError(f"the downloaded file's SHA-256 does not start with {WEIGHTS_SHA256_PREFIX}")
    os.replace(partial, path)


def load_variables(path: str | None = None) -> dict:
    """Flax variables of FIDInceptionV3 from the weight file that `find_weights(path)` finds."""
    return variables_from_state_dict(read_torch_state_dict(find_weights(path)))
