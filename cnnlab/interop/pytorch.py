"""Import a PyTorch model's architecture: an nn.Module class named as `their_net.py:Net` or
`package.module:Net` (or the one top-level module class in `their_net.py`), made with no arguments, traced
with torch.fx and written in the model language, so summary, lint and the doctor see every layer of it.

Each traced operation maps to a layer (Conv2d -> conv, F.relu -> relu, torch.flatten / x.view(x.size(0), -1)
-> flatten, ...); `x + f(x)` and torch.cat become `residual` and `concat` blocks (graph.py). The first
operation that does not map is refused, naming the file, the class, the fx node, its op and its line in
forward. Weights are not imported. The parameter count is checked against the module's own (sum of
p.numel()): PyTorch's flatten is channels-first like cnnlab's, so a Linear after it keeps its size.

From a file, only its imports, definitions and constant assignments run (an import that fails, torchvision
where it is not installed, is skipped): the training loop and data download of a tutorial script do not.
"""
from __future__ import annotations

import ast
import inspect
import importlib
import math
import operator
import re
import sys
import types
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import fx, nn

from ..errors import UserError
from .graph import Node, to_layers
from .imported import Imported, Layer

MAPPED = ("Conv2d, Linear, BatchNorm2d/1d, ReLU/F.relu/torch.relu, LeakyReLU, ELU, GELU, SiLU, Mish, Tanh, Sigmoid, "
          "MaxPool2d/F.max_pool2d, AvgPool2d/F.avg_pool2d, AdaptiveAvgPool2d(1), AdaptiveMaxPool2d(1), x.mean((2, 3)), "
          "Flatten/torch.flatten/x.view(x.size(0), -1), Dropout, Dropout2d, Identity, x + f(x), torch.cat(dim=1), "
          "x * number")
TORCH_DIR = str(Path(torch.__file__).parent)
_FRAME = re.compile(r'File "([^"]+)", line (\d+), in \S+\n\s+(.*)')

ACTIVATION_MODULES = {nn.ReLU: "relu", nn.GELU: "gelu", nn.SiLU: "silu", nn.Mish: "mish", nn.Tanh: "tanh",
                      nn.Sigmoid: "sigmoid"}
ACTIVATION_FUNCTIONS = {F.relu: "relu", torch.relu: "relu", F.relu_: "relu", torch.relu_: "relu", F.gelu: "gelu",
                        F.silu: "silu", F.mish: "mish", torch.tanh: "tanh", F.tanh: "tanh", torch.sigmoid: "sigmoid",
                        F.sigmoid: "sigmoid"}
ACTIVATION_METHODS = {"relu": "relu", "relu_": "relu", "tanh": "tanh", "sigmoid": "sigmoid"}


class _Misfit(Exception):
    """An operation with no counterpart: why."""


# ------------------------------------------------------------------ finding the class

def split_target(source: str) -> tuple[str, str | None]:
    """('their_net.py', 'Net') for 'their_net.py:Net' or 'their_net.py:VGG("VGG16")', ('pkg.nets', 'Net') for
    'pkg.nets:Net', and ('their_net.py', None) for a file alone."""
    where, name, _, _ = parse_target(source)
    return where, name


def parse_target(source: str) -> tuple[str, str | None, tuple, dict]:
    """(where, name, args, kwargs) of a reference: `file.py:Net`, `package.module:Net`, or either with a call,
    `vgg.py:VGG('VGG16')`, `shufflenetv2.py:ShuffleNetV2(net_size=1)`, `resnet.py:ResNet18()` (a class or a
    function returning a module, called with these plain values). A file alone: (source, None, (), {})."""
    where, colon, ref = source.partition(":")
    if not (colon and where and (where.endswith(".py") or _dotted(where))):
        return source, None, (), {}
    if ref.isidentifier():
        return where, ref, (), {}
    try:
        call = ast.parse(ref.strip(), mode="eval").body
    except SyntaxError:
        return source, None, (), {}
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)):
        return source, None, (), {}
    try:
        args = tuple(ast.literal_eval(a) for a in call.args)
        kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg}
    except ValueError:
        raise UserError(f"{source}: the arguments in the reference must be plain values (numbers, strings, "
                        f"lists, dicts), as in {where}:VGG('VGG16') or {where}:ShuffleNetV2(net_size=1)") from None
    return where, call.func.id, args, kwargs


def _dotted(text: str) -> bool:
    return all(part.isidentifier() for part in text.split("."))


