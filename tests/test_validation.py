"""Bad input gets a clear ValueError/TypeError naming the argument (issue 2), never a crash.

Malformed sparse structures that could make a kernel read out of bounds are exercised in a
subprocess, so that a segfault fails the test instead of killing the test run.
"""

import json
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import fastnewton as fn
from fastnewton.exceptions import ValidationError
from fastnewton.hessian import DiagLowRank, gram
from fastnewton.linalg import Design
from fastnewton.newton import NewtonState
from fastnewton.sketch import CountSketch

N, D = 6, 3


@pytest.fixture
def data(rng):
    return rng.standard_normal((N, D)), rng.uniform(0.5, 2.0, N)


@pytest.fixture
def prob(data):
    A, b = data
    return fn.ExpRegression(A, b, 2.0)


# -- ExpRegression arguments ---------------------------------------------------------------

def _nan_at(v, value=np.nan):
    v = np.array(v, dtype=float)
    v.flat[1] = value
    return v


@pytest.mark.parametrize("make_args,exc,match", [
    # shapes
    (lambda A, b: (A, b[:-1], 1.0), ValueError, r"b has 5 entries, expected 6"),
    (lambda A, b: (A, np.ones((N, 2)), 1.0), ValueError, r"b must be 1-D, got shape \(6, 2\)"),
    (lambda A, b: (A, 1.0, 1.0), ValueError, r"b must be 1-D"),
    (lambda A, b: (A, b, np.ones(N + 1)), ValueError, r"w has 7 entries, expected 6"),
    (lambda A, b: (A, b, np.ones((N, 2))), ValueError, r"w must be 1-D"),
    (lambda A, b: (A[0], b, 1.0), ValueError, r"A must be 2-D"),
    (lambda A, b: (A[:, :, None], b, 1.0), ValueError, r"A must be 2-D"),
    # non-finite values
    (lambda A, b: (_nan_at(A), b, 1.0), ValueError, r"A contains NaN or infinite"),
    (lambda A, b: (_nan_at(A, np.inf), b, 1.0), ValueError, r"A contains NaN or infinite"),
    (lambda A, b: (sp.csr_array(_nan_at(A, -np.inf)), b, 1.0), ValueError,
     r"A contains NaN or infinite"),
    (lambda A, b: (sp.coo_matrix(_nan_at(A)), b, 1.0), ValueError, r"A contains NaN or infinite"),
    (lambda A, b: (A, _nan_at(b), 1.0), ValueError, r"b contains NaN or infinite"),
    (lambda A, b: (A, _nan_at(b, np.inf), 1.0), ValueError, r"b contains NaN or infinite"),
    (lambda A, b: (A, b, _nan_at(np.ones(N))), ValueError, r"w contains NaN or infinite"),
    (lambda A, b: (A, b, _nan_at(np.ones(N), np.inf)), ValueError, r"w contains NaN or infinite"),
    (lambda A, b: (A, b, np.nan), ValueError, r"w must be finite"),
    (lambda A, b: (A, b, np.inf), ValueError, r"w must be finite"),
    # negative w
    (lambda A, b: (A, b, -0.5), ValueError, r"w must be >= 0"),
    (lambda A, b: (A, b, _nan_at(np.ones(N), -1e-3)), ValueError, r"w must be non-negative"),
    # empty A
    (lambda A, b: (np.zeros((0, D)), np.zeros(0), 1.0), ValueError, r"A is empty: shape 0 x 3"),
    (lambda A, b: (np.zeros((N, 0)), b, 1.0), ValueError, r"A is empty: shape 6 x 0"),
    (lambda A, b: (sp.csr_array((N, 0)), b, 1.0), ValueError, r"A is empty"),
    (lambda A, b: (sp.coo_array((0, D)), np.zeros(0), 1.0), ValueError, r"A is empty"),
    # non-numeric dtypes
    (lambda A, b: (A.astype(object), b, 1.0), TypeError, r"A must have a numeric dtype.*object"),
    (lambda A, b: (A.astype(str), b, 1.0), TypeError, r"A must have a numeric dtype"),
    (lambda A, b: (A.astype(complex), b, 1.0), TypeError, r"A must be real.*complex"),
    (lambda A, b: (sp.csr_array(A.astype(np.complex64)), b, 1.0), TypeError, r"A must be real"),
    (lambda A, b: (None, b, 1.0), TypeError, r"A must be a 2-D numeric array"),
    (lambda A, b: ("A", b, 1.0), TypeError, r"A must be a 2-D numeric array"),
    (lambda A, b: ([[1.0, 2.0], [3.0]], b, 1.0), TypeError, r"A could not be converted"),
    (lambda A, b: (A, b.astype(str), 1.0), TypeError, r"b must have a numeric dtype"),
    (lambda A, b: (A, b.astype(complex), 1.0), TypeError, r"b must be real"),
    (lambda A, b: (A, b.astype(object), 1.0), TypeError, r"b must have a numeric dtype"),
    (lambda A, b: (A, b, "1.0"), TypeError, r"w must be a real number"),
    (lambda A, b: (A, b, 1j), TypeError, r"w must be a real number"),
    (lambda A, b: (A, b, np.ones(N, dtype=complex)), TypeError, r"w must be real"),
])
def test_problem_rejects_bad_input(data, make_args, exc, match):
    A, b = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fn.NonConvexWarning)
        with pytest.raises(exc, match=match):
            fn.ExpRegression(*make_args(A, b))


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"f": "tanh"}, ValueError, r"f must be one of \['cosh', 'exp', 'sinh'\], got 'tanh'"),
    ({"f": None}, ValueError, r"f must be one of"),
    ({"f": "EXP"}, ValueError, r"f must be one of"),
    ({"lam": -1.0}, ValueError, r"lam must be >= 0"),
    ({"lam": np.nan}, ValueError, r"lam must be finite"),
    ({"lam": "0"}, TypeError, r"lam must be a real number"),
])
def test_problem_rejects_bad_options(data, kwargs, exc, match):
    A, b = data
    with pytest.raises(exc, match=match):
        fn.ExpRegression(A, b, 2.0, **kwargs)


