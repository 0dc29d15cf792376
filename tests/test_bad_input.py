"""Bad input is refused loudly: a clear ValueError/TypeError/OSError naming the argument
(CLI: exit code 2 and one line on stderr), never a crash, a hang or a NaN result.

Malformed sparse structures (the inputs that could make a kernel read out of bounds)
run in a subprocess, so a segfault fails the test instead of killing the test run.
"""

import json
import os
import pickle
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import fastnewton as fn
from fastnewton import io as fio
from fastnewton.cli import main
from fastnewton.sketch import CountSketch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_RNG = np.random.default_rng(7)
A = _RNG.standard_normal((20, 3)) / 3
B = np.exp(A @ np.ones(3))
W = np.ones(20)
P = fn.ExpRegression


def _prob():
    return P(A, B, W)


def _with_nan(M, i=0):
    M = np.array(M, dtype=float)
    M.flat[i] = np.nan
    return M


# (id, call, exception class, message regex)
API_CASES = [
    ("b-wrong-length", lambda: P(A, B[:5], W), ValueError, "b has 5 entries, expected 20"),
    ("b-2d", lambda: P(A, np.ones((20, 2)), W), ValueError, "b must be 1-D"),
    ("A-1d", lambda: P(np.ones(5), np.ones(5), 1.0), ValueError, "A must be 2-D"),
    ("A-3d", lambda: P(np.ones((2, 2, 2)), np.ones(2), 1.0), ValueError, "A must be 2-D"),
    ("A-nan", lambda: P(_with_nan(A), B, W), ValueError, "A contains NaN"),
    ("A-inf-sparse", lambda: P(sp.csr_array(np.where(A > 0.3, np.inf, A)), B, W), ValueError, "A contains NaN or infinite"),
    ("b-nan", lambda: P(A, _with_nan(B), W), ValueError, "b contains NaN"),
    ("b-inf", lambda: P(A, np.r_[np.inf, B[1:]], W), ValueError, "b contains NaN or infinite"),
    ("w-negative", lambda: P(A, B, -1.0), ValueError, "w must be >= 0"),
    ("w-nan", lambda: P(A, B, np.nan), ValueError, "w must be finite"),
    ("w-vector-negative", lambda: P(A, B, -W), ValueError, "w must be non-negative"),
    ("w-wrong-length", lambda: P(A, B, W[:3]), ValueError, "w has 3 entries, expected 20"),
    ("w-string", lambda: P(A, B, "1"), TypeError, "w must be a real number or an array"),
    ("A-empty-rows", lambda: P(np.zeros((0, 3)), np.zeros(0), 1.0), ValueError, "A is empty: shape 0 x 3"),
    ("A-empty-cols", lambda: P(np.zeros((3, 0)), np.zeros(3), 1.0), ValueError, "A is empty: shape 3 x 0"),
    ("A-sparse-empty", lambda: P(sp.csr_array((0, 4)), np.zeros(0), 1.0), ValueError, "A is empty"),
    ("A-object", lambda: P(np.array([[1.0, 2], [3, 4]], dtype=object), np.ones(2), 1.0), TypeError, "A must have a numeric dtype, got dtype object"),
    ("A-complex", lambda: P(A.astype(complex), B, W), TypeError, "A must be real, got complex"),
    ("A-sparse-complex", lambda: P(sp.csr_array(A.astype(complex)), B, W), TypeError, "A must be real"),
    ("b-complex", lambda: P(A, B.astype(complex), W), TypeError, "b must be real"),
    ("A-strings", lambda: P(np.array([["a", "b"]]), np.ones(1), 1.0), TypeError, "A must have a numeric dtype"),
    ("b-strings", lambda: P(A, np.array(["x"] * 20), W), TypeError, "b must have a numeric dtype"),
    ("A-ragged", lambda: P([[1, 2], [3]], np.ones(2), 1.0), TypeError, "A could not be converted"),
    ("A-none", lambda: P(None, B, W), TypeError, "A must be a 2-D numeric array"),
    ("b-sparse", lambda: P(A, sp.csr_array(B[:, None]), W), TypeError, "b must be a dense 1-D array"),
    ("f-unknown", lambda: P(A, B, W, f="tanh"), ValueError, "f must be one of"),
    ("lam-negative", lambda: P(A, B, W, lam=-1), ValueError, "lam must be >= 0"),
    ("lam-nan", lambda: P(A, B, W, lam=np.nan), ValueError, "lam must be finite"),
    ("lam-string", lambda: P(A, B, W, lam="0"), TypeError, "lam must be a real number"),
    ("method-unknown", lambda: fn.minimize(_prob(), method="newtonish"), ValueError, "method must be one of"),
    ("sketch-unknown", lambda: fn.minimize(_prob(), method="sketch", sketch="gauss"), ValueError, "unknown sketch 'gauss'"),
    ("sketch-size-0", lambda: fn.minimize(_prob(), method="sketch", sketch_size=0), ValueError, "sketch_size must be >= 1"),
    ("sketch-size-negative", lambda: fn.minimize(_prob(), sketch_size=-3), ValueError, "sketch_size must be >= 1"),
    ("sketch-size-float", lambda: fn.minimize(_prob(), method="sketch", sketch_size=2.5), TypeError, "sketch_size must be an integer"),
    ("sketch-size-string-auto", lambda: fn.minimize(_prob(), sketch_size="8"), TypeError, "sketch_size must be an integer"),
    ("sketch-size-above-n", lambda: fn.minimize(_prob(), method="sketch", sketch_size=10**12), ValueError, "sketch_size must be at most n = 20"),
    ("countsketch-size-0", lambda: CountSketch(0, 10, seed=0), ValueError, "sketch_size must be >= 1"),
    ("countsketch-wrong-rows", lambda: CountSketch(3, 10, seed=0).apply(np.ones((5, 2))), ValueError, "A has 5 rows but the sketch expects 10"),
    ("x0-wrong-length", lambda: fn.minimize(_prob(), np.ones(4)), ValueError, "x0 has 4 entries, expected 3"),
    ("x0-nan", lambda: fn.minimize(_prob(), np.array([np.nan, 0, 0])), ValueError, "x0 contains NaN"),
    ("x0-overflows", lambda: fn.minimize(_prob(), np.full(3, 1e3)), ValueError, "not finite at x0"),
    ("tol-negative", lambda: fn.minimize(_prob(), tol=-1), ValueError, "tol must be >= 0"),
    ("maxiter-float", lambda: fn.minimize(_prob(), maxiter=2.5), TypeError, "maxiter must be an integer"),
    ("seed-string", lambda: fn.minimize(_prob(), seed="abc"), TypeError, "seed must be None, an int"),
    ("seed-randomstate", lambda: fn.minimize(_prob(), seed=np.random.RandomState(0)), TypeError, "RandomState is not supported"),
    ("callback-not-callable", lambda: fn.minimize(_prob(), callback=3), TypeError, "callback must be callable"),
    ("problem-not-a-problem", lambda: fn.minimize(object()), TypeError, "problem must be a fastnewton problem"),
    ("resume-wrong-type", lambda: fn.minimize(_prob(), resume={"x": 1}), TypeError, "resume must be a NewtonState"),
    ("fun-wrong-x", lambda: _prob().fun(np.ones(5)), ValueError, "x has 5 entries, expected 3"),
    ("hessp-nan-p", lambda: _prob().hessp(np.ones(3), np.array([np.nan, 1, 1])), ValueError, "p contains NaN"),
    ("make-regression-family", lambda: fn.datasets.make_regression(10, 3, family="x"), ValueError, "family must be one of"),
    ("make-regression-n0", lambda: fn.datasets.make_regression(0, 3), ValueError, "n must be >= 1"),
    ("load-unknown-suffix", lambda: fio.load_array("data.csv", "A"), ValueError, "A: cannot tell the format"),
    ("load-missing-file", lambda: fio.load_array("/nonexistent/A.npz", "A"), FileNotFoundError, "A: no such file"),
    ("load-directory", lambda: fio.load_array(_dir_npz(), "A"), OSError, "is a directory"),
]