def is_target(source: str) -> bool:
    """`file.py:Class` or `package.module:Class`: the forms only a PyTorch module is given in."""
    return split_target(source)[1] is not None


def module_classes(tree: ast.Module) -> list[str]:
    """The classes a file defines that are nn.Modules (directly, or through another class of the file)."""
    found: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            bases = [ast.unparse(b) for b in node.bases]
            if any(b in ("nn.Module", "torch.nn.Module", "Module") or b in found for b in bases):
                found.append(node.name)
    return found


def _top_classes(tree: ast.Module, classes: list[str]) -> list[str]:
    """Of `classes`, those no other class of the file uses (the network, not its blocks)."""
    used = set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name in classes:
            used |= {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and n.id != node.name}
            used |= {ast.unparse(b) for b in node.bases}
    return [c for c in classes if c not in used]


def _load_file(path: Path, source: str) -> tuple[types.ModuleType, ast.Module, list[str]]:
    """Run the file's imports, definitions and constant assignments in a fresh module; (module, its syntax
    tree, what was skipped). Scripts put training and downloads at the top level: those do not run."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise UserError(f"{source}: cannot read ({exc.strerror})") from None
    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        raise UserError(f"{path} line {exc.lineno}: not valid Python ({exc.msg})") from None
    module = types.ModuleType(f"cnnlab_import_{re.sub(r'[^0-9a-zA-Z_]', '_', path.stem)}")
    module.__file__ = str(path)
    skipped: list[str] = []
    sys.modules[module.__name__] = module  # dataclasses and typing look a class's module up by name
    sys.path.insert(0, str(path.parent.resolve()))  # the file's own imports of files beside it
    try:
        for stmt in tree.body:
            definition = isinstance(stmt, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            constant = isinstance(stmt, (ast.Assign, ast.AnnAssign)) and not any(
                isinstance(n, (ast.Call, ast.Await, ast.Yield)) for n in ast.walk(stmt))
            if not (definition or constant or isinstance(stmt, (ast.Import, ast.ImportFrom))):
                continue
            try:
                exec(compile(ast.Module([stmt], []), str(path), "exec"), module.__dict__)  # noqa: S102 — the user's own model file
            except Exception as exc:  # noqa: BLE001 — their code: what failed is reported, or skipped and noted
                if definition:
                    raise UserError(f"{path} line {stmt.lineno}: defining {stmt.name} failed: "
                                    f"{type(exc).__name__}: {exc}") from None
                skipped.append(f"line {stmt.lineno} ({type(exc).__name__}: {str(exc).splitlines()[0][:80]})")
    finally:
        sys.path.remove(str(path.parent.resolve()))
    return module, tree, skipped


def load(source: str) -> tuple[nn.Module, str, list[str]]:
    """(the module, made by its class or a function that returns one, with the reference's arguments or none;
    'file.py:Name' as messages name it; notes)."""
    where, name, args, kwargs = parse_target(source)
    notes: list[str] = []
    if where.endswith(".py"):
        path = Path(where)
        if not path.is_file():
            raise UserError(f"{where}: no such file")
        module, tree, skipped = _load_file(path, source)
        classes = module_classes(tree)
        if name is None:
            top = _top_classes(tree, classes)
            if len(top) != 1:
                listed = ", ".join(f"{where}:{c}" for c in (top or classes)) or "none"
                raise UserError(f"{where}: {'no' if not classes else 'more than one'} nn.Module class to import; "
                                f"name it: {listed}")
            name = top[0]
            notes.append(f"imported class {name}, the nn.Module no other class of {path.name} uses; name another "
                         f"with {where}:Class")
        if skipped:
            notes.append(f"{path.name}: only its imports, definitions and constants ran (not its training code); "
                         f"what failed was skipped: {'; '.join(skipped[:3])}"
                         + (f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""))
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as exc:
            raise UserError(f"{source}: cannot import '{where}' ({exc}); is it on PYTHONPATH?") from None
        classes = [k for k, v in vars(module).items() if isinstance(v, type) and issubclass(v, nn.Module)
                   and v.__module__ == module.__name__]
        skipped = []
    label = f"{where}:{name}"
    target = getattr(module, name, None)
    if target is None:
        raise UserError(f"{label}: {where} has no '{name}'; its nn.Module classes: {', '.join(classes) or 'none'}")
    if isinstance(target, nn.Module):
        return target, label, notes
    is_class = isinstance(target, type) and issubclass(target, nn.Module)
    if not (is_class or inspect.isfunction(target)):
        raise UserError(f"{label}: {name} is a {type(target).__name__}, not an nn.Module class or a function "
                        "returning one")
    called = f"{name}({', '.join([repr(a) for a in args] + [f'{k}={v!r}' for k, v in kwargs.items()])})"
    try:
        made = target(*args, **kwargs)
    except TypeError as exc:
        raise UserError(f"{label}: {called} fails ({exc}); give its arguments in the reference, as "
                        f"{where}:{_wanted(target, name)} with plain values, or with --args") from None
    except Exception as exc:  # noqa: BLE001 — their constructor: its failure is reported as theirs
        hint = f" ({Path(where).name}: only imports, definitions and constants were run)" if skipped else ""
        raise UserError(f"{label}: {called} failed: {type(exc).__name__}: {str(exc).splitlines()[0]}{hint}") from None
    if not isinstance(made, nn.Module):
        raise UserError(f"{label}: {called} returned a {type(made).__name__}, not an nn.Module")
    if args or kwargs or not is_class:
        notes.append(f"made the model with {called}")
    return made, label, notes


def _wanted(target, name: str) -> str:
    """`VGG(vgg_name=...)`: the call its required parameters ask for."""
    try:
        params = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return f"{name}(...)"
    required = [p.name for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return f"{name}({', '.join(f'{p}=...' for p in required)})"


# ------------------------------------------------------------------ tracing

class _Recorder(fx.Interpreter):
    """Runs the traced graph once and keeps every node's value (tensors, and the ints of x.size(0))."""
    def __init__(self, module):
        super().__init__(module)
        self.values: dict[fx.Node, object] = {}

    def run_node(self, n):
        result = super().run_node(n)
        self.values[n] = result
        return result


