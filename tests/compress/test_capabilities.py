"""Operators declare capabilities; algorithms accept them by capability, never by name;
density changes go through the checked setter; no file outside compress/ tests an
operator's name."""

import ast
import pathlib

import numpy as np
import pytest

import hpctrain
from hpctrain.algorithms import ALGORITHMS
from hpctrain.compress import COMPRESSORS, OPERATOR_MODULES, OPERATORS, get_compressor, kernel_families
from hpctrain.compress.base import Compressor, SparseCompressor
from hpctrain.compress.cuda_build import kernel_dir
from hpctrain.errors import ConfigError

PACKAGE = pathlib.Path(hpctrain.__file__).parent


def test_one_name_per_operator():
    """Module, registry name, wire name and kernel file agree (``-`` of a name is ``_`` in files)."""
    assert [cls.name.replace("-", "_") for cls in OPERATORS] == list(OPERATOR_MODULES)
    for cls in OPERATORS:
        stem = cls.name.replace("-", "_")
        assert COMPRESSORS[cls.name] is cls
        assert (PACKAGE / "compress" / f"{stem}.py").is_file(), cls.name
        assert cls.__module__ == f"hpctrain.compress.{stem}", cls.name
        assert cls.name in cls.wire
        # a kernel file of its own carries its name and is declared; any other family it
        # runs is borrowed from another operator (threshold runs topk's)
        assert (kernel_dir() / f"{stem}.cu").is_file() == (stem in cls.kernels), cls.name
        for fam in cls.kernels:
            assert (kernel_dir() / f"{fam}.cu").is_file(), fam
            assert fam == stem or fam in OPERATOR_MODULES, (cls.name, fam)
    assert {p.stem for p in kernel_dir().glob("*.cu")} == set(kernel_families())


def test_each_operator_has_both_paths_in_its_module():
    for cls in OPERATORS:
        assert cls.Host is not None and cls.Device is not None, cls.name
        assert cls.Host.__module__ == cls.__module__ and cls.Device.__module__ == cls.__module__


def test_capabilities_declared():
    caps = {cls.name: set(cls.capabilities()) for cls in OPERATORS}
    assert caps["none"] == {"unbiased", "lossless"}
    assert caps["topk"] == {"sparse", "density"} == caps["approx-topk"]
    assert caps["threshold"] == {"sparse"}
    assert caps["randk"] == {"sparse", "density", "shared_indices", "unbiased_scaled"}
    assert caps["minmax"] == caps["qsgd"] == {"unbiased"}
    assert caps["sign"] == caps["fp16"] == set()
    with pytest.raises(ValueError):
        Compressor.has("fast")


def _fake(**caps):
    base = SparseCompressor if caps.get("sparse") else Compressor
    attrs = {"name": "fake", **{k: v for k, v in caps.items() if k != "density"}}
    if caps.get("density"):
        attrs["density"] = property(lambda self: 0.1)
    return type("Fake", (base,), attrs)


def test_algorithms_accept_by_capability():
    mdsgd, csgd, ecsgd, dmsgd = (ALGORITHMS[n] for n in ("mdsgd", "csgd", "ecsgd", "dmsgd"))
    assert mdsgd.refusal(_fake(sparse=True, density=True)) is None
    assert "density" in mdsgd.refusal(_fake(sparse=True))
    assert "sparse" in mdsgd.refusal(_fake(density=True))
    assert csgd.refusal(_fake(unbiased=True)) is None and csgd.refusal(_fake(unbiased_scaled=True)) is None
    assert "unbiased" in csgd.refusal(_fake())
    assert "lossless" in csgd.refusal(_fake(unbiased=True, lossless=True))
    assert ecsgd.refusal(_fake()) is None and ecsgd.refusal(_fake(stateful=True, layerwise=True)) is None
    assert "stateful" in ALGORITHMS["doublesqueeze"].refusal(_fake(stateful=True))
    for cls in ALGORITHMS.values():
        if cls.compresses:
            assert "communicates" in cls.refusal(_fake(sparse=True, density=True, unbiased=True, communicates=True))
    assert dmsgd.refusal(_fake()) == "algo dmsgd takes no compressor"


def test_registry_lists_follow_capabilities():
    """Each algorithm's list of operators is what its capability rule admits from the
    registry: the shipped operators it needs are there, and an operator registered later
    joins the lists its capabilities qualify it for without editing this test."""
    def caps(name):
        return set(COMPRESSORS[name].capabilities())

    mdsgd, csgd = ALGORITHMS["mdsgd"].compressors, ALGORITHMS["csgd"].compressors
    assert {"approx-topk", "randk", "topk"} <= set(mdsgd)
    assert set(mdsgd) == {n for n in COMPRESSORS if {"sparse", "density"} <= caps(n)}
    assert {"minmax", "qsgd", "randk"} <= set(csgd)
    assert set(csgd) == {n for n in COMPRESSORS
                         if caps(n) & {"unbiased", "unbiased_scaled"} and "lossless" not in caps(n)}
    assert set(ALGORITHMS["ecsgd"].compressors) == set(COMPRESSORS)
    assert ALGORITHMS["dsgd"].compressors == ()