def _dir_npz():
    import tempfile
    path = os.path.join(tempfile.mkdtemp(), "dir.npz")
    os.mkdir(path)
    return path


@pytest.mark.parametrize("call, exc, match", [c[1:] for c in API_CASES], ids=[c[0] for c in API_CASES])
def test_public_api_refuses(call, exc, match):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fn.NonConvexWarning)
        with pytest.raises(exc, match=match) as info:
            call()
    assert isinstance(info.value, (ValueError, TypeError, OSError))


def test_resume_state_from_another_problem_is_refused():
    states = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fn.ConvergenceWarning)
        fn.minimize(_prob(), method="exact", maxiter=1, callback=lambda r: states.append(r.state))
    other = P(A[:10], B[:10], W[:10])
    with pytest.raises(ValueError, match="resume state has x of 3 and z of 20 entries"):
        fn.minimize(other, method="exact", resume=states[-1])
    with pytest.raises(ValueError, match="resume state was made by method 'exact'"):
        fn.minimize(_prob(), method="sketch", resume=states[-1])


# -- malformed sparse structures, in a subprocess -----------------------------------------
# Each mutates a valid 3 x 4 CSR (or its CSC/COO form) the way a hand-built matrix could be.
SPARSE_CASES = {
    "csr-index-out-of-range": ("A.indices[0] = 4", r"A\.indices \(CSR\) has entries outside \[0, 4\)"),
    "csr-negative-index": ("A.indices[0] = -1", r"entries outside \[0, 4\): min -1"),
    "csr-indptr-not-monotone": ("A.indptr[1] = 5", r"A\.indptr \(CSR\) is not monotone"),
    "csr-indptr-not-from-0": ("A.indptr[0] = 1", r"A\.indptr \(CSR\) must start at 0"),
    "csr-indptr-past-data": ("A.indptr[-1] = 100", "ends at 100 but indices/data hold only 6"),
    "csr-indptr-too-short": ("A.indptr = A.indptr[:-1]", r"A\.indptr \(CSR\) has 3 entries, expected 4"),
    "csr-float-indices": ("A.indices = A.indices.astype(np.float64)", r"A\.indices \(CSR\) must be integers"),
    "csr-int64-index-past-int32": (
        "A.indices = A.indices.astype(np.int64); A.indptr = A.indptr.astype(np.int64); "
        "A.indices[0] = 2**32", "max 4294967296"),  # would wrap to 0 if cast to int32
    "csc-int64-row-past-int32": (
        "A = A.tocsc(); A.indices = A.indices.astype(np.int64); "
        "A.indptr = A.indptr.astype(np.int64); A.indices[1] = 2**32 + 1",
        r"A\.indices \(CSC\) has entries outside \[0, 3\)"),
    "coo-negative-row": ("A = A.tocoo(); A.coords[0][0] = -1", r"A \(COO\) has row indices outside"),
    "coo-column-out-of-range": ("A = A.tocoo(); A.coords[1][0] = 9", r"A \(COO\) has column indices outside"),
    "csr-nan-data": ("A.data[0] = np.nan", "A contains NaN or infinite"),
}