def _first_input_size(gm: fx.GraphModule) -> tuple[int | None, int | None]:
    """(in_channels of the first conv, in_features of the first linear), whichever comes first in forward."""
    for n in gm.graph.nodes:
        if n.op == "call_module":
            m = gm.get_submodule(n.target)
            if isinstance(m, nn.Conv2d):
                return m.in_channels, None
            if isinstance(m, nn.Linear):
                return None, m.in_features
    return None, None


def _shapes_to_try(gm: fx.GraphModule) -> list[tuple]:
    channels, features = _first_input_size(gm)
    if channels is None and features is not None:  # an MLP on flattened images
        return [s for s in ((1, 28, 28), (3, 32, 32)) if math.prod(s) == features] or [(1, 28, 28)]
    channels = channels or 3
    return [(channels, 28, 28), (channels, 32, 32)] if channels == 1 else [(channels, 32, 32), (channels, 28, 28)]


def trace(model: nn.Module, label: str, input_shape: tuple | None):
    """(graph module, the values of one forward pass, the input shape it ran on)."""
    tracer = fx.Tracer()
    tracer.record_stack_traces = True  # each node's line in forward, for comments and errors
    try:
        graph = tracer.trace(model)
    except Exception as exc:  # noqa: BLE001 — fx's own message says what it could not follow
        raise UserError(f"{label}: torch.fx cannot trace forward ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:160]}); cnnlab reads a forward without Python control flow "
                        "on tensor values") from None
    gm = fx.GraphModule(model, graph)
    failures = []
    for shape in ([tuple(input_shape)] if input_shape else _shapes_to_try(gm)):
        recorder = _Recorder(gm.eval())
        try:
            with torch.no_grad():
                recorder.run(torch.zeros(2, *shape))
        except Exception as exc:  # noqa: BLE001 — the shape does not fit: try the next, then report
            failures.append(f"{'x'.join(map(str, shape))}: {str(exc).splitlines()[0][:120]}")
            continue
        return gm, recorder.values, tuple(shape)
    raise UserError(f"{label}: forward fails on the input sizes tried ({'; '.join(failures)}); pass --data with the "
                    "data set it is written for")


def _origin(n: fx.Node) -> tuple[int | None, str]:
    """(line, code) of the node's call in the user's forward."""
    frames = [f for f in _FRAME.findall(n.stack_trace or "") if not f[0].startswith(TORCH_DIR)]
    return (int(frames[-1][1]), frames[-1][2].strip()) if frames else (None, "")


def _function_name(fn) -> str:
    module = getattr(fn, "__module__", None) or ""
    short = {"torch.nn.functional": "F", "_operator": "operator", "torch._C._VariableFunctions": "torch"}
    prefix = short.get(module, module or "torch")
    return f"{prefix}.{getattr(fn, '__name__', str(fn))}"


