"""Mixing matrices: builders, validation (one message per failure), spectral figures, CLI."""

import subprocess

import numpy as np
import pytest

from mpiutil import HPCTRAIN
from hpctrain.errors import TopologyError
from hpctrain.topology import BUILDERS, build, format_report, spectral_info, validate


@pytest.mark.parametrize("name", list(BUILDERS))
@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 8, 9, 16])
def test_builders_are_valid_mixing_matrices(name, n):
    topo = build(name, n)
    W = topo.matrix
    assert W.shape == (n, n) and (W >= 0).all()
    np.testing.assert_allclose(W.sum(0), 1, atol=1e-12)
    np.testing.assert_allclose(W, W.T, atol=1e-12)
    assert 0 <= topo.rho < 1 or n == 1
    assert topo.spectral_gap == pytest.approx(1 - topo.rho)


def test_ring_weights_and_known_spectrum():
    topo = build("ring", 8)
    assert topo.matrix[0, 0] == pytest.approx(1 / 3) and topo.matrix[0, 1] == pytest.approx(1 / 3)
    assert topo.matrix[0, 4] == 0 and set(topo.degrees) == {2}
    assert topo.lambda2 == pytest.approx((1 + 2 * np.cos(2 * np.pi / 8)) / 3)
    assert build("ring", 2).matrix.tolist() == [[0.5, 0.5], [0.5, 0.5]]
    assert build("ring", 1).matrix.tolist() == [[1.0]]
    assert build("complete", 6).rho == pytest.approx(0, abs=1e-12)


def test_exponential_neighbours_are_powers_of_two():
    topo = build("exponential", 16)
    assert topo.neighbours(0) == sorted({1, 2, 4, 8, 15, 14, 12})
    assert build("exponential", 16).spectral_gap > build("ring", 16).spectral_gap


BAD = [
    (np.ones((2, 3)) / 3, "must be square"),
    (np.full((3, 3), 1 / 3), "world has 4 ranks"),
    (np.array([[np.nan, 1.0], [1.0, 0.0]]), "NaN or infinite"),
    (np.array([[1.5, -0.5], [-0.5, 1.5]]), "negative entry"),
    (np.array([[0.5, 0.4], [0.5, 0.5]]), "row 0 .* sums to"),
    (np.array([[0.5, 0.5], [0.4, 0.6]]), "column 1 .* sums to"),
    (np.array([[0.2, 0.5, 0.3], [0.3, 0.2, 0.5], [0.5, 0.3, 0.2]]), "not symmetric"),
    (np.array([[0.5, 0.5, 0, 0], [0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5], [0, 0, 0.5, 0.5]]), "disconnected"),
]


@pytest.mark.parametrize("W,msg", BAD, ids=[m.split()[0] for _, m in BAD])
def test_each_malformed_matrix_has_its_own_message(W, msg):
    n = 4 if "world has 4" in msg else None
    with pytest.raises(TopologyError, match=msg):
        validate(W, n)
    # the message is specific: no other pattern matches it
    with pytest.raises(TopologyError) as info:
        validate(W, n)
    others = [m for _, m in BAD if m != msg]
    import re

    assert not any(re.search(m, str(info.value)) for m in others)


def test_files_npy_and_csv(tmp_path):
    W = build("star", 4).matrix
    np.save(tmp_path / "w.npy", W)
    np.savetxt(tmp_path / "w.csv", W, delimiter=",")
    for f in ("w.npy", "w.csv"):
        topo = build(path=str(tmp_path / f), n=4)
        np.testing.assert_allclose(topo.matrix, W)
    with pytest.raises(TopologyError, match="world has 5"):
        build(path=str(tmp_path / "w.npy"), n=5)
    with pytest.raises(TopologyError, match="not found"):
        build(path=str(tmp_path / "missing.npy"), n=4)
    with pytest.raises(TopologyError, match="unknown topology"):
        build("hypercube", 4)


def test_report_dense_and_pattern():
    assert "W =" in format_report(build("ring", 4)) and "spectral gap" in format_report(build("ring", 4))
    big = format_report(build("torus", 36))
    assert "sparsity pattern" in big and "degree: 4" in big
    info = spectral_info(build("ring", 5).matrix)
    assert info["rho"] == max(abs(info["lambda2"]), abs(info["lambdan"]))


def test_cli_topology_prints_and_rejects(tmp_path):
    ok = subprocess.run([HPCTRAIN, "topology", "ring", "-n", "8"], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "spectral gap" in ok.stdout and "degree: 2" in ok.stdout
    np.save(tmp_path / "bad.npy", np.array([[0.5, 0.5], [0.4, 0.6]]))
    bad = subprocess.run([HPCTRAIN, "topology", "--file", str(tmp_path / "bad.npy"), "-n", "2"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2
    assert len(bad.stderr.strip().splitlines()) == 1 and "column 1" in bad.stderr
    assert bad.stdout == ""