_SPARSE_SCRIPT = textwrap.dedent("""
    import json, sys, warnings
    import numpy as np, scipy.sparse as sp
    import fastnewton as fn
    from fastnewton.sketch import CountSketch
    warnings.simplefilter("ignore")
    cases = json.loads(sys.argv[1])
    out = {}
    for name, code in cases.items():
        results = []
        for target in ("problem", "sketch"):
            A = sp.csr_array(np.array([[1., 0, 2, 0], [0, 3, 0, 4], [5, 0, 0, 6]]))
            try:
                exec(code)
                if target == "problem":
                    r = fn.minimize(fn.ExpRegression(A, np.ones(3), 1.0), method="exact")
                    results.append(["returned", repr(r.x), False])
                else:
                    S = CountSketch(2, 3, seed=0).apply(A)
                    results.append(["returned", repr(S), False])
            except Exception as exc:
                results.append([type(exc).__name__, str(exc),
                                isinstance(exc, (ValueError, TypeError, OSError))])
        out[name] = results
        print(name, flush=True, file=sys.stderr)
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def sparse_results():
    cases = {k: v[0] for k, v in SPARSE_CASES.items()}
    proc = subprocess.run([sys.executable, "-c", _SPARSE_SCRIPT, json.dumps(cases)],
                          env=dict(os.environ, PYTHONPATH=REPO), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, f"subprocess crashed ({proc.returncode}): {proc.stderr[-2000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case", list(SPARSE_CASES))
def test_malformed_sparse_is_refused_without_crashing(sparse_results, case):
    import re
    match = SPARSE_CASES[case][1]
    for kind, message, is_value_or_type in sparse_results[case]:
        assert kind != "returned", f"{case}: accepted a malformed matrix: {message}"
        assert is_value_or_type, f"{case}: {kind}: {message}"
        assert re.search(match, message), f"{case}: {message!r} !~ {match!r}"


# -- the CLI: exit 2, one line on stderr, no traceback ---------------------------------
@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    fio.save_array(d / "A.npz", sp.csr_array(A))
    np.save(d / "b.npy", B)
    np.save(d / "b_short.npy", B[:7])
    np.save(d / "b_nan.npy", _with_nan(B))
    np.save(d / "w.npy", W)
    good = (d / "A.npz").read_bytes()
    (d / "truncated.npz").write_bytes(good[: len(good) // 2])
    npy = (d / "b.npy").read_bytes()
    (d / "truncated.npy").write_bytes(npy[: len(npy) - 40])
    (d / "garbage.mtx").write_text("%%MatrixMarket matrix coordinate real general\n3 3 2\n1 1\n")
    (d / "empty.svm").write_text("")
    np.save(d / "pickled.npy", np.array([_Marker(str(d / "PWNED"))], dtype=object), allow_pickle=True)
    np.savez(d / "objects.npz", a=np.array([{}, 1], dtype=object))
    (d / "job_bad.json").write_text("{not json")
    (d / "job_key.json").write_text(json.dumps({"problem": "exp", "bogus": 1}))
    (d / "job_solver.json").write_text(json.dumps({"params": {}, "solver": {"speed": 9}}))
    (d / "job_threads.json").write_text(json.dumps({"threads": 0}))
    (d / "torn_ckpt.npz").write_bytes(good[:100])
    return d


class _Marker:
    """Unpickling this creates a file: proves nothing is ever unpickled."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _cli(files, *args):
    base = ["solve", "--A", str(files / "A.npz"), "--b", str(files / "b.npy"), "--w", "1.0",
            "--out", str(files / "out.npz"), "--quiet"]
    return base + [a.format(d=files) for a in args]


CLI_CASES = [
    ("missing-file", ["--A", "{d}/nope.npz"], "A: no such file"),
    ("truncated-npz", ["--A", "{d}/truncated.npz"], "A: cannot read .* as npz"),
    ("truncated-npy", ["--b", "{d}/truncated.npy"], "b: cannot read .* as npy"),
    ("pickle-npy", ["--b", "{d}/pickled.npy"], "b: cannot read .*allow_pickle=False"),
    ("object-npz", ["--b", "{d}/objects.npz"], "b: cannot read .* as npz"),
    ("garbage-mtx", ["--A", "{d}/garbage.mtx"], "A: cannot read .* as mtx"),
    ("empty-svmlight", ["--A", "{d}/empty.svm"], "no data lines"),
    ("unknown-suffix", ["--A", "{d}/A.csv"], "A: cannot tell the format"),
    ("b-wrong-length", ["--b", "{d}/b_short.npy"], "b has 7 entries, expected 20"),
    ("b-nan", ["--b", "{d}/b_nan.npy"], "b contains NaN"),
    ("w-negative", ["--w", "-2"], "w must be >= 0"),
    ("f-unknown", ["--f", "tanh"], "f must be one of"),
    ("lam-negative", ["--lam", "-1"], "lam must be >= 0"),
    ("unknown-method", ["--method", "bogus"], "invalid choice: 'bogus'"),
    ("unknown-problem", ["--problem", "nope"], "invalid choice: 'nope'"),
    ("threads-zero", ["--threads", "0"], "expected a positive integer"),
    ("sketch-size-zero", ["--sketch-size", "0"], "expected a positive integer"),
    ("sketch-size-above-n", ["--method", "sketch", "--sketch-size", "500"], "sketch_size must be at most n = 20"),
    ("tol-nan", ["--tol", "nan"], "expected a finite number"),
    ("unknown-param", ["--param", "gamma=2"], "takes no argument 'gamma'"),
    ("bad-param-syntax", ["--param", "gamma"], "--param expects NAME=VALUE"),
    ("resume-without-checkpoint", ["--resume"], "--resume needs --checkpoint"),
    ("out-dir-missing", ["--out", "/nonexistent/dir/out.npz"], "does not exist"),
    ("job-not-json", ["--job", "{d}/job_bad.json"], "job: cannot parse"),
    ("job-unknown-key", ["--job", "{d}/job_key.json"], r"job: unknown key\(s\) \['bogus'\]"),
    ("job-unknown-solver-option", ["--job", "{d}/job_solver.json"], "unknown solver option"),
    ("job-missing", ["--job", "{d}/nope.json"], "job: no such file"),
    ("job-threads-zero", ["--job", "{d}/job_threads.json"], "threads must be a positive integer"),
    ("checkpoint-corrupt", ["--checkpoint", "{d}/torn_ckpt.npz", "--resume"], "checkpoint: cannot read"),
]


@pytest.mark.parametrize("args, match", [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_cli_bad_input_exits_2_with_one_line(files, capsys, args, match):
    import re
    try:
        code = main(_cli(files, *args))
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert re.search(match, err), err
    assert not (files / "PWNED").exists()
    assert not (files / "out.npz").exists()


def test_cli_refuses_a_checkpoint_from_another_problem(files, capsys):
    ck = files / "ck.npz"
    assert main(_cli(files, "--checkpoint", str(ck), "--maxiter", "1", "--method", "exact")) == 1
    assert ck.exists()
    np.save(files / "b2.npy", B * 1.5)
    code = main(_cli(files, "--b", str(files / "b2.npy"), "--checkpoint", str(ck), "--resume"))
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "was written for a different problem or different solver options" in err
    # the options count too: a different seed or method is another trajectory
    assert main(_cli(files, "--checkpoint", str(ck), "--resume", "--seed", "5")) == 2
    (files / "out.npz").unlink(missing_ok=True)


@pytest.mark.parametrize("args, match", [
    (["--A", "{d}/truncated.npz"], "A: cannot read"),
    (["--b", "{d}/pickled.npy"], "b: cannot read"),
])
def test_cli_entry_point_in_a_subprocess(files, args, match):
    proc = subprocess.run([sys.executable, "-m", "fastnewton.cli"] + _cli(files, *args),
                          env=dict(os.environ, PYTHONPATH=REPO), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and match in lines[0] and "Traceback" not in proc.stderr
    assert not (files / "PWNED").exists()


# -- unusual but valid input: finite results, never NaN --------------------------------
def _finite(res):
    assert np.isfinite(res.x).all() and np.isfinite(res.fun) and np.isfinite(res.jac).all()
    for key in ("fun", "grad_norm", "step_size"):
        assert np.isfinite(res.history[key]).all()


Ad = _RNG.standard_normal((4, 9))


@pytest.mark.parametrize("name, make, method", [
    ("d>n-lam0-exact", lambda: P(Ad, np.exp(Ad @ np.ones(9) / 3), 1.0), "exact"),
    ("d>n-lam0-sketch", lambda: P(Ad, np.exp(Ad @ np.ones(9) / 3), 1.0), "sketch"),
    ("d>n-ridge", lambda: P(Ad, np.exp(Ad @ np.ones(9) / 3), 1.0, lam=1e-3), "exact"),
    ("single-row", lambda: P(np.ones((1, 2)), np.array([2.0]), 0.0), "exact"),
    ("bool-A", lambda: P(A > 0, B, W), "exact"),
    ("zero-column", lambda: P(np.c_[A, np.zeros(20)], B, W), "exact"),
    ("float32-sparse", lambda: P(sp.csr_array(A.astype(np.float32)), B, W), "sketch"),
    ("int64-indices", lambda: P(_int64_csr(A), B, W), "exact"),
    ("sketch-size-below-d", lambda: P(A, B, W), "sketch-1"),
    ("b-all-zero-cosh", lambda: P(A, np.zeros(20), 1.0, f="cosh"), "exact"),
])
def test_unusual_valid_input_gives_finite_results(name, make, method):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prob = make()
        if method == "sketch-1":
            res = fn.minimize(prob, method="sketch", sketch_size=1, seed=0)
        else:
            res = fn.minimize(prob, method=method, seed=0)
    _finite(res)
    if "ridge" in name or name in ("bool-A", "int64-indices", "zero-column"):
        assert res.success, res.message


def _int64_csr(M):
    S = sp.csr_array(M)
    S.indices = S.indices.astype(np.int64)
    S.indptr = S.indptr.astype(np.int64)
    return S


def test_int64_indices_give_the_same_answer_as_int32():
    r32 = fn.minimize(P(sp.csr_array(A), B, W), method="exact")
    r64 = fn.minimize(P(_int64_csr(A), B, W), method="exact")
    np.testing.assert_array_equal(r32.x, r64.x)


def test_pickle_payload_was_never_executed(files):
    with pytest.raises(ValueError, match="allow_pickle=False"):
        fio.load_array(files / "pickled.npy", "b")
    assert not (files / "PWNED").exists()
    # sanity: the payload is real (unpickling it does create the file)
    with open(files / "pickled.npy", "rb") as fh:
        major, _ = np.lib.format.read_magic(fh)
        (np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0)(fh)
        pickle.load(fh)
    assert (files / "PWNED").exists()
    (files / "PWNED").unlink()