# ------------------------------------------------------------------ one operation -> the model language

def _compact(value):
    if isinstance(value, (tuple, list)):
        value = tuple(value)
        return value[0] if len(set(value)) == 1 else list(value)
    return value


class _Converter:
    def __init__(self, gm: fx.GraphModule, values: dict, label: str):
        self.gm, self.values, self.label = gm, values, label
        self.pooled: set[fx.Node] = set()  # tensors torch keeps as N x C x 1 x 1 and cnnlab has as vectors
        self.notes: list[str] = []
        self.calls: dict[str, int] = {}

    def arg(self, n: fx.Node, index: int, name: str, default=None):
        value = n.args[index] if len(n.args) > index else n.kwargs.get(name, default)
        return self.values.get(value, value) if isinstance(value, fx.Node) else value

    def shape(self, n) -> tuple:
        return tuple(self.values[n].shape)

    def source(self, n: fx.Node) -> str:
        """What the layer is in the user's code: `self.conv1 (Conv2d)`, `F.relu`, `x.view`."""
        if n.op == "call_module":
            return f"self.{n.target} ({type(self.gm.get_submodule(n.target)).__name__})"
        if n.op == "call_method":
            return f"x.{n.target}"
        return _function_name(n.target)

    def op(self, n: fx.Node) -> str:
        if n.op == "call_module":
            return f"call_module {type(self.gm.get_submodule(n.target)).__name__}"
        if n.op == "call_method":
            return f"call_method {n.target}"
        if n.op == "call_function":
            return f"call_function {_function_name(n.target)}"
        return n.op

    def where(self, n: fx.Node) -> str:
        line, code = _origin(n)
        at = f" at line {line} (`{code[:60]}`)" if line else ""
        return f"{self.label}: fx node `{n.name}` ({self.op(n)}){at}"

    def tensors(self, n: fx.Node) -> list[fx.Node]:
        return [a for a in n.all_input_nodes if isinstance(self.values.get(a), torch.Tensor)]

    def reshape(self, n: fx.Node, x: fx.Node):
        """view / reshape / flatten / squeeze: a flatten when it keeps the batch and joins the rest."""
        before, after = self.shape(x), self.shape(n)
        if after == before:
            return None
        if len(before) > 2 and after == (before[0], math.prod(before[1:])):
            return None if x in self.pooled else "flatten"  # global pooling already gave cnnlab a vector
        raise _Misfit(f"reshapes {'x'.join(map(str, before[1:]))} into {'x'.join(map(str, after[1:]))}; cnnlab "
                      "flattens a feature map into a vector (torch.flatten(x, 1), x.view(x.size(0), -1)) and "
                      "reshapes nothing else")

    def pool(self, kind: str, size, stride, padding, dilation=1, ceil_mode=False, count_include_pad=True):
        if _compact(dilation) != 1 or ceil_mode:
            raise _Misfit("pooling with dilation or ceil_mode=True has no counterpart; cnnlab pools with "
                          "dilation 1, rounding down")
        size, stride, padding = _compact(size), _compact(stride) if stride else None, _compact(padding)
        if kind == "avgpool" and padding != 0 and count_include_pad:
            self.notes.append("an AvgPool2d with padding counts the zero padding in its averages; cnnlab's avgpool "
                              "leaves it out (the same weights; slightly different values at the borders)")
        args = {"size": size}
        if stride is not None and stride != size:
            args["stride"] = stride
        if padding != 0:
            args["padding"] = padding
        return {kind: args} if len(args) > 1 else {kind: size}

    def global_pool(self, n: fx.Node, x: fx.Node, kind: str, size) -> str:
        if _compact(size) != 1:
            raise _Misfit(f"adaptive pooling to {size} has no counterpart; cnnlab pools globally (output size 1)")
        self.pooled.add(n)
        return kind

    def need_map(self, n, x, what: str) -> None:
        if x in self.pooled:
            raise _Misfit(f"{what} after global pooling: cnnlab's global pooling gives a vector, with no map left")

    def layer(self, n: fx.Node, x: fx.Node, output: fx.Node):
        """The model-language entry (None: passes its input through) for a one-input operation."""
        if x in self.pooled:
            self.pooled.add(n)  # activations, dropout and the like keep it a vector
        if n.op == "call_module":
            return self.module(n, x, self.gm.get_submodule(n.target), output)
        if n.op == "call_method":
            return self.method(n, x, output)
        return self.function(n, x, output)

    def module(self, n, x, m: nn.Module, output):
        self.calls[n.target] = self.calls.get(n.target, 0) + 1
        if self.calls[n.target] > 1 and any(True for _ in m.parameters()):
            raise _Misfit(f"self.{n.target} is called a second time, so the calls share its weights; cnnlab's "
                          "model language gives every layer its own weights")
        if isinstance(m, nn.Conv2d):
            self.need_map(n, x, "a convolution")
            if m.padding_mode != "zeros":
                raise _Misfit(f"padding_mode='{m.padding_mode}' has no counterpart in cnnlab's conv; write a "
                              f"`pad: {{size: {_compact(m.padding)}, mode: {m.padding_mode}}}` layer before a conv "
                              "without padding")
            args = {"filters": m.out_channels, "kernel": _compact(m.kernel_size)}
            for key, value, default in (("stride", m.stride, 1), ("padding", m.padding, 0),
                                        ("dilation", m.dilation, 1), ("groups", m.groups, 1)):
                if _compact(value) != default:
                    args[key] = _compact(value)
            if m.bias is None:
                args["bias"] = False
            return {"conv": args}
        if isinstance(m, nn.Linear):
            return self.linear(x, m.out_features, m.bias is not None)
        if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            if not m.affine or not m.track_running_stats or m.momentum is None:
                raise _Misfit("BatchNorm without affine, without running statistics or with momentum=None has no "
                              "counterpart; cnnlab's batchnorm learns scale and shift and keeps running averages")
            if isinstance(m, nn.BatchNorm1d) and len(self.shape(x)) != 2:
                raise _Misfit("BatchNorm1d over a sequence has no counterpart; cnnlab normalises feature maps "
                              "and vectors")
            args = {k: float(v) for k, v, d in (("momentum", m.momentum, 0.1), ("eps", m.eps, 1e-5)) if v != d}
            return {"batchnorm": args} if args else "batchnorm"
        if type(m) in ACTIVATION_MODULES:
            if isinstance(m, nn.GELU) and m.approximate != "none":
                raise _Misfit("GELU(approximate='tanh') has no counterpart; cnnlab's gelu is the exact one")
            return ACTIVATION_MODULES[type(m)]
        if isinstance(m, nn.LeakyReLU):
            return {"leaky_relu": float(m.negative_slope)}
        if isinstance(m, nn.ELU):
            return {"elu": float(m.alpha)}
        if isinstance(m, (nn.Softmax, nn.LogSoftmax)):
            return self.softmax(n, x, m.dim, isinstance(m, nn.LogSoftmax), output)
        if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
            self.need_map(n, x, "pooling")
            if isinstance(m, nn.MaxPool2d) and m.return_indices:
                raise _Misfit("MaxPool2d(return_indices=True) has no counterpart")
            if isinstance(m, nn.AvgPool2d) and m.divisor_override:
                raise _Misfit("AvgPool2d(divisor_override=...) has no counterpart")
            return self.pool("maxpool" if isinstance(m, nn.MaxPool2d) else "avgpool", m.kernel_size, m.stride,
                             m.padding, getattr(m, "dilation", 1), m.ceil_mode, getattr(m, "count_include_pad", True))
        if isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
            self.need_map(n, x, "pooling")
            kind = "global_avgpool" if isinstance(m, nn.AdaptiveAvgPool2d) else "global_maxpool"
            return self.global_pool(n, x, kind, m.output_size)
        if isinstance(m, nn.Flatten):
            return self.reshape(n, x)
        if isinstance(m, (nn.Dropout, nn.Dropout2d)):
            kind = "spatial_dropout" if isinstance(m, nn.Dropout2d) and x not in self.pooled else "dropout"
            return {kind: float(m.p)}
        if isinstance(m, nn.Identity):
            return None
        raise _Misfit(f"{type(m).__name__} has no counterpart in cnnlab's model language")

    def linear(self, x, units: int, bias: bool):
        if len(self.shape(x)) != 2:
            raise _Misfit(f"Linear on a {'x'.join(map(str, self.shape(x)[1:]))} tensor acts on its last axis; "
                          "cnnlab's dense takes a vector (flatten first) or, on a feature map, the channels")
        return {"dense": {"units": units}} if bias else {"dense": {"units": units, "bias": False}}

    def softmax(self, n, x, dim, log: bool, output):
        if dim not in (1, -1) or len(self.shape(x)) != 2:
            raise _Misfit(f"softmax over dim {dim} of a {len(self.shape(x))}-D tensor has no counterpart; cnnlab's "
                          "softmax acts on the class scores at the end")
        if not log:
            return "softmax"
        if n is not output:
            raise _Misfit("log_softmax has no counterpart before the end of the model")
        self.notes.append(f"{n.name}: the final log_softmax is left out: cnnlab's loss takes the scores and applies "
                          "log-softmax itself (CrossEntropyLoss is log_softmax + NLLLoss)")
        return None

    def function(self, n, x, output):
        fn = n.target
        if fn in ACTIVATION_FUNCTIONS:
            if fn is F.gelu and self.arg(n, 1, "approximate", "none") != "none":
                raise _Misfit("gelu(approximate='tanh') has no counterpart; cnnlab's gelu is the exact one")
            return ACTIVATION_FUNCTIONS[fn]
        if fn is F.leaky_relu:
            return {"leaky_relu": float(self.arg(n, 1, "negative_slope", 0.01))}
        if fn is F.elu:
            return {"elu": float(self.arg(n, 1, "alpha", 1.0))}
        if fn in (F.softmax, F.log_softmax, torch.softmax, torch.log_softmax):
            return self.softmax(n, x, self.arg(n, 1, "dim"), fn in (F.log_softmax, torch.log_softmax), output)
        if fn is F.max_pool2d:
            self.need_map(n, x, "pooling")
            if self.arg(n, 6, "return_indices", False):
                raise _Misfit("max_pool2d(return_indices=True) has no counterpart")
            return self.pool("maxpool", self.arg(n, 1, "kernel_size"), self.arg(n, 2, "stride"),
                             self.arg(n, 3, "padding", 0), self.arg(n, 4, "dilation", 1), self.arg(n, 5, "ceil_mode"))
        if fn is F.avg_pool2d:
            self.need_map(n, x, "pooling")
            if self.arg(n, 6, "divisor_override"):
                raise _Misfit("avg_pool2d(divisor_override=...) has no counterpart")
            return self.pool("avgpool", self.arg(n, 1, "kernel_size"), self.arg(n, 2, "stride"),
                             self.arg(n, 3, "padding", 0), 1, self.arg(n, 4, "ceil_mode"),
                             self.arg(n, 5, "count_include_pad", True))
        if fn in (F.adaptive_avg_pool2d, F.adaptive_max_pool2d):
            self.need_map(n, x, "pooling")
            kind = "global_avgpool" if fn is F.adaptive_avg_pool2d else "global_maxpool"
            return self.global_pool(n, x, kind, self.arg(n, 1, "output_size"))
        if fn is torch.flatten:
            return self.reshape(n, x)
        if fn in (F.dropout, F.dropout2d):
            kind = "spatial_dropout" if fn is F.dropout2d and x not in self.pooled else "dropout"
            return {kind: float(self.arg(n, 1, "p", 0.5))}
        if fn in (operator.mul, torch.mul):
            factor = next((a for a in n.args if not isinstance(a, fx.Node)), None)
            if isinstance(factor, (int, float)) and not isinstance(factor, bool):
                return {"scale": float(factor)}
        if fn in (F.linear,):
            raise _Misfit("F.linear with a weight tensor of the module's own has no counterpart; use nn.Linear")
        raise _Misfit(f"{_function_name(fn)} has no counterpart in cnnlab's model language")

    def method(self, n, x, output):
        name = n.target
        if name in ACTIVATION_METHODS:
            return ACTIVATION_METHODS[name]
        if name in ("view", "reshape", "flatten", "squeeze"):
            return self.reshape(n, x)
        if name == "contiguous":
            return None
        if name == "mean":
            dims = self.arg(n, 1, "dim")
            dims = tuple(sorted(d % 4 for d in dims)) if isinstance(dims, (tuple, list)) else dims
            if dims == (2, 3) and len(self.shape(x)) == 4 and not self.arg(n, 2, "keepdim", False):
                self.need_map(n, x, "pooling")
                return "global_avgpool"
        if name in ("softmax", "log_softmax"):
            return self.softmax(n, x, self.arg(n, 1, "dim"), name == "log_softmax", output)
        if name == "mul":
            factor = self.arg(n, 1, "other")
            if isinstance(factor, (int, float)) and not isinstance(factor, bool):
                return {"scale": float(factor)}
        raise _Misfit(f"the tensor method .{name}() has no counterpart in cnnlab's model language")

    def merge(self, n: fx.Node) -> tuple[str, list[fx.Node]] | None:
        """('add' | 'concat', the tensors joined in order), or None for an operation of one tensor."""
        fn = n.target if n.op == "call_function" else None
        if fn in (operator.add, operator.iadd, torch.add) or (n.op == "call_method" and n.target in ("add", "add_")):
            pair = [self.values.get(a) for a in n.args[:2]]
            if all(isinstance(v, torch.Tensor) for v in pair):
                if n.kwargs.get("alpha", 1) != 1:
                    raise _Misfit("add(..., alpha=...) has no counterpart; cnnlab adds the two tensors as they are")
                if self.shape(n.args[0]) != self.shape(n.args[1]):
                    raise _Misfit("adds tensors of different shapes (broadcasting); cnnlab's residual block adds "
                                  "two tensors of one shape")
                return "add", list(n.args[:2])
            raise _Misfit("adds a number to a tensor; cnnlab adds two tensors (a residual block's input and output)")
        if fn in (torch.cat, torch.concat, torch.concatenate):
            tensors = list(n.args[0]) if n.args else list(n.kwargs.get("tensors", []))
            dim = self.arg(n, 1, "dim", 0)
            rank = len(self.shape(tensors[0]))
            if dim % rank != 1:
                raise _Misfit(f"torch.cat along dim {dim} has no counterpart; cnnlab's concat block joins the "
                              "channels (dim=1)")
            if len(tensors) < 2:
                raise _Misfit("torch.cat of one tensor: write the tensor itself")
            return "concat", tensors
        return None