@pytest.mark.parametrize("name", ["topk", "approx-topk", "randk"])
def test_density_setter_is_checked(name):
    comp = get_compressor(name, density=0.1)
    comp.density = 0.25
    assert comp.density == 0.25
    for bad in (0.0, 1.5, -1, "x", None):
        with pytest.raises(ConfigError):
            comp.density = bad
    assert comp.density == 0.25
    with pytest.raises(ConfigError):
        get_compressor(name, density=2.0)


def test_randk_unbias_scale():
    comp = get_compressor("randk", density=0.1)
    assert comp.unbias_scale(1000) == 10.0
    assert get_compressor("qsgd").unbias_scale(1000) == 1.0
    assert get_compressor("topk").unbias_scale(1000) is None


def test_compressor_state_joins_the_algorithm_state():
    """A stateful operator's arrays are ``compressor.NAME`` entries of the algorithm's
    state, with the operator's resize policy; load_state_dict restores them."""
    from hpctrain.algorithms.base import AlgoContext
    from hpctrain.config import load_config

    class Memo(type(get_compressor("topk"))):
        stateful = True
        state_names = ("count",)
        state_policies = {"count": "sum"}

        def setup(self, params, layers=()):
            self.layers = layers
            self.count = np.zeros(len(layers) + 1)

    class Comm:
        rank, size = 0, 1

    cfg = load_config(None, {"algo": "mdsgd", "compressor": "topk", "quiet": True})
    params = np.zeros(20)
    algo = ALGORITHMS["mdsgd"](AlgoContext(cfg, Comm(), None, 20, layers=[("a", (4, 5), 0)]), params)
    algo.comp = Memo(0.1)
    algo.comp.setup(params, algo.ctx.layers)
    state = algo.state_dict()
    assert set(state) == {"velocity", "memory", "compressor.count"} and state["compressor.count"].shape == (2,)
    assert algo.resize_policy("compressor.count") == "sum" and algo.resize_policy("memory") == "sum"
    algo.load_state_dict({**state, "compressor.count": np.array([3.0, 4.0])})
    assert algo.comp.count.tolist() == [3.0, 4.0]


def _operator_names():
    return set(COMPRESSORS) | {"quantize", "randomk"}


def _name_tests(tree, names):
    """Comparisons (==, !=, in, not in) of anything against an operator's name literal."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare):
            continue
        sides = [node.left, *node.comparators]
        for side in sides:
            elts = side.elts if isinstance(side, (ast.Tuple, ast.List, ast.Set)) else [side]
            for e in elts:
                if isinstance(e, ast.Constant) and e.value in names:
                    # "none" is also a --normalize choice: it names the operator only beside a compressor
                    if e.value == "none" and not any("comp" in ast.unparse(o) for o in sides if o is not side):
                        continue
                    found.append((node.lineno, e.value))
    return found


def test_no_file_outside_compress_tests_an_operator_name():
    names = _operator_names()
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if (PACKAGE / "compress") in path.parents:
            continue
        for line, name in _name_tests(ast.parse(path.read_text()), names):
            offenders.append(f"{path.relative_to(PACKAGE)}:{line} tests {name!r}")
    assert not offenders, offenders


def test_the_name_test_finds_one():
    src = "if comp.name == 'randk':\n    pass\nok = c.sparse\nx = kind in ('topk', 'other')\n"
    src += "if how == 'none':\n    pass\nif cfg.compressor != 'none':\n    pass\n"
    assert _name_tests(ast.parse(src), _operator_names()) == [(1, "randk"), (4, "topk"), (7, "none")]


def test_cli_refuses_former_name_and_unfit_operator_in_one_line(tmp_path):
    import subprocess

    from mpiutil import HPCTRAIN

    for args, fragment in ((["--compressor", "quantize"], "quantize is now minmax"),
                           (["--algo", "mdsgd", "--compressor", "threshold"], "threshold")):
        res = subprocess.run([HPCTRAIN, "train", "--dataset", "synthetic", "--epochs", "1", "-q", "--out",
                              str(tmp_path / "run"), *args], capture_output=True, text=True, timeout=60)
        lines = [x for x in res.stderr.splitlines() if x.strip()]
        assert res.returncode == 2 and len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
        assert fragment in lines[0], lines[0]