def test_validation_error_is_a_value_error():
    assert issubclass(ValidationError, ValueError)


def test_point_arguments_are_checked(prob):
    with pytest.raises(ValueError, match=r"x has 2 entries, expected 3"):
        prob.fun(np.zeros(D - 1))
    with pytest.raises(ValueError, match=r"x contains NaN"):
        prob.jac(np.full(D, np.nan))
    with pytest.raises(ValueError, match=r"p has 4 entries, expected 3"):
        prob.hessp(np.zeros(D), np.zeros(D + 1))
    with pytest.raises(TypeError, match=r"x must have a numeric dtype"):
        prob.hessian_parts(np.array(["a"] * D))


# -- minimize arguments ----------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,exc,match", [
    ({"x0": np.zeros(D + 1)}, ValueError, r"x0 has 4 entries, expected 3"),
    ({"x0": np.zeros((D, 2))}, ValueError, r"x0 must be 1-D"),
    ({"x0": np.full(D, np.inf)}, ValueError, r"x0 contains NaN or infinite"),
    ({"x0": np.full(D, 1e3)}, ValueError, r"objective is not finite at x0"),
    ({"method": "bfgs"}, ValueError, r"method must be one of \('auto', 'exact', 'sketch'.*\), got 'bfgs'"),
    ({"method": None}, ValueError, r"method must be one of"),
    ({"tol": -1e-8}, ValueError, r"tol must be >= 0"),
    ({"tol": np.nan}, ValueError, r"tol must be finite"),
    ({"tol": "1e-8"}, TypeError, r"tol must be a real number"),
    ({"maxiter": -1}, ValueError, r"maxiter must be >= 0"),
    ({"maxiter": 2.5}, TypeError, r"maxiter must be an integer"),
    ({"maxiter": None}, TypeError, r"maxiter must be an integer"),
    ({"maxiter": True}, TypeError, r"maxiter must be an integer"),
    ({"method": "sketch", "sketch": "gaussian-unknown"}, ValueError, r"unknown sketch"),
    ({"method": "sketch", "sketch": 3}, TypeError, r"sketch must be a name or a sketch object"),
    ({"method": "sketch", "sketch_size": 0}, ValueError, r"sketch_size must be >= 1"),
    ({"seed": "x"}, TypeError, r"seed must be None, an int"),
    ({"seed": np.random.RandomState(0)}, TypeError, r"legacy RandomState"),
    ({"callback": 3}, TypeError, r"callback must be callable"),
    ({"armijo": 0.7}, ValueError, r"armijo must be <= 0.5"),
    ({"resume": {"x": 1}}, TypeError, r"resume must be a NewtonState"),
])
def test_minimize_rejects_bad_arguments(prob, kwargs, exc, match):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the error alone, no RuntimeWarning on the way
        with pytest.raises(exc, match=match):
            fn.minimize(prob, **kwargs)