# ------------------------------------------------------------------ the graph

def convert(gm: fx.GraphModule, values: dict, label: str) -> tuple[list[Layer], list[str]]:
    conv = _Converter(gm, values, label)
    nodes: dict[int, Node] = {}
    ids: dict[fx.Node, int] = {}
    output_fx = next(n for n in gm.graph.nodes if n.op == "output")
    result = output_fx.args[0]
    if not isinstance(result, fx.Node) or not isinstance(values.get(result), torch.Tensor):
        raise UserError(f"{label}: forward returns {type(values.get(result, result)).__name__}, not one tensor; "
                        "cnnlab's models give one prediction")
    needed = {result}
    for n in reversed(list(gm.graph.nodes)):  # only what the output is made from, as torch itself runs it
        if n in needed:
            needed.update(n.all_input_nodes)
    for n in gm.graph.nodes:
        if n not in needed or not isinstance(values.get(n), torch.Tensor):
            continue  # x.size(0), x.shape[1]: values, read where they are used
        line, code = _origin(n)
        where = conv.where(n)
        ref = f"fx node `{n.name}`" + (f" (line {line})" if line else "")
        if n.op == "placeholder":
            nodes[len(nodes)] = Node(len(nodes), "input", [], Layer(None, None, ""), where, "the input")
        elif n.op == "get_attr":
            raise UserError(f"{where}: reads the module's tensor `{n.target}` directly; cnnlab builds layers, whose "
                            f"weights are their own ({MAPPED}); nothing was written")
        else:
            try:
                merged = conv.merge(n)
                if merged is not None:
                    op, inputs = merged
                    if any(i in conv.pooled for i in inputs):
                        conv.pooled.add(n)
                    layer = Layer(None, line, f"{conv.source(n)}: {code}" if code else conv.source(n))
                else:
                    inputs = conv.tensors(n)
                    if len(inputs) != 1:
                        raise _Misfit(f"an operation on {len(inputs)} tensors has no counterpart; cnnlab joins "
                                      "tensors only by adding two (x + f(x)) or concatenating channels (torch.cat)")
                    op = "layer"
                    entry = conv.layer(n, inputs[0], result)
                    layer = Layer(entry, line, f"{conv.source(n)}: {code}" if code else conv.source(n))
            except _Misfit as why:
                mapped = f"; cnnlab maps {MAPPED}" if "has no counterpart in cnnlab's" in str(why) else ""
                raise UserError(f"{where}: {why}{mapped}; nothing was written") from None
            nodes[len(nodes)] = Node(len(nodes), op, [ids[i] for i in inputs], layer, where, ref)
        ids[n] = len(nodes) - 1
    return to_layers(nodes, ids[result]), conv.notes


