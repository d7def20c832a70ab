"""An interpreter of the Python that builds a Keras functional model, run on the code's syntax tree, never
executed.

The code is followed as Python would run it, as far as a model needs: assignments, function definitions and
calls (the `residual_block(x, filters)` helpers every ResNet script has), `for` loops over known ranges,
`if`s whose test is known (`x.shape[-1] != filters`: shapes are worked out layer by layer, keras_shapes.py),
list appends. A layer called on a tensor records a node in a graph (graph.py turns it into the model
language); `Model(inputs, outputs)` names the graph's ends. Nothing is imported and nothing outside the file
is called: a value only known when the script runs (`x_train.shape[1:]`, `num_classes` read from data) is
Unknown, and the data set supplies it. A loop or `if` that cannot be decided and makes layers is refused with
its line.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass

from ..errors import UserError
from .graph import Node
from .imported import Layer
from .keras_layers import (ACTIVATIONS, ALIASES, MERGE_LAYERS, SUPPORTED, Unknown, _call_name, _is_layer,
                           layer_args)
from .keras_shapes import out_shape

MAX_STEPS = 200_000      # statements and expressions evaluated; a 110-layer ResNet script takes about 20,000
MAX_CALL_DEPTH = 30      # helper functions calling helper functions (real scripts: 2 or 3)
MAX_SEQUENCE = 10_000    # the longest list or range built while reading
WEIGHTED = ("Conv2D", "Dense", "BatchNormalization")  # a layer object applied twice would share these weights


# ------------------------------------------------------------------ the values the reader handles

@dataclass(eq=False)
class Tensor:
    node: int
    shape: tuple             # Keras's order without the batch axis, (H, W, C) or (F,); None where unknown


@dataclass(eq=False)
class LayerObject:
    """A Keras layer made (`Conv2D(32, 3)`) and not yet applied to a tensor."""
    kind: str
    kw: dict
    line: int
    code: str
    applied: int = 0


@dataclass(eq=False)
class SequentialObject:
    layers: list


@dataclass(eq=False)
class Function:
    node: ast.FunctionDef
    scope: "Scope"
    defaults: list
    kw_defaults: dict


@dataclass(eq=False)
class ModelObject:
    inputs: object
    outputs: object
    name: object
    line: int
    code: str


class Scope:
    def __init__(self, parent: "Scope | None" = None):
        self.vars: dict[str, object] = {}
        self.parent = parent

    def get(self, name: str, default=None):
        scope = self
        while scope is not None:
            if name in scope.vars:
                return scope.vars[name]
            scope = scope.parent
        return default


class _Return(Exception):
    def __init__(self, value):
        self.value = value


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


def _plain(value) -> bool:
    """A value Python can compute with here: no Unknown, tensor or layer anywhere inside."""
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(_plain(k) and _plain(v) for k, v in value.items())
    return isinstance(value, (int, float, str, bool, type(None), range))


def _numbers(*values) -> bool:
    return all(isinstance(v, (int, float)) for v in values)


def _bounded_range(*args):
    if not all(isinstance(a, int) for a in args) or len(range(*args)) > MAX_SEQUENCE:
        return Unknown("range(...)")
    return range(*args)


BUILTINS = {
    "range": _bounded_range,
    "len": lambda v: len(v) if isinstance(v, (list, tuple, str, dict, range)) else Unknown("len(...)"),
    "int": lambda v, *r: int(v) if _numbers(v) or isinstance(v, str) else Unknown("int(...)"),
    "float": lambda v: float(v) if _numbers(v) or isinstance(v, str) else Unknown("float(...)"),
    "abs": lambda v: abs(v) if _numbers(v) else Unknown("abs(...)"),
    "round": lambda v, *n: round(v, *n) if _numbers(v, *n) else Unknown("round(...)"),
    "min": lambda *v: min(*v) if _plain(v) else Unknown("min(...)"),
    "max": lambda *v: max(*v) if _plain(v) else Unknown("max(...)"),
    "sum": lambda v, *s: sum(v, *s) if _plain(v) else Unknown("sum(...)"),
    "list": lambda v=(): list(v) if isinstance(v, (list, tuple, range, dict)) else Unknown("list(...)"),
    "tuple": lambda v=(): tuple(v) if isinstance(v, (list, tuple, range, dict)) else Unknown("tuple(...)"),
    "enumerate": lambda v, start=0: (list(enumerate(v, start)) if isinstance(v, (list, tuple, range))
                                     else Unknown("enumerate(...)")),
    "zip": lambda *v: (list(zip(*v)) if all(isinstance(x, (list, tuple, range)) for x in v)
                       else Unknown("zip(...)")),
    "reversed": lambda v: list(reversed(v)) if isinstance(v, (list, tuple, range)) else Unknown("reversed(...)"),
    "bool": lambda v=False: bool(v) if _plain(v) else Unknown("bool(...)"),
    "print": lambda *v, **k: None,
}
OPERATORS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
             ast.Div: lambda a, b: a / b, ast.FloorDiv: lambda a, b: a // b, ast.Mod: lambda a, b: a % b,
             ast.Pow: lambda a, b: a ** b}
COMPARISONS = {ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b, ast.Lt: lambda a, b: a < b,
               ast.LtE: lambda a, b: a <= b, ast.Gt: lambda a, b: a > b, ast.GtE: lambda a, b: a >= b,
               ast.Is: lambda a, b: a is b, ast.IsNot: lambda a, b: a is not b,
               ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b}


# ------------------------------------------------------------------ the reader

class Reader:
    """Follows a script statement by statement, keeping its variables, and records every layer applied to a
    tensor as a node of a graph; `read` returns the Model(...) that the script made last."""

    def __init__(self, text: str, source: str):
        self.text, self.source = text, source
        self.nodes: dict[int, Node] = {}
        self.pending: dict[int, tuple] = {}  # node id -> (kind, kw, line, code) or ("", message) for a misfit
        self.models: list[ModelObject] = []
        self.inputs: list[tuple[Tensor, object]] = []
        self.steps, self.depth = 0, 0
        self.stmt: ast.stmt | None = None
        self.via: list[tuple[str, int]] = []  # (function, line it was called from)
        self.called: set[str] = set()
        self.globals = Scope()
        self.globals.vars["__name__"] = "__main__"

    # -- where things are

    def code(self, node: ast.AST) -> str:
        return " ".join((ast.get_source_segment(self.text, node) or type(node).__name__).split())

    def here(self) -> tuple[int, str]:
        stmt = self.stmt
        return (stmt.lineno, self.code(stmt)[:80]) if stmt is not None else (0, "")

    def where(self) -> str:
        line, code = self.here()
        called = f" (in {self.via[-1][0]}, called from line {self.via[-1][1]})" if self.via else ""
        return f"{self.source} line {line}: {code}{called}"

    def tick(self) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise UserError(f"{self.where()}: reading the script takes more than {MAX_STEPS:,} steps; cnnlab reads "
                            "the code that builds the model, not loops that run for long")

    # -- statements

    def run(self, body: list, scope: Scope) -> None:
        for stmt in body:
            self.exec(stmt, scope)

    def exec(self, stmt: ast.stmt, scope: Scope) -> None:
        self.tick()
        self.stmt = stmt
        if isinstance(stmt, ast.Assign):
            value = self.eval(stmt.value, scope)
            for target in stmt.targets:
                self.assign(target, value, scope)
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            self.assign(stmt.target, self.eval(stmt.value, scope), scope)
        elif isinstance(stmt, ast.AugAssign):
            current = self.eval(stmt.target, scope) if isinstance(stmt.target, ast.Name) else Unknown("")
            self.assign(stmt.target, self.binop(stmt.op, current, self.eval(stmt.value, scope)), scope)
        elif isinstance(stmt, ast.Expr):
            self.eval(stmt.value, scope)
        elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = stmt.args
            scope.vars[stmt.name] = Function(stmt, scope, [self.eval(d, scope) for d in args.defaults],
                                             {a.arg: self.eval(d, scope) for a, d in zip(args.kwonlyargs,
                                                                                         args.kw_defaults) if d})
        elif isinstance(stmt, ast.Return):
            raise _Return(self.eval(stmt.value, scope) if stmt.value is not None else None)
        elif isinstance(stmt, ast.If):
            decided = self.truth(self.eval(stmt.test, scope))
            if decided is None:
                self.undecided(stmt, scope, f"if {self.code(stmt.test)}")
            else:
                self.run(stmt.body if decided else stmt.orelse, scope)
        elif isinstance(stmt, ast.For):
            items = self.eval(stmt.iter, scope)
            if not isinstance(items, (list, tuple, range, dict, str)):
                self.undecided(stmt, scope, f"for {self.code(stmt.target)} in {self.code(stmt.iter)}")
                return
            for item in items:
                self.assign(stmt.target, item, scope)
                try:
                    self.run(stmt.body, scope)
                except _Break:
                    break
                except _Continue:
                    continue
            else:
                self.run(stmt.orelse, scope)
        elif isinstance(stmt, ast.While):
            if self.truth(self.eval(stmt.test, scope)) is not False:
                self.undecided(stmt, scope, f"while {self.code(stmt.test)}")
        elif isinstance(stmt, (ast.With, ast.AsyncWith)):
            self.run(stmt.body, scope)
        elif isinstance(stmt, ast.Try):
            self.run(stmt.body + stmt.orelse + stmt.finalbody, scope)
        elif isinstance(stmt, ast.Break):
            raise _Break()
        elif isinstance(stmt, ast.Continue):
            raise _Continue()
        # imports, classes (a subclassed keras.Model is not read), raise, assert, del, pass: nothing to do

    def undecided(self, stmt: ast.stmt, scope: Scope, header: str) -> None:
        """A loop or `if` the reader cannot decide: harmless unless it makes layers."""
        for node in ast.walk(stmt):
            if isinstance(node, ast.Call):
                name = _call_name(node)
                if (_is_layer(name) or name in ("Input", "Model", "add", "concatenate")
                        or isinstance(scope.get(name), Function)):
                    raise UserError(f"{self.source} line {stmt.lineno}: `{header[:70]}` cannot be decided without "
                                    "running the script, and the layers made inside depend on it; write it with "
                                    "numbers (`for i in range(3)`, `if stride != 1`)")

    def assign(self, target: ast.AST, value, scope: Scope) -> None:
        if isinstance(target, ast.Name):
            scope.vars[target.id] = value
        elif isinstance(target, (ast.Tuple, ast.List)):
            values = list(value) if isinstance(value, (list, tuple)) and len(value) == len(target.elts) else None
            for i, element in enumerate(target.elts):
                self.assign(element, values[i] if values is not None else Unknown(self.code(element)), scope)
        elif isinstance(target, ast.Subscript):
            container, key = self.eval(target.value, scope), self.eval(target.slice, scope)
            if isinstance(container, dict) and _plain(key) or isinstance(container, list) and isinstance(key, int):
                try:
                    container[key] = value
                except IndexError:
                    pass

    # -- expressions

    def truth(self, value) -> bool | None:
        if isinstance(value, Unknown) or not _plain(value) and not isinstance(value, (Tensor, LayerObject)):
            return None
        return bool(value)

    def eval(self, node: ast.AST, scope: Scope):
        self.tick()
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            value = scope.get(node.id, scope)
            return Unknown(node.id) if value is scope else value
        if isinstance(node, ast.Attribute):
            base = self.eval(node.value, scope)
            if isinstance(base, Tensor) and node.attr == "shape":
                return (None,) + base.shape
            return Unknown(self.code(node))
        if isinstance(node, (ast.Tuple, ast.List)):
            items = []
            for element in node.elts:
                if isinstance(element, ast.Starred):
                    inner = self.eval(element.value, scope)
                    if not isinstance(inner, (list, tuple, range)):
                        return Unknown(self.code(node))
                    items += list(inner)
                else:
                    items.append(self.eval(element, scope))
            return tuple(items) if isinstance(node, ast.Tuple) else items
        if isinstance(node, ast.Dict):
            keys = [self.eval(k, scope) if k is not None else None for k in node.keys]
            if not all(_plain(k) for k in keys):
                return Unknown(self.code(node))
            return dict(zip(keys, (self.eval(v, scope) for v in node.values)))
        if isinstance(node, ast.BinOp):
            return self.binop(node.op, self.eval(node.left, scope), self.eval(node.right, scope))
        if isinstance(node, ast.UnaryOp):
            value = self.eval(node.operand, scope)
            if isinstance(node.op, ast.Not):
                decided = self.truth(value)
                return Unknown(self.code(node)) if decided is None else not decided
            if _numbers(value):
                return -value if isinstance(node.op, ast.USub) else value if isinstance(node.op, ast.UAdd) else ~value
            return Unknown(self.code(node))
        if isinstance(node, ast.BoolOp):
            result = None
            for operand in node.values:
                result = self.eval(operand, scope)
                decided = self.truth(result)
                if decided is None:
                    return Unknown(self.code(node))
                if decided == isinstance(node.op, ast.Or):
                    return result
            return result
        if isinstance(node, ast.Compare):
            left = self.eval(node.left, scope)
            for op, right_node in zip(node.ops, node.comparators):
                right = self.eval(right_node, scope)
                identity = isinstance(op, (ast.Is, ast.IsNot)) and not isinstance(left, Unknown) \
                    and not isinstance(right, Unknown)  # `shortcut is None` holds for a tensor too
                if not (identity or _plain(left) and _plain(right)):
                    return Unknown(self.code(node))
                try:
                    if not COMPARISONS[type(op)](left, right):
                        return False
                except TypeError:
                    return Unknown(self.code(node))
                left = right
            return True
        if isinstance(node, ast.IfExp):
            decided = self.truth(self.eval(node.test, scope))
            if decided is None:
                return Unknown(self.code(node))
            return self.eval(node.body if decided else node.orelse, scope)
        if isinstance(node, ast.Subscript):
            base, key = self.eval(node.value, scope), self.eval(node.slice, scope)
            if isinstance(base, (list, tuple, str, range, dict)) and (_plain(key) or isinstance(key, slice)):
                try:
                    return base[key]
                except (IndexError, KeyError, TypeError):
                    pass
            return Unknown(self.code(node))
        if isinstance(node, ast.Slice):
            parts = [self.eval(p, scope) if p is not None else None for p in (node.lower, node.upper, node.step)]
            return slice(*parts) if all(p is None or isinstance(p, int) for p in parts) else Unknown(self.code(node))
        if isinstance(node, ast.Call):
            return self.call(node, scope)
        if isinstance(node, (ast.ListComp, ast.GeneratorExp)):
            return self.comprehension(node, scope)
        if isinstance(node, ast.NamedExpr):
            value = self.eval(node.value, scope)
            self.assign(node.target, value, scope)
            return value
        return Unknown(self.code(node))  # f-strings, lambdas, sets, ...

    def comprehension(self, node, scope: Scope):
        results = []

        def loop(generators, inner: Scope):
            if not generators:
                results.append(self.eval(node.elt, inner))
                if len(results) > MAX_SEQUENCE:
                    raise _Break()
                return True
            first, rest = generators[0], generators[1:]
            items = self.eval(first.iter, inner)
            if not isinstance(items, (list, tuple, range, dict, str)):
                return False
            for item in items:
                self.assign(first.target, item, inner)
                keep = [self.truth(self.eval(test, inner)) for test in first.ifs]
                if None in keep:
                    return False
                if all(keep) and not loop(rest, inner):
                    return False
            return True
        try:
            done = loop(node.generators, Scope(scope))
        except _Break:
            done = False
        return results if done else Unknown(self.code(node))

    def binop(self, op: ast.operator, left, right):
        if isinstance(left, Tensor) or isinstance(right, Tensor):
            if isinstance(op, ast.Add) and isinstance(left, Tensor) and isinstance(right, Tensor):
                return self.merge("add", [left, right], None)
            factor = right if isinstance(left, Tensor) else left
            if isinstance(op, ast.Mult) and _numbers(factor) and not isinstance(factor, bool):
                tensor = left if isinstance(left, Tensor) else right
                return self.layer_node("", {"__scale__": factor}, tensor)
            tensors = [t for t in (left, right) if isinstance(t, Tensor)]
            return self.misfit(tensors, f"`{type(op).__name__}` of tensors has no counterpart in cnnlab's model "
                                        "language (it adds two branches, as Add, and scales by a number)")
        if not (_plain(left) and _plain(right)):
            return Unknown("")
        if isinstance(op, ast.Pow) and _numbers(right) and abs(right) > 64:
            return Unknown("")
        if isinstance(op, ast.Mult) and (isinstance(left, (list, tuple, str)) or isinstance(right, (list, tuple, str))):
            count = right if isinstance(left, (list, tuple, str)) else left
            if not isinstance(count, int) or count * len(left if isinstance(left, (list, tuple, str)) else right) \
                    > MAX_SEQUENCE:
                return Unknown("")
        try:
            return OPERATORS[type(op)](left, right)
        except (KeyError, TypeError, ValueError, ZeroDivisionError, OverflowError):
            return Unknown("")

    # -- calls

    def call(self, node: ast.Call, scope: Scope):
        func, name = node.func, _call_name(node)
        args: list = []
        for a in node.args:
            if isinstance(a, ast.Starred):
                inner = self.eval(a.value, scope)
                args += list(inner) if isinstance(inner, (list, tuple)) else [Unknown(self.code(a))]
            else:
                args.append(self.eval(a, scope))
        kw: dict = {}
        for k in node.keywords:
            value = self.eval(k.value, scope)
            if k.arg is not None:
                kw[k.arg] = value
            elif isinstance(value, dict):
                kw.update({str(key): v for key, v in value.items()})
        callee = None
        if isinstance(func, ast.Name):
            callee = scope.get(func.id)
        elif isinstance(func, ast.Attribute):
            base = self.eval(func.value, scope)
            if isinstance(base, SequentialObject) and func.attr == "add" and args:
                base.layers.append(args[0])
                return None
            if isinstance(base, list) and func.attr in ("append", "extend") and args:
                if func.attr == "append":
                    base.append(args[0])
                elif isinstance(args[0], (list, tuple)):
                    base.extend(args[0])
                return None
            if isinstance(base, (ModelObject, SequentialObject, Tensor, LayerObject)):
                return Unknown(self.code(node))  # model.summary(), model.compile(...), x.numpy(), ...
        else:
            callee = self.eval(func, scope)
        if isinstance(callee, Function):
            return self.invoke(callee, args, kw, node)
        if isinstance(callee, (LayerObject, SequentialObject)):
            return self.apply(callee, args, kw)
        if isinstance(callee, ModelObject):
            raise UserError(f"{self.where()}: a Model applied as a layer (a model inside a model) is not read; "
                            "write its layers in the outer model")
        if isinstance(func, ast.Name) and callee is None and name in BUILTINS:
            try:
                return BUILTINS[name](*args, **kw)
            except (TypeError, ValueError, OverflowError):
                return Unknown(self.code(node))
        return self.library_call(name, args, kw, node)

    def library_call(self, name: str, args: list, kw: dict, node: ast.Call):
        """A call of something the file imports: Keras's Input, Model, Sequential and layers, or functions."""
        if name == "Input":
            return self.input(args, kw)
        if name in ("Model", "Functional"):
            line, code = self.here()
            model = ModelObject(kw.get("inputs", args[0] if args else None),
                                kw.get("outputs", args[1] if len(args) > 1 else None), kw.get("name"), line, code)
            self.models.append(model)
            return model
        if name == "Sequential":
            listed = args[0] if args else kw.get("layers", [])
            return SequentialObject([layer for layer in (listed if isinstance(listed, (list, tuple)) else [])
                                     if isinstance(layer, LayerObject)])
        if name.lower().replace("_", "") == "maxnorm":  # kernel_constraint=maxnorm(3)
            return ("max_norm", args[0] if args else kw.get("max_value", 2.0))
        if name == "int_shape" and args and isinstance(args[0], Tensor):
            return (None,) + args[0].shape
        tensors = [a for a in (args[0] if args and isinstance(args[0], (list, tuple)) else args)
                   if isinstance(a, Tensor)]
        if tensors:  # a function on tensors: keras.layers.add([...]), tf.concat(...), tf.nn.relu(x)
            if name in ("add", "Add") and len(tensors) >= 2:
                return self.merge("add", tensors, None)
            if name in ("concatenate", "concat"):
                return self.merge("concat", tensors, kw.get("axis", args[1] if len(args) > 1 else -1))
            if name.lower() in ACTIVATIONS and ACTIVATIONS[name.lower()] and len(tensors) == 1:
                return self.layer_node("Activation", {"activation": name.lower()}, tensors[0])
            return self.misfit(tensors, f"{self.code(node.func)}(...) is not a Keras layer; cnnlab reads layers "
                                        f"({', '.join(SUPPORTED)}, Add, Concatenate) called on tensors")
        if _is_layer(name) or name[:1].isupper():  # Conv2D(...), and anything else a layer could be
            line, code = self.here()
            return LayerObject(name, layer_args(name, args, kw), line, code)
        return Unknown(self.code(node))

    def invoke(self, function: Function, args: list, kw: dict, node: ast.Call):
        definition = function.node
        if self.depth >= MAX_CALL_DEPTH:
            raise UserError(f"{self.where()}: functions call each other more than {MAX_CALL_DEPTH} deep")
        self.called.add(definition.name)
        local = Scope(function.scope)
        params = definition.args.posonlyargs + definition.args.args
        defaults = dict(zip([p.arg for p in params[len(params) - len(function.defaults):]], function.defaults))
        defaults.update(function.kw_defaults)
        for param, value in zip(params, args):
            local.vars[param.arg] = value
        if definition.args.vararg is not None:
            local.vars[definition.args.vararg.arg] = tuple(args[len(params):])
        extra = {}
        for key, value in kw.items():
            if any(p.arg == key for p in params + definition.args.kwonlyargs):
                local.vars[key] = value
            else:
                extra[key] = value
        if definition.args.kwarg is not None:
            local.vars[definition.args.kwarg.arg] = extra
        for param in params + definition.args.kwonlyargs:
            if param.arg not in local.vars:
                local.vars[param.arg] = defaults.get(param.arg, Unknown(param.arg))
        statement = self.stmt
        self.depth += 1
        self.via.append((definition.name, statement.lineno if statement is not None else node.lineno))
        try:
            self.run(definition.body, local)
            result = None
        except _Return as done:
            result = done.value
        finally:
            self.depth -= 1
            self.via.pop()
            self.stmt = statement
        return result

    # -- the graph

    def add_node(self, op: str, inputs: list[Tensor]) -> int:
        line, code = self.here()
        node = Node(len(self.nodes), op, [t.node for t in inputs], Layer(None, line, code), self.where(),
                    f"line {line} (`{code[:60]}`)")
        self.nodes[node.id] = node
        return node.id

    def input(self, args: list, kw: dict) -> Tensor:
        shape = kw.get("shape", args[0] if args else None)
        if shape is None and isinstance(kw.get("batch_shape"), (list, tuple)):
            shape = tuple(kw["batch_shape"])[1:]
        known = tuple(s if isinstance(s, int) else None for s in shape) if isinstance(shape, (list, tuple)) else None
        tensor = Tensor(self.add_node("input", []), known or (None, None, None))
        self.inputs.append((tensor, shape))
        return tensor

    def misfit(self, tensors: list[Tensor], why: str) -> Tensor:
        """A node that cannot be converted: the error is raised if the model uses it, naming its line."""
        tensor = Tensor(self.add_node("layer", tensors), tuple(None for _ in tensors[0].shape))
        self.pending[tensor.node] = ("", why)
        return tensor

    def layer_node(self, kind: str, kw: dict, tensor: Tensor, made: tuple | None = None) -> Tensor:
        node = self.add_node("layer", [tensor])
        line, code = self.here()
        if made and made[0] != line:
            code += f" (the layer made on line {made[0]}: {made[1][:50]})"
        self.pending[node] = (kind, kw, line, code)
        return Tensor(node, out_shape(kind, kw, tensor.shape) if kind else tensor.shape)

    def merge(self, op: str, tensors: list[Tensor], axis) -> Tensor:
        if op == "concat":
            rank = len(tensors[0].shape)
            valid = (-1, rank) if rank == 3 else (-1, 1)
            if axis not in valid:
                raise UserError(f"{self.where()}: concatenates along axis {axis}; cnnlab's concat block joins the "
                                f"channels (axis {' or '.join(map(str, valid))} here)")
            channels = [t.shape[-1] for t in tensors]
            last = sum(channels) if all(isinstance(c, int) for c in channels) else None
            shape = tensors[0].shape[:-1] + (last,)
        else:
            shape = tensors[0].shape
        return Tensor(self.add_node(op, tensors), shape)

    def apply(self, layer, args: list, kw: dict):
        x = args[0] if args else kw.get("inputs")
        if isinstance(layer, SequentialObject):
            for inner in layer.layers:
                x = self.apply(inner, [x], {})
            return x
        kind = ALIASES.get(layer.kind, layer.kind)
        if kind in MERGE_LAYERS:
            tensors = list(x) if isinstance(x, (list, tuple)) else []
            if len(tensors) < 2 or not all(isinstance(t, Tensor) for t in tensors):
                return Unknown(layer.code)
            axis = layer.kw.get("axis", -1) if kind == "Concatenate" else None
            return self.merge(MERGE_LAYERS[kind], tensors, axis)
        if not isinstance(x, Tensor):
            return Unknown(layer.code)
        layer.applied += 1
        if layer.applied > 1 and kind in WEIGHTED:
            raise UserError(f"{self.where()}: the {layer.kind} made on line {layer.line} is applied a second time, "
                            "so the two uses share its weights; cnnlab's model language gives every layer its "
                            "own weights: make a second layer")
        return self.layer_node(layer.kind, layer.kw, x, (layer.line, layer.code))

    # -- the model

    def read(self, tree: ast.Module) -> tuple[ModelObject | None, list[str]]:
        notes = []
        self.run(tree.body, self.globals)
        if not self.models:  # a function that builds the model and is never called here: call it
            for stmt in tree.body:
                function = self.globals.get(getattr(stmt, "name", ""))
                if (isinstance(function, Function) and function.node.name not in self.called
                        and any(isinstance(n, ast.Call) and _call_name(n) in ("Model", "Functional")
                                for n in ast.walk(stmt))):
                    self.stmt = stmt
                    self.invoke(function, [], {}, stmt)
                    if self.models:
                        notes.append(f"line {stmt.lineno}: the model is built by calling {stmt.name}() with its "
                                     "defaults; arguments without one come from the data set")
                        break
        made = [m for m in self.models if any(isinstance(t, Tensor) for t in _flat(m.inputs))]
        return (made[-1] if made else self.models[-1] if self.models else None), notes


def _flat(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]
