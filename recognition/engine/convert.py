"""Convert TF.js graph models (``model.json`` + weight shards) into TensorFlow SavedModels
(and face-api's weights-only ResNet face descriptor: :func:`convert_face_api_resnet`).

A TF.js graph model is a frozen GraphDef written as JSON (``modelTopology``) whose
``Const`` nodes carry no values; the values live in binary shards described by
``weightsManifest`` (float32, int32, or float16/uint8-quantised float32).

Rather than importing the GraphDef (TensorFlow rejects TF.js-only ops such as
``Prelu`` and ``_FusedConv2D`` nodes without ``TArgs``), the graph is *interpreted*:
each node is rebuilt with the equivalent public TensorFlow op inside a
``tf.function`` with a fixed input signature, which is then saved. Any internal
tensor can be exported as an output (FaceRes's embedding is ``global_pooling/Mean``,
which is not one of the graph's declared outputs).
"""

from __future__ import annotations

import collections
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ModelConversionError
from .runtime import import_tensorflow

_NP_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}


@dataclass(frozen=True)
class TfjsGraph:
    """A parsed TF.js graph model.

    ``nodes`` keeps the JSON node dicts in file order; ``weights`` maps a Const
    node's name to its numpy value (quantised weights already dequantised).
    """

    nodes: tuple[dict, ...]
    weights: dict[str, np.ndarray]
    input_name: str
    input_shape: tuple[int | None, ...]


def read_weights(manifest: Sequence[dict], base_dir: Path) -> dict[str, np.ndarray]:
    """Decode the weight shards listed in a TF.js ``weightsManifest``.

    Each group's shard files are concatenated in order and the weights are laid out
    back to back in that buffer. Supports float32/int32/bool and float16, uint8
    and uint16 quantisation (``value = q * scale + min`` for the integer kinds).
    """
    weights: dict[str, np.ndarray] = {}
    for group in manifest:
        buf = b"".join((base_dir / p).read_bytes() for p in group["paths"])
        offset = 0
        for spec in group["weights"]:
            shape = tuple(int(s) for s in spec["shape"])
            count = int(np.prod(shape)) if shape else 1
            quant = spec.get("quantization")
            stored = np.dtype(quant["dtype"] if quant else _NP_DTYPES[spec["dtype"]])
            nbytes = count * stored.itemsize
            if offset + nbytes > len(buf):
                raise ModelConversionError(f"weight {spec['name']} runs past the end of its shards")
            raw = np.frombuffer(buf, dtype=stored, count=count, offset=offset)
            if not quant:
                value = raw.copy()
            elif quant["dtype"] == "float16":
                value = raw.astype(np.float32)
            else:
                # as TF.js: computed in double, then stored (int32 weights: Math.round)
                value = raw.astype(np.float64) * quant["scale"] + quant["min"]
                if spec["dtype"] == "int32":
                    value = np.floor(value + 0.5)
                value = value.astype(_NP_DTYPES[spec["dtype"]])
            offset += nbytes
            weights[spec["name"]] = value.reshape(shape)
        if offset != len(buf):
            raise ModelConversionError(f"shards {group['paths']} hold {len(buf) - offset} unused bytes")
    return weights


def load_tfjs_graph(model_json: Path) -> TfjsGraph:
    """Parse ``model.json`` and its shards (in the same folder) into a :class:`TfjsGraph`."""
    model_json = Path(model_json)
    try:
        spec = json.loads(model_json.read_text())
        nodes = tuple(spec["modelTopology"]["node"])
        manifest = spec["weightsManifest"]
    except (OSError, ValueError, KeyError) as exc:
        raise ModelConversionError(f"{model_json}: not a TF.js graph model ({exc})") from exc
    weights = read_weights(manifest, model_json.parent)
    placeholders = [n for n in nodes if n["op"] == "Placeholder"]
    if len(placeholders) != 1:
        raise ModelConversionError(f"{model_json}: expected one input, found {len(placeholders)}")
    dims = placeholders[0]["attr"]["shape"]["shape"]["dim"]
    shape = tuple(None if int(d["size"]) < 0 else int(d["size"]) for d in dims)
    return TfjsGraph(nodes, weights, placeholders[0]["name"], shape)