@pytest.mark.parametrize("obj", [object(), {"A": np.eye(2)}, np.eye(3), None])
def test_minimize_rejects_non_problems(obj):
    with pytest.raises(TypeError, match=r"problem must be a fastnewton problem.*lacks"):
        fn.minimize(obj)


def test_resume_state_must_match(prob, data):
    A, b = data
    saved = {}

    def keep(r):
        saved["state"] = r.state
        return True

    fn.minimize(prob, method="exact", callback=keep)
    state = saved["state"]
    with pytest.raises(ValueError, match=r"resume state was made by method 'exact'"):
        fn.minimize(prob, method="sketch", resume=state)
    other = fn.ExpRegression(np.vstack([A, A]), np.r_[b, b], 2.0)
    with pytest.raises(ValueError, match=r"resume state has x of 3 and z of 6 entries"):
        fn.minimize(other, method="exact", resume=state)
    arrays = state.to_arrays()
    del arrays["g"]
    with pytest.raises(ValueError, match=r"resume state lacks the entry 'g'"):
        NewtonState.from_arrays(arrays)


# -- engine components -------------------------------------------------------------------------

def test_components_reject_bad_input(data, rng):
    A, _ = data
    design = Design(sp.csr_array(A))
    with pytest.raises(ValueError, match=r"x must have shape \(3,\)"):
        design.matvec(np.zeros(4))
    with pytest.raises(ValueError, match=r"y must have shape \(6,\)"):
        design.rmatvec(np.zeros(5))
    with pytest.raises(ValueError, match=r"beta must have shape \(6,\)"):
        design.normal_matvec(np.zeros(5), np.zeros(3))
    with pytest.raises(ValueError, match=r"parts has n = 5 \(length of beta\) but A has 6 rows"):
        gram(design, DiagLowRank(np.ones(5)))
    with pytest.raises(TypeError, match=r"parts must be a DiagLowRank"):
        gram(design, np.ones(6))
    with pytest.raises(ValueError, match=r"ridge must be finite"):
        gram(design, DiagLowRank(np.ones(6)), ridge=np.inf)
    with pytest.raises(ValueError, match=r"beta contains NaN"):
        DiagLowRank(np.r_[np.nan, np.ones(5)])
    with pytest.raises(ValueError, match=r"C must be symmetric"):
        DiagLowRank(np.ones(6), np.ones((6, 2)), np.array([[1.0, 2.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match=r"U and C must be given together"):
        DiagLowRank(np.ones(6), np.ones((6, 2)))
    S = CountSketch(4, N, seed=0)
    with pytest.raises(ValueError, match=r"row_weights must be non-negative"):
        S.apply(A, row_weights=-np.ones(N))
    with pytest.raises(ValueError, match=r"A has 5 rows but the sketch expects 6"):
        S.apply(A[:5])
    with pytest.raises(ValueError, match=r"sketch_size must be >= 1"):
        CountSketch(0, N)


# -- malformed sparse structures, in a subprocess ----------------------------------------------

_SCRIPT = textwrap.dedent(r'''
    import json, re, sys, warnings
    import numpy as np, scipy.sparse as sp
    import fastnewton as fn
    from fastnewton.linalg import Design
    from fastnewton.hessian import DiagLowRank, gram
    from fastnewton.sketch import CountSketch

    warnings.simplefilter("ignore")
    n, d = 4, 3
    data = np.arange(1.0, 6.0)
    ind = np.array([0, 2, 1, 0, 2])
    ptr = np.array([0, 2, 3, 4, 5])

    def csr(indices=ind, indptr=ptr, values=data, cls=sp.csr_array, itype=None):
        """Hand-built CSR: valid arrays handed to scipy, then the bad ones swapped in."""
        A = cls((data.copy(), ind.copy(), ptr.copy()), shape=(n, d))
        A.indices, A.indptr, A.data = np.asarray(indices), np.asarray(indptr), np.asarray(values)
        if itype is not None:
            A.indices, A.indptr = A.indices.astype(itype), A.indptr.astype(itype)
        return A

    def csc(indices, indptr):
        A = sp.csc_array((np.ones(4), np.array([0, 1, 2, 3]), np.array([0, 2, 3, 4])), shape=(n, d))
        A.indices, A.indptr, A.data = np.asarray(indices), np.asarray(indptr), np.ones(len(indices))
        return A

    def coo(rows, cols):
        A = sp.coo_array((np.ones(3), (np.array([0, 1, 2]), np.array([0, 1, 2]))), shape=(n, d))
        A.coords = (np.asarray(rows), np.asarray(cols))
        return A

    CASES = {
        "index_out_of_range": (lambda: csr(indices=[0, 2, 1, 0, 3]), r"A\.indices \(CSR\) has entries outside \[0, 3\)"),
        "index_far_out_of_range": (lambda: csr(indices=[0, 2, 10**9, 0, 2]), r"outside \[0, 3\)"),
        "index_int64_huge": (lambda: csr(indices=[0, 2, 1, 0, 2**40], itype=np.int64), r"outside \[0, 3\)"),
        "index_negative": (lambda: csr(indices=[0, 2, -1, 0, 2]), r"outside \[0, 3\): min -1"),
        "indptr_non_monotone": (lambda: csr(indptr=[0, 3, 2, 4, 5]), r"A\.indptr \(CSR\) is not monotone"),
        "indptr_negative_step": (lambda: csr(indptr=[0, -2, 3, 4, 5]), r"A\.indptr \(CSR\) is not monotone"),
        "indptr_too_short": (lambda: csr(indptr=[0, 2, 3, 5]), r"A\.indptr \(CSR\) has 4 entries, expected 5"),
        "indptr_too_long": (lambda: csr(indptr=[0, 2, 3, 4, 5, 5]), r"A\.indptr \(CSR\) has 6 entries, expected 5"),
        "indptr_past_nnz": (lambda: csr(indptr=[0, 2, 3, 4, 9]), r"A\.indptr \(CSR\) ends at 9 but"),
        "indptr_not_from_zero": (lambda: csr(indptr=[1, 2, 3, 4, 5]), r"A\.indptr \(CSR\) must start at 0"),
        "data_too_short": (lambda: csr(values=np.ones(3)), r"indices/data hold only 3 entries"),
        "indices_float": (lambda: csr(indices=np.array([0, 2, 1, 0, 2.0])), r"A\.indices \(CSR\) must be integers"),
        "csr_matrix_out_of_range": (lambda: csr(indices=[0, 2, 1, 0, 7], cls=sp.csr_matrix), r"outside \[0, 3\)"),
        "csc_out_of_range": (lambda: csc([0, 1, 9, 3], [0, 2, 3, 4]), r"A\.indices \(CSC\) has entries outside \[0, 4\)"),
        "csc_indptr_non_monotone": (lambda: csc([0, 1, 2, 3], [0, 3, 2, 4]), r"A\.indptr \(CSC\) is not monotone"),
        "coo_row_out_of_range": (lambda: coo([0, 1, 9], [0, 1, 2]), r"A \(COO\) has row indices outside \[0, 4\)"),
        "coo_row_negative": (lambda: coo([0, -1, 2], [0, 1, 2]), r"A \(COO\) has row indices outside"),
        "coo_col_out_of_range": (lambda: coo([0, 1, 2], [0, 5, 2]), r"A \(COO\) has column indices outside \[0, 3\)"),
    }

    def use(A):
        """Everything that would read through A's structure if validation let it pass."""
        b = np.ones(n)
        prob = fn.ExpRegression(A, b, 1.0)
        fn.minimize(prob, method="exact", maxiter=2)
        fn.minimize(prob, method="sketch", maxiter=2)
        design = Design(A)
        design.matvec(np.ones(d)); design.rmatvec(np.ones(n))
        gram(design, DiagLowRank(np.ones(n)))
        CountSketch(2, n, seed=0).apply(A)

    results = {}
    for name in sys.argv[1:]:
        build, pattern = CASES[name]
        A = build()
        try:
            use(A)
            results[name] = "no error"
        except (ValueError, TypeError) as exc:
            msg = f"{type(exc).__name__}: {exc}"
            results[name] = "ok" if re.search(pattern, str(exc)) else "wrong message: " + msg
        except Exception as exc:
            results[name] = f"unexpected {type(exc).__name__}: {exc}"
    print("RESULTS " + json.dumps(results))
''')

BAD_STRUCTURES = [
    "index_out_of_range", "index_far_out_of_range", "index_int64_huge", "index_negative",
    "indptr_non_monotone", "indptr_negative_step",
    "indptr_too_short", "indptr_too_long", "indptr_past_nnz", "indptr_not_from_zero",
    "data_too_short", "indices_float", "csr_matrix_out_of_range", "csc_out_of_range",
    "csc_indptr_non_monotone", "coo_row_out_of_range", "coo_row_negative",
    "coo_col_out_of_range",
]


@pytest.fixture(scope="module")
def bad_structure_results():
    """Run every malformed-structure case in one child process; a crash fails them all."""
    import os

    env = dict(os.environ)  # the child imports the same fastnewton as this process
    root = os.path.dirname(os.path.dirname(os.path.abspath(fn.__file__)))
    env["PYTHONPATH"] = os.pathsep.join([root, env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-c", _SCRIPT, *BAD_STRUCTURES], capture_output=True,
                          text=True, timeout=300, env=env)
    assert proc.returncode == 0, (
        f"child exited with {proc.returncode} (negative: killed by a signal, e.g. a segfault)\n"
        f"stdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-2000:]}")
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULTS ")][-1]
    return json.loads(line[len("RESULTS "):])


@pytest.mark.parametrize("case", BAD_STRUCTURES)
def test_malformed_sparse_structure_is_rejected(bad_structure_results, case):
    assert bad_structure_results[case] == "ok"


def test_valid_hand_built_csr_is_accepted():
    """The control: the same hand-built arrays, well formed, solve fine."""
    A = sp.csr_array((np.arange(1.0, 6.0) / 10, np.array([0, 2, 1, 0, 2]),
                      np.array([0, 2, 3, 4, 5])), shape=(4, 3))
    res = fn.minimize(fn.ExpRegression(A, np.full(4, 0.5), 1.0), method="exact")
    assert res.success and np.isfinite(res.x).all()
