"""fastnewton.io: loaders without pickle, atomic writes, checkpoints; numba cache dir."""

import hashlib
import os

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp

import fastnewton as fn
from fastnewton import io as fio
from fastnewton._numba_cache import candidate_cache_dirs, configure_numba_cache


def _random_csr(rng, n=7, d=5, density=0.4):
    return sp.random_array((n, d), density=density, format="csr", rng=rng)


@pytest.mark.parametrize("kind", ["csr_array", "csr_matrix", "csc_matrix", "coo_array"])
def test_npz_sparse_round_trip(tmp_path, rng, kind):
    A = getattr(sp, kind)(_random_csr(rng))
    path = tmp_path / "A.npz"
    fio.save_array(path, A)
    B = fio.load_array(path, "A")
    assert sp.issparse(B)
    np.testing.assert_array_equal(B.toarray(), A.toarray())


def test_npz_written_by_scipy_and_numpy(tmp_path, rng):
    A = _random_csr(rng)
    sp.save_npz(tmp_path / "s.npz", A)             # compressed, by scipy itself
    np.testing.assert_array_equal(fio.load_array(tmp_path / "s.npz").toarray(), A.toarray())
    v, w = rng.standard_normal(4), rng.standard_normal(3)
    np.savez(tmp_path / "one.npz", v)
    np.testing.assert_array_equal(fio.load_array(tmp_path / "one.npz"), v)
    np.savez(tmp_path / "two.npz", v=v, w=w)
    np.testing.assert_array_equal(fio.load_array(f"{tmp_path}/two.npz:w"), w)
    with pytest.raises(fio.InputFileError, match="holds 2 arrays"):
        fio.load_array(tmp_path / "two.npz", "b")
    with pytest.raises(fio.InputFileError, match="has no array 'q'"):
        fio.load_array(f"{tmp_path}/two.npz:q", "b")


def test_npy_and_mtx_round_trip(tmp_path, rng):
    v = rng.standard_normal(9)
    fio.save_array(tmp_path / "v.npy", v)
    np.testing.assert_array_equal(fio.load_array(tmp_path / "v.npy"), v)
    A = _random_csr(rng)
    fio.save_array(tmp_path / "A.mtx", A)
    np.testing.assert_array_equal(fio.load_array(tmp_path / "A.mtx").toarray(), A.toarray())
    D = rng.standard_normal((4, 3))
    scipy.io.mmwrite(tmp_path / "D.mtx", D, precision=17)   # written by scipy directly
    np.testing.assert_array_equal(fio.load_array(tmp_path / "D.mtx"), D)


def test_svmlight_parser_against_hand_written_file(tmp_path):
    text = ("# a comment line\n"
            "1.5 1:2 3:-0.5  # trailing comment\n"
            "-2 qid:7 2:1e-3\n"
            "\n"
            "0 \n"
            "3.25 4:4\n")
    (tmp_path / "d.svm").write_text(text)
    X, y = fio.load_svmlight(tmp_path / "d.svm")
    expected = np.array([[2, 0, -0.5, 0], [0, 1e-3, 0, 0], [0, 0, 0, 0], [0, 0, 0, 4.0]])
    np.testing.assert_array_equal(X.toarray(), expected)
    np.testing.assert_array_equal(y, [1.5, -2, 0, 3.25])
    # zero-based detected from an index 0
    (tmp_path / "z.svm").write_text("1 0:1 2:3\n2 1:5\n")
    X, _ = fio.load_svmlight(tmp_path / "z.svm")
    np.testing.assert_array_equal(X.toarray(), [[1, 0, 3], [0, 5, 0]])
    np.testing.assert_array_equal(fio.load_array(f"{tmp_path}/z.svm:labels"), [1, 2])


def test_svmlight_round_trip_is_exact(tmp_path, rng):
    A = _random_csr(rng, 20, 6)
    b = rng.standard_normal(20)
    fio.save_array(tmp_path / "A.svm", A, labels=b)
    X, y = fio.load_svmlight(tmp_path / "A.svm", n_features=6)
    np.testing.assert_array_equal(X.toarray(), A.toarray())
    np.testing.assert_array_equal(y, b)