def _attr(node: dict, key: str, default=None):
    """Read one attribute of a GraphDef JSON node in plain Python form."""
    a = node.get("attr", {}).get(key)
    if a is None:
        return default
    if "list" in a:
        lst = a["list"]
        if "i" in lst:
            return [int(v) for v in lst["i"]]
        if "s" in lst:
            import base64

            return [base64.b64decode(v).decode() for v in lst["s"]]
        return []
    if "s" in a:
        import base64

        return base64.b64decode(a["s"]).decode()
    if "i" in a:
        return int(a["i"])
    if "f" in a:
        return float(a["f"])
    if "b" in a:
        return bool(a["b"])
    if "type" in a:
        return a["type"]
    return default


def _padding(node: dict):
    """Padding argument for conv/pool ops (``EXPLICIT`` becomes a list of pairs)."""
    pad = _attr(node, "padding", "VALID")
    if pad == "EXPLICIT":
        p = _attr(node, "explicit_paddings", [])
        return [[p[i], p[i + 1]] for i in range(0, len(p), 2)]
    return pad


def _apply_fused(tf, node: dict, y, args: list):
    """Apply the post-ops a TF.js ``_Fused*`` node lists in ``fused_ops``."""
    ops = _attr(node, "fused_ops", [])
    rest = list(args)
    for op in ops:
        if op == "BiasAdd":
            y = tf.nn.bias_add(y, rest.pop(0))
        elif op == "Relu":
            y = tf.nn.relu(y)
        elif op == "Relu6":
            y = tf.nn.relu6(y)
        elif op == "Elu":
            y = tf.nn.elu(y)
        elif op == "Sigmoid":
            y = tf.sigmoid(y)
        elif op == "LeakyRelu":
            y = tf.nn.leaky_relu(y, alpha=_attr(node, "leakyrelu_alpha", 0.2))
        elif op == "Prelu":
            alpha = rest.pop(0)
            y = tf.nn.relu(y) + alpha * tf.minimum(y, 0.0)
        elif op == "FusedBatchNorm":
            scale, offset, mean, var = rest[:4]
            rest = rest[4:]
            eps = _attr(node, "epsilon", 1e-3)
            y = (y - mean) * (scale / tf.sqrt(var + eps)) + offset
        else:
            raise ModelConversionError(f"{node['name']}: unsupported fused op {op}")
    return y


def _op_table(tf) -> dict[str, Callable]:
    """Map TF.js op names to builders ``f(node, inputs) -> tensor``."""

    def conv(node, x):
        return tf.nn.conv2d(x[0], x[1], strides=_attr(node, "strides"), padding=_padding(node),
                            dilations=_attr(node, "dilations", [1, 1, 1, 1]))

    def depthwise(node, x):
        strides = _attr(node, "strides")
        dil = _attr(node, "dilations", [1, 1, 1, 1])
        return tf.nn.depthwise_conv2d(x[0], x[1], strides=strides, padding=_padding(node),
                                      dilations=dil[1:3])

    def matmul(node, x):
        return tf.linalg.matmul(x[0], x[1], transpose_a=_attr(node, "transpose_a", False),
                                transpose_b=_attr(node, "transpose_b", False))

    def pad(node, x):
        # PadV2 (same result as Pad with zeros), not tf.pad: with oneDNN on (the default
        # on x86 CPUs; seen with TF 2.21) a graph where Conv2D+BiasAdd (const weights)
        # feeds an AddV2 whose other operand is a Pad segfaults in MklLayoutRewritePass
        # when the tf.function is first run (BlazeFace's channel-padded residual add_15/add).
        return tf.raw_ops.PadV2(input=x[0], paddings=x[1],
                                constant_values=tf.zeros([], dtype=x[0].dtype))

    def pool(fn):
        return lambda node, x: fn(x[0], ksize=_attr(node, "ksize"), strides=_attr(node, "strides"),
                                  padding=_padding(node))

    return {
        "Identity": lambda n, x: tf.identity(x[0]),
        "Relu": lambda n, x: tf.nn.relu(x[0]),
        "Relu6": lambda n, x: tf.nn.relu6(x[0]),
        "Sigmoid": lambda n, x: tf.sigmoid(x[0]),
        "Tanh": lambda n, x: tf.tanh(x[0]),
        "Softmax": lambda n, x: tf.nn.softmax(x[0]),
        "Prelu": lambda n, x: tf.nn.relu(x[0]) + x[1] * tf.minimum(x[0], 0.0),
        "Add": lambda n, x: tf.add(x[0], x[1]),
        "AddV2": lambda n, x: tf.add(x[0], x[1]),
        "Sub": lambda n, x: tf.subtract(x[0], x[1]),
        "Mul": lambda n, x: tf.multiply(x[0], x[1]),
        "RealDiv": lambda n, x: tf.divide(x[0], x[1]),
        "Maximum": lambda n, x: tf.maximum(x[0], x[1]),
        "Minimum": lambda n, x: tf.minimum(x[0], x[1]),
        "Reshape": lambda n, x: tf.reshape(x[0], x[1]),
        "Squeeze": lambda n, x: tf.squeeze(x[0], axis=_attr(n, "squeeze_dims") or None),
        "Pad": pad,
        "ConcatV2": lambda n, x: tf.concat(x[:-1], axis=x[-1]),
        "Mean": lambda n, x: tf.reduce_mean(x[0], axis=x[1], keepdims=_attr(n, "keep_dims", False)),
        "MaxPool": pool(tf.nn.max_pool2d),
        "AvgPool": pool(tf.nn.avg_pool2d),
        "Conv2D": conv,
        "DepthwiseConv2dNative": depthwise,
        "MatMul": matmul,
        "_FusedConv2D": lambda n, x: _apply_fused(tf, n, conv(n, x), x[2:]),
        "FusedDepthwiseConv2dNative": lambda n, x: _apply_fused(tf, n, depthwise(n, x), x[2:]),
        "_FusedMatMul": lambda n, x: _apply_fused(tf, n, matmul(n, x), x[2:]),
    }


