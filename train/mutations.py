"""Bug mutations for the repository generator: each finds candidate sites in a function's AST and
rewrites one of them. A mutation is kept only if the tests that passed before now fail (checked by
gen_repos.py by running them), so every planted bug is observable."""
import ast
import copy
import random

SWAP_BINOP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Add, ast.Div: ast.Mult,
              ast.FloorDiv: ast.Div, ast.Mod: ast.FloorDiv}
INVERT_CMP = {ast.Lt: ast.GtE, ast.LtE: ast.Gt, ast.Gt: ast.LtE, ast.GtE: ast.Lt, ast.Eq: ast.NotEq,
              ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In}
LOOSEN_CMP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt}


def _sites(fn, kind):
    """Yields (node, parent_field_setter) candidates for a mutation kind inside function `fn`."""
    out = []
    for node in ast.walk(fn):
        if kind == "operator" and isinstance(node, ast.BinOp) and type(node.op) in SWAP_BINOP:
            out.append(node)
        elif kind == "comparison" and isinstance(node, ast.Compare) and type(node.ops[0]) in INVERT_CMP:
            out.append(node)
        elif kind == "boundary" and isinstance(node, ast.Compare) and type(node.ops[0]) in LOOSEN_CMP:
            out.append(node)
        elif kind == "off_by_one" and isinstance(node, (ast.Call, ast.Slice, ast.Subscript)):
            out.append(node)
        elif kind == "constant" and isinstance(node, ast.Constant) and type(node.value) in (int, float) \
                and not isinstance(node.value, bool):
            out.append(node)
        elif kind == "swapped_args" and isinstance(node, ast.Call) and len(node.args) >= 2:
            out.append(node)
        elif kind == "wrong_variable" and isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            out.append(node)
        elif kind == "missing_return" and isinstance(node, ast.Return) and node.value is not None:
            out.append(node)
        elif kind == "inverted_condition" and isinstance(node, (ast.If, ast.IfExp)):
            out.append(node)
        elif kind == "logic" and isinstance(node, ast.BoolOp):
            out.append(node)
    return out


def _local_names(fn):
    names = {a.arg for a in fn.args.args}
    for node in ast.walk(fn):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return sorted(names)


def _apply(fn, kind, site, rng):
    """Mutates `site` in place; returns a short description or None if not applicable."""
    if kind == "operator":
        old = type(site.op)
        site.op = SWAP_BINOP[old]()
        return f"{old.__name__} -> {type(site.op).__name__}"
    if kind == "comparison":
        old = type(site.ops[0])
        site.ops[0] = INVERT_CMP[old]()
        return f"{old.__name__} -> {type(site.ops[0]).__name__}"
    if kind == "boundary":
        old = type(site.ops[0])
        site.ops[0] = LOOSEN_CMP[old]()
        return f"{old.__name__} -> {type(site.ops[0]).__name__}"
    if kind == "off_by_one":
        if isinstance(site, ast.Call) and isinstance(site.func, ast.Name) and site.func.id == "range" and site.args:
            i = len(site.args) - 1 if len(site.args) <= 2 else 1
            site.args[i] = ast.BinOp(site.args[i], ast.Sub() if rng.random() < 0.5 else ast.Add(), ast.Constant(1))
            return "range bound +-1"
        if isinstance(site, ast.Slice):
            if site.upper is not None:
                site.upper = ast.BinOp(site.upper, ast.Sub(), ast.Constant(1))
                return "slice upper -1"
            if site.lower is not None:
                site.lower = ast.BinOp(site.lower, ast.Add(), ast.Constant(1))
                return "slice lower +1"
        if isinstance(site, ast.Subscript) and isinstance(site.slice, (ast.Name, ast.Constant, ast.BinOp)) \
                and not isinstance(site.slice, ast.Slice) and isinstance(site.ctx, ast.Load):
            if isinstance(site.slice, ast.Constant) and not isinstance(site.slice.value, int):
                return None
            site.slice = ast.BinOp(site.slice, ast.Add(), ast.Constant(1))
            return "index +1"
        return None
    if kind == "constant":
        v = site.value
        choices = [v + 1, v - 1, v * 10] if v not in (0, 1) else [v + 1, 2]
        site.value = type(v)(rng.choice(choices))
        return f"constant {v} -> {site.value}"
    if kind == "swapped_args":
        site.args[0], site.args[1] = site.args[1], site.args[0]
        return "swapped arguments"
    if kind == "wrong_variable":
        others = [n for n in _local_names(fn) if n != site.id]
        if not others:
            return None
        old = site.id
        site.id = rng.choice(others)
        return f"variable {old} -> {site.id}"
    if kind == "missing_return":
        return "missing return"  # handled by the transformer below
    if kind == "inverted_condition":
        site.test = ast.UnaryOp(ast.Not(), site.test)
        return "inverted condition"
    if kind == "logic":
        site.op = ast.Or() if isinstance(site.op, ast.And) else ast.And()
        return "and/or swapped"
    return None


class _DropReturn(ast.NodeTransformer):
    def __init__(self, target):
        self.target = target

    def visit_Return(self, node):
        if node is self.target:
            return ast.Expr(node.value)
        return node


KINDS = ["operator", "comparison", "boundary", "off_by_one", "constant", "swapped_args", "wrong_variable",
         "missing_return", "inverted_condition", "logic"]


def mutate(module_src, fn_name, kind, rng):
    """Returns (new_source, description, line) or None when `kind` has no site in `fn_name`."""
    tree = ast.parse(module_src)
    fn = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == fn_name), None)
    if fn is None:
        return None
    sites = _sites(fn, kind)
    rng.shuffle(sites)
    for site in sites:
        trial = copy.deepcopy(tree)
        tfn = next(n for n in trial.body if isinstance(n, ast.FunctionDef) and n.name == fn_name)
        # Find the same site in the copy by walking order.
        idx = [id(n) for n in ast.walk(fn)].index(id(site))
        tsite = list(ast.walk(tfn))[idx]
        desc = _apply(tfn, kind, tsite, rng)
        if desc is None:
            continue
        if kind == "missing_return":
            _DropReturn(tsite).visit(tfn)
        ast.fix_missing_locations(trial)
        new_src = ast.unparse(trial) + "\n"
        if new_src != module_src:
            return new_src, desc, getattr(site, "lineno", 0)
    return None