def _unused(model: nn.Module, gm: fx.GraphModule) -> list[tuple[str, int]]:
    """(name, parameters) of modules with weights that forward never calls."""
    called = {n.target for n in gm.graph.nodes if n.op == "call_module"}
    unused = []
    for name, m in model.named_modules():
        own = sum(p.numel() for p in m.parameters(recurse=False))
        if own and name not in called and not any(c.startswith(name + ".") for c in called) \
                and not any(name.startswith(c + ".") for c in called):
            unused.append((name, own))
    return unused


def import_pytorch(source: str, input_shape: tuple | None = None) -> Imported:
    """`file.py:Class`, `package.module:Class` or `file.py` -> the architecture in the model language, traced on
    `input_shape` (C, H, W), else on the size its first layer implies (3 channels: 32x32, 1: 28x28)."""
    model, label, notes = load(source)
    gm, values, shape = trace(model, label, input_shape)
    layers, more = convert(gm, values, label)
    notes += more
    theirs = sum(p.numel() for p in model.parameters())
    unused = _unused(model, gm)
    if unused:
        notes.append(f"not imported: {', '.join(f'self.{n} ({c:,} parameters)' for n, c in unused[:4])}, which "
                     "forward never uses")
    where = split_target(source)[0]
    imported = Imported(label.rpartition(":")[2], layers, notes, shape, "PyTorch", theirs,
                        where if where.endswith(".py") else None)
    from ..models import build_model  # the count check: what cnnlab builds holds what the module holds
    classes = int(values[next(n for n in gm.graph.nodes if n.op == "output").args[0]].shape[-1])
    built = build_model(imported.spec, shape, classes)
    ours = sum(p.numel() for p in built.parameters())
    used = theirs - sum(c for _, c in unused)
    if ours != used:
        raise UserError(f"{label}: the imported model holds {ours:,} parameters where {label.rpartition(':')[2]} "
                        f"holds {used:,}; this is a bug in cnnlab's import, please report it with the file")
    imported.weights_names = weights_names(model, built, shape)
    if imported.weights_names is None:
        notes.append(f"{label.rpartition(':')[2]}'s checkpoints cannot be loaded into the imported model: its "
                     "tensors do not pair with cnnlab's in the order they are used")
    stats = sum(b.numel() for name, b in built.named_buffers() if name.endswith(("running_mean", "running_var")))
    notes.append(f"PyTorch counts {theirs:,} parameters (sum of p.numel()): cnnlab's `Trainable params` line"
                 + (f"; its total adds the {stats:,} BatchNorm running means and variances (buffers in PyTorch, "
                    "counted by Keras)" if stats else ""))
    return imported