def build_function(graph: TfjsGraph, outputs: dict[str, str]):
    """Return a Python callable ``f(x) -> dict`` that evaluates ``graph`` with TensorFlow ops.

    ``outputs`` maps the exported output names to graph tensor names (``node`` or
    ``node:0``). Only the nodes those outputs depend on are evaluated.
    """
    tf = import_tensorflow()

    table = _op_table(tf)
    by_name = {n["name"]: n for n in graph.nodes}
    for key, tensor_name in outputs.items():
        if tensor_name.split(":")[0] not in by_name:
            raise ModelConversionError(f"output {key}: no node named {tensor_name}")
        if tensor_name.split(":")[-1] not in ("0", tensor_name):
            raise ModelConversionError(f"output {key}: only first outputs are supported")
    for n in graph.nodes:
        if n["op"] not in table and n["op"] not in ("Const", "Placeholder"):
            raise ModelConversionError(f"node {n['name']}: unsupported op {n['op']}")
        if n["op"] == "Const" and n["name"] not in graph.weights:
            raise ModelConversionError(f"const {n['name']} has no weight in the manifest")

    def run(x):
        cache: dict[str, object] = {graph.input_name: x}

        def value(name: str):
            name = name.split(":")[0]
            if name in cache:
                return cache[name]
            # iterative depth-first evaluation (graphs are a few hundred nodes deep)
            stack = [name]
            while stack:
                cur = stack[-1]
                if cur in cache:
                    stack.pop()
                    continue
                node = by_name[cur]
                if node["op"] == "Const":
                    cache[cur] = tf.constant(graph.weights[cur])
                    stack.pop()
                    continue
                deps = [i.split(":")[0] for i in node.get("input", []) if not i.startswith("^")]
                missing = [d for d in deps if d not in cache]
                if missing:
                    stack.extend(missing)
                    continue
                cache[cur] = table[node["op"]](node, [cache[d] for d in deps])
                stack.pop()
            return cache[name]

        return {key: value(t) for key, t in outputs.items()}

    return run


def convert_model(model_json: Path, out_dir: Path, outputs: dict[str, str],
                  input_shape: Sequence[int | None] | None = None) -> Path:
    """Convert one TF.js graph model into a SavedModel at ``out_dir``.

    The SavedModel's ``serving_default`` signature takes ``input`` (float32, NHWC,
    ``input_shape`` or the shape the model declares) and returns ``outputs``.
    """
    tf = import_tensorflow()

    graph = load_tfjs_graph(model_json)
    shape = tuple(input_shape) if input_shape is not None else graph.input_shape
    fn = build_function(graph, outputs)

    module = tf.Module()
    module.serve = tf.function(lambda x: fn(x),
                               input_signature=[tf.TensorSpec(shape, tf.float32, name="input")])
    return _save(module, Path(out_dir))