@pytest.mark.parametrize("text, match", [
    ("1 1:2 x\n", "expected index:value"),
    ("abc 1:2\n", "label"),
    ("1 1:zz\n", "bad entry"),
    ("1 1:2 1:3\n", "repeats a feature index"),
    ("# only a comment\n", "no data lines"),
])
def test_svmlight_malformed(tmp_path, text, match):
    (tmp_path / "bad.svm").write_text(text)
    with pytest.raises(fio.InputFileError, match=match):
        fio.load_array(tmp_path / "bad.svm", "A")


def test_atomic_write_keeps_old_file_on_error(tmp_path):
    path = tmp_path / "out.npz"
    fio.save_npz(path, x=np.arange(3.0))
    before = path.read_bytes()
    with pytest.raises(RuntimeError, match="boom"):
        with fio.atomic_write(path) as fh:
            fh.write(b"partial garbage")
            raise RuntimeError("boom")
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["out.npz"]  # no temporary file left behind
    fio.save_npz(path, x=np.arange(4.0))
    with np.load(path) as npz:
        np.testing.assert_array_equal(npz["x"], np.arange(4.0))
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0o600


def test_save_npz_refuses_object_arrays(tmp_path):
    with pytest.raises(TypeError, match="bad is an object array"):
        fio.save_npz(tmp_path / "o.npz", bad=np.array([{}, 1], dtype=object))


def test_write_json_writes_nan_as_null(tmp_path):
    import json
    fio.write_json(tmp_path / "r.json", {"a": np.float64(np.nan), "b": np.arange(2), "c": np.bool_(True)})
    assert json.loads((tmp_path / "r.json").read_text()) == {"a": None, "b": [0, 1], "c": True}


def test_sha256_file(tmp_path, rng):
    data = rng.bytes(3 * 1024 + 5)
    (tmp_path / "f").write_bytes(data)
    assert fio.sha256_file(tmp_path / "f", chunk=1024) == hashlib.sha256(data).hexdigest()


def _state(rng, n=12, d=3):
    data = fn.datasets.make_regression(n, d, seed=int(rng.integers(1 << 30)))
    prob = fn.ExpRegression(data.A, data.b, data.w)
    states = []
    fn.minimize(prob, method="exact", maxiter=2, callback=lambda r: states.append(r.state))
    return states[-1]


def test_checkpoint_round_trip_and_mismatch(tmp_path, rng):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        state = _state(rng)
    path = tmp_path / "ck.npz"
    fio.save_checkpoint(path, state, "abc123")
    back = fio.load_checkpoint(path, "abc123")
    for key in ("x", "z", "g", "prev_s", "prev_As"):
        np.testing.assert_array_equal(getattr(back, key), getattr(state, key))
    assert (back.f, back.nit, back.method, back.g0norm) == (state.f, state.nit, state.method, state.g0norm)
    assert back.history["fun"] == list(state.history["fun"])
    with pytest.raises(fio.CheckpointMismatchError, match="different problem"):
        fio.load_checkpoint(path, "other")
    np.savez(tmp_path / "plain.npz", x=np.zeros(3))
    with pytest.raises(fio.InputFileError, match="not a fastnewton checkpoint"):
        fio.load_checkpoint(tmp_path / "plain.npz", "abc123")


def test_numba_cache_dir_for_read_only_package(tmp_path):
    readonly = str(tmp_path / "pkg")
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg")}
    writable = lambda p: not p.startswith(readonly)  # noqa: E731
    chosen = configure_numba_cache(package_dir=readonly, environ=env, writable=writable)
    assert chosen == os.path.join(str(tmp_path / "xdg"), "fastnewton", "numba")
    assert env["NUMBA_CACHE_DIR"] == chosen
    # a user's own NUMBA_CACHE_DIR wins; a writable package dir changes nothing
    env2 = {"NUMBA_CACHE_DIR": "/mine"}
    assert configure_numba_cache(package_dir=readonly, environ=env2, writable=writable) is None
    assert env2 == {"NUMBA_CACHE_DIR": "/mine"}
    assert configure_numba_cache(package_dir=str(tmp_path), environ={}, writable=lambda p: True) is None
    # falls through unwritable candidates to the temp dir
    env3 = {"FASTNEWTON_CACHE_DIR": "/nope", "XDG_CACHE_HOME": "/nope2"}
    cands = candidate_cache_dirs(env3)
    assert cands[0] == "/nope" and cands[1].startswith("/nope2")
    got = configure_numba_cache(package_dir=readonly, environ=env3,
                                writable=lambda p: p == cands[2])
    assert got == cands[2]