# ------------------------------------------------------------------ their weights in our model

def _tensors_in_use_order(model: nn.Module, shape: tuple) -> list[tuple[str, torch.Tensor]]:
    """The model's state tensors (parameters and buffers), module by module in the order forward first uses
    each module."""
    order: list[str] = []
    owners = {name: m for name, m in model.named_modules()
              if any(True for _ in m.parameters(recurse=False)) or any(True for _ in m.buffers(recurse=False))}
    hooks = [m.register_forward_pre_hook(lambda mod, args, name=name: order.append(name))
             for name, m in owners.items()]
    try:
        with torch.no_grad():
            model.eval()(torch.randn(2, *shape))
    finally:
        for h in hooks:
            h.remove()
    state = model.state_dict()
    out = []
    for name in dict.fromkeys(order):
        prefix = f"{name}." if name else ""
        local = [k for k, _ in owners[name].named_parameters(recurse=False)] + \
                [k for k, _ in owners[name].named_buffers(recurse=False)]
        out += [(prefix + k, state[prefix + k]) for k in local if prefix + k in state]
    return out


def weights_names(theirs: nn.Module, ours: nn.Module, shape: tuple) -> dict[str, str] | None:
    """Our tensor names -> theirs, paired in the order forward uses them, kept only where every shape matches
    and our model, given their tensors, computes what theirs computes (the same outputs to 1e-4)."""
    try:
        a, b = _tensors_in_use_order(ours, shape), _tensors_in_use_order(theirs, shape)
    except Exception:  # noqa: BLE001 — a module that cannot run twice in eval: no map, said in the notes
        return None
    if len(a) != len(b) or any(x.shape != y.shape for (_, x), (_, y) in zip(a, b)):
        return None
    names = {ours_name: their_name for (ours_name, _), (their_name, _) in zip(a, b)}
    state = theirs.state_dict()
    ours.load_state_dict({k: state[v] for k, v in names.items()}, strict=False)
    x = torch.randn(4, *shape)
    with torch.no_grad():
        same = torch.allclose(ours.eval()(x), theirs.eval()(x), atol=1e-4, rtol=1e-4)
    return names if same else None