def _save(module, out_dir: Path) -> Path:
    """Save ``module.serve`` as the ``serving_default`` signature; replaces ``out_dir`` only once
    the new SavedModel is complete."""
    import shutil

    tf = import_tensorflow()

    tmp = out_dir.with_name(out_dir.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tf.saved_model.save(module, str(tmp), signatures={"serving_default": module.serve})
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return out_dir


# face-api's FaceRecognitionNet (dlib's ResNet-34 face descriptor): ``name/conv1`` blocks in order;
# ``*_down`` blocks halve the resolution and their shortcut is average-pooled (and zero-padded to
# the new channel count).
_RESNET_BLOCKS = ("conv32_1", "conv32_2", "conv32_3", "conv64_down", "conv64_1", "conv64_2", "conv64_3",
                  "conv128_down", "conv128_1", "conv128_2", "conv256_down", "conv256_1", "conv256_2",
                  "conv256_down_out")
_RESNET_MEAN_RGB = (122.782, 117.001, 104.298)


def build_face_api_resnet(weights: dict[str, np.ndarray]):
    """The 128-d face descriptor network of ``@vladmandic/face-api`` (a port of dlib's ResNet) as a
    ``tf.function``: ``Nx150x150x3`` float32 RGB in 0-255 -> ``{"embedding": Nx128}`` (unnormalised).

    face-api ships only the weights (``face_recognition_model``); the network is code, rebuilt here
    op for op from its ``FaceRecognitionNet``: each conv is followed by a bias and a per-channel
    scale and shift; the descriptor is the global mean of the last block through one dense layer.
    """
    tf = import_tensorflow()

    needed = {f"{b}/{c}/conv/filters" for b in _RESNET_BLOCKS for c in ("conv1", "conv2")}
    missing = (needed | {"conv32_down/conv/filters", "fc"}) - set(weights)
    if missing:
        raise ModelConversionError(f"face_recognition_model lacks weights: {sorted(missing)[:3]}")
    w = {k: tf.constant(v, tf.float32) for k, v in weights.items()}

    def conv(x, name: str, stride: int, relu: bool, padding: str = "SAME"):
        y = tf.nn.conv2d(x, w[f"{name}/conv/filters"], stride, padding) + w[f"{name}/conv/bias"]
        y = y * w[f"{name}/scale/weights"] + w[f"{name}/scale/biases"]
        return tf.nn.relu(y) if relu else y

    def block(x, name: str):
        down = "_down" in name
        out = conv(x, f"{name}/conv1", 2 if down else 1, True, "VALID" if down else "SAME")
        out = conv(out, f"{name}/conv2", 1, False)
        if down:
            x = tf.nn.avg_pool2d(x, 2, 2, "VALID")
            if x.shape[1] != out.shape[1]:  # odd sizes: face-api pads the conv path by a zero row/column
                out = tf.pad(out, [[0, 0], [0, 1], [0, 1], [0, 0]])
            if x.shape[3] != out.shape[3]:
                x = tf.concat([x, tf.zeros_like(x)], 3)
        return tf.nn.relu(out + x)

    def run(rgb):
        x = (rgb - tf.constant(_RESNET_MEAN_RGB, tf.float32)) / 255.0
        x = tf.nn.max_pool2d(conv(x, "conv32_down", 2, True, "VALID"), 3, 2, "VALID")
        for name in _RESNET_BLOCKS:
            x = block(x, name)
        return {"embedding": tf.matmul(tf.reduce_mean(x, [1, 2]), w["fc"])}

    return run


def convert_face_api_resnet(weights_manifest: Path, out_dir: Path,
                            input_shape: Sequence[int | None] = (None, 150, 150, 3)) -> Path:
    """Convert face-api's ``face_recognition_model`` (its ``-weights_manifest.json`` and shard)
    into a SavedModel at ``out_dir`` (signature as :func:`convert_model`'s, output ``embedding``)."""
    tf = import_tensorflow()

    manifest = json.loads(Path(weights_manifest).read_text())
    fn = build_face_api_resnet(read_weights(manifest, Path(weights_manifest).parent))
    module = tf.Module()
    module.serve = tf.function(lambda x: fn(x),
                               input_signature=[tf.TensorSpec(tuple(input_shape), tf.float32, name="input")])
    return _save(module, Path(out_dir))


# bump when build_onnx_function changes what it builds: installed chip descriptors are converted again
ONNX_CONVERTER_VERSION = 3


def build_onnx_function(model_bytes: bytes, gain: tuple[np.ndarray, np.ndarray] | None = None,
                        features: bool = False):
    """An ONNX graph as a Python callable ``f(x) -> {"embedding": ...}`` of TensorFlow ops, NHWC in
    (the graph's NCHW weights are transposed once). Covers the ops of the ArcFace and SFace
    MobileFaceNets: ``Conv`` (plain, depthwise, grouped), ``PRelu``, ``Add``, ``Sub`` and ``Mul`` (with a
    tensor or a constant), ``Dropout`` (inference: identity), ``Flatten``, ``Gemm`` and
    ``BatchNormalization``; anything else is refused. Parsing needs the ``onnx`` package.

    ``gain``: ``(gain, mean)``, each shaped as the feature map that the graph's ``Flatten`` flattens
    (NCHW without the batch, e.g. 1024x7x7; :func:`.train.fit_feature_gain`): the function then also
    returns ``"embedding_masked"``, the descriptor of ``mean + gain * (map - mean)``: the network's
    last layers run a second time on the gated map (a masked face's descriptor, docs/accuracy.md
    "A learned gain on SFace's last feature map"). ``features``: also return ``"features"``, that map
    itself (NHWC), which such a gain is trained on."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as exc:
        raise ModelConversionError("the onnx package is needed to convert this model: pip install onnx") from exc
    tf = import_tensorflow()

    try:
        graph = onnx.load_from_string(model_bytes).graph
    except Exception as exc:  # noqa: BLE001 - protobuf raises several kinds
        raise ModelConversionError(f"not an ONNX model ({exc})") from exc
    consts = {i.name: numpy_helper.to_array(i).astype(np.float32) for i in graph.initializer}
    inputs = [i.name for i in graph.input if i.name not in consts]
    known = {"Conv", "PRelu", "Add", "Sub", "Mul", "Dropout", "Flatten", "Gemm", "BatchNormalization"}
    unknown = sorted({n.op_type for n in graph.node} - known)
    if len(inputs) != 1 or len(graph.output) != 1 or unknown:
        raise ModelConversionError(f"unsupported ONNX graph (inputs {inputs}, ops {unknown})")
    nodes = [(n, {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}) for n in graph.node]

    def conv(x, node, attrs):
        w = consts[node.input[1]]  # out, in / group, kh, kw
        group, (sh, sw) = attrs.get("group", 1), attrs.get("strides", [1, 1])
        top, left, bottom, right = attrs.get("pads", [0, 0, 0, 0])
        if top or left or bottom or right:
            x = tf.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]])
        if group == 1:
            y = tf.nn.conv2d(x, w.transpose(2, 3, 1, 0), [1, sh, sw, 1], "VALID")
        elif group == w.shape[0] and w.shape[1] == 1:
            y = tf.nn.depthwise_conv2d(x, w.transpose(2, 3, 0, 1), [1, sh, sw, 1], "VALID")
        else:  # grouped: one convolution per group (TensorFlow's CPU kernels have no grouped conv)
            y = tf.concat([tf.nn.conv2d(xi, wi.transpose(2, 3, 1, 0), [1, sh, sw, 1], "VALID")
                           for xi, wi in zip(tf.split(x, group, axis=3), np.split(w, group, axis=0), strict=True)],
                          axis=3)
        return y + consts[node.input[2]] if len(node.input) > 2 else y

    def operand(c: np.ndarray, rank: int) -> np.ndarray:
        # a constant broadcast against a tensor of ``rank``: ONNX aligns trailing axes on NCHW, so one
        # against a 4-D tensor is brought to 4-D and to NHWC; against a 2-D tensor it stays as it is
        if c.size == 1 or rank != 4:
            return c
        if c.ndim > 4:
            raise ModelConversionError(f"unsupported constant of shape {c.shape}")
        return c.reshape((1,) * (4 - c.ndim) + c.shape).transpose(0, 2, 3, 1)

    if (gain is not None or features) and sum(n.op_type == "Flatten" for n, _ in nodes) != 1:
        raise ModelConversionError("a feature-map gain needs a graph with one Flatten")

    def apply(node, attrs, t):
        a = t[node.input[0]]
        if node.op_type == "Conv":
            y = conv(a, node, attrs)
        elif node.op_type == "PRelu":
            y = tf.nn.relu(a) + consts[node.input[1]].reshape(-1) * tf.minimum(a, 0.0)
        elif node.op_type in ("Add", "Sub", "Mul"):
            b = t[node.input[1]] if node.input[1] in t else operand(consts[node.input[1]], len(a.shape))
            y = a + b if node.op_type == "Add" else a - b if node.op_type == "Sub" else a * b
        elif node.op_type == "Dropout":
            y = a
        elif node.op_type == "Flatten":  # in ONNX's NCHW order
            y = tf.reshape(tf.transpose(a, [0, 3, 1, 2]), [tf.shape(a)[0], -1])
        elif node.op_type == "Gemm":
            w = consts[node.input[1]]
            y = tf.matmul(a, w.T if attrs.get("transB", 0) else w) * attrs.get("alpha", 1.0)
            if len(node.input) > 2:
                y = y + attrs.get("beta", 1.0) * consts[node.input[2]]
        else:  # BatchNormalization (inference)
            scale, bias, mean, var = (consts[i] for i in node.input[1:5])
            y = (a - mean) * (scale / np.sqrt(var + attrs.get("epsilon", 1e-5))) + bias
        return y

    if gain is not None:  # NCHW -> HWC, as the maps run here
        g, mu = (np.asarray(v, np.float32).transpose(1, 2, 0) for v in gain)

    def run(x):
        t = {inputs[0]: x}
        gated: dict = {}   # the masked branch from the Flatten on (its input gated)
        for node, attrs in nodes:
            if node.input[0] not in t:
                raise ModelConversionError(f"unsupported ONNX graph ({node.op_type} of a constant first operand)")
            if node.op_type == "Flatten":
                fmap = t[node.input[0]]
                if gain is not None:
                    gated[node.input[0]] = mu + g * (fmap - mu)
            if node.input[0] in gated:
                gated[node.output[0]] = apply(node, attrs, collections.ChainMap(gated, t))
            t[node.output[0]] = apply(node, attrs, t)
        out = {"embedding": t[graph.output[0].name]}
        if gain is not None:
            out["embedding_masked"] = gated[graph.output[0].name]
        if features:
            out["features"] = fmap
        return out

    return run


def onnx_head(model_bytes: bytes) -> tuple[np.ndarray, np.ndarray]:
    """The affine layers after an ONNX descriptor's ``Flatten`` (``Gemm`` and ``BatchNormalization``,
    as SFace ends) folded into ``(weights, bias)``: ``flatten(map) @ weights + bias`` is the descriptor
    before its normalisation, ``map`` in the graph's NCHW order (:func:`.train.fit_feature_gain`)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load_from_string(model_bytes).graph
    consts = {i.name: numpy_helper.to_array(i).astype(np.float64) for i in graph.initializer}
    ops = [n.op_type for n in graph.node]
    if ops.count("Flatten") != 1:
        raise ModelConversionError("the descriptor's head is not one Flatten and affine layers")
    weights, bias = None, None
    for node in graph.node[ops.index("Flatten") + 1:]:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Gemm" and weights is None:
            w = consts[node.input[1]]
            weights = (w.T if attrs.get("transB", 0) else w) * attrs.get("alpha", 1.0)
            bias = attrs.get("beta", 1.0) * consts[node.input[2]] if len(node.input) > 2 else np.zeros(w.shape[0])
        elif node.op_type == "BatchNormalization" and weights is not None:
            scale, beta, mean, var = (consts[i] for i in node.input[1:5])
            k = scale / np.sqrt(var + attrs.get("epsilon", 1e-5))
            weights, bias = weights * k, (bias - mean) * k + beta
        elif node.op_type != "Dropout":
            raise ModelConversionError(f"unsupported layer after the descriptor's Flatten: {node.op_type}")
    if weights is None:
        raise ModelConversionError("no Gemm after the descriptor's Flatten")
    return weights.astype(np.float32), bias.astype(np.float32)


def convert_onnx(model_bytes: bytes, out_dir: Path, input_shape: Sequence[int | None],
                 gain: tuple[np.ndarray, np.ndarray] | None = None) -> Path:
    """Convert an ONNX face descriptor (:func:`build_onnx_function`) into a SavedModel at ``out_dir``
    (signature as :func:`convert_model`'s: NHWC ``input``, output ``embedding``; with ``gain`` also
    ``embedding_masked``, :func:`build_onnx_function`)."""
    tf = import_tensorflow()

    fn = build_onnx_function(model_bytes, gain)
    module = tf.Module()
    module.serve = tf.function(lambda x: fn(x),
                               input_signature=[tf.TensorSpec(tuple(input_shape), tf.float32, name="input")])
    return _save(module, Path(out_dir))
