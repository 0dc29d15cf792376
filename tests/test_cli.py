"""The fastnewton command line: generate -> solve -> resume, reports, logging, exit codes."""

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

import fastnewton as fn
from fastnewton import io as fio
from fastnewton.cli import main

N, D = 1500, 12
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def problem_dir(tmp_path, seed):
    assert main(["generate", "--n", str(N), "--d", str(D), "--seed", str(seed % 1000),
                 "--cond", "10", "--out-dir", str(tmp_path)]) == 0
    return tmp_path


def _direct(path, method, seed=0, maxiter=100):
    """The same problem solved through the library (the reference for the CLI)."""
    A = fio.load_array(path / "A.npz")
    b, w = np.load(path / "b.npy"), np.load(path / "w.npy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn.minimize(fn.ExpRegression(A, b, w), method=method, seed=seed, maxiter=maxiter)


def _seed(path):
    return json.loads((path / "job.json").read_text())["solver"]["seed"]


def _x(path):
    with np.load(path, allow_pickle=False) as npz:
        return npz["x"]


def test_generate_writes_the_seeded_problem(problem_dir, seed):
    data = fn.datasets.make_regression(N, D, cond=10, seed=seed % 1000)
    A = fio.load_array(problem_dir / "A.npz")
    np.testing.assert_array_equal(A.toarray(), data.A.toarray())
    for key in ("b", "w", "x_true"):
        np.testing.assert_array_equal(np.load(problem_dir / f"{key}.npy"), getattr(data, key))
    job = json.loads((problem_dir / "job.json").read_text())
    assert job["problem"] == "exp" and job["params"]["A"] == "A.npz"


@pytest.mark.parametrize("method", ["exact", "sketch"])
def test_solve_matches_library_and_writes_report(problem_dir, capsys, method):
    out, rep = problem_dir / "r.npz", problem_dir / "r.json"
    code = main(["solve", "--job", str(problem_dir / "job.json"), "--method", method,
                 "--seed", "0", "--out", str(out), "--report", str(rep), "--threads", "1"])
    ref = _direct(problem_dir, method)
    assert code == (0 if ref.success else 1)
    np.testing.assert_array_equal(_x(out), ref.x)  # bitwise: same data, method and seed
    report = json.loads(rep.read_text())
    assert report["result"]["nit"] == ref.nit and report["result"]["success"] == ref.success
    assert len(report["history"]["fun"]) == ref.nit + 1
    assert report["history"]["fun"] == pytest.approx(list(ref.history["fun"]), rel=0, abs=0)
    for key in ("A", "b", "w"):
        path = problem_dir / os.path.basename(report["inputs"][key]["path"])
        assert report["inputs"][key]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert report["out"]["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert report["versions"]["numpy"] == np.__version__
    assert report["command"][:2] == ["fastnewton", "solve"] and "--report" in report["command"]
    assert report["threads"]["requested"] == 1 and report["threads"]["numba"] == 1
    assert set(report["timings"]) >= {"total", "factor", "line_search"}
    lines = capsys.readouterr().out.splitlines()
    assert sum(line.startswith("step ") for line in lines) == ref.nit


@pytest.mark.parametrize("fmt", ["mtx", "svmlight"])
def test_other_input_formats_give_the_same_answer(tmp_path, problem_dir, fmt):
    other = tmp_path / fmt
    assert main(["generate", "--n", str(N), "--d", str(D), "--seed", str(_seed(problem_dir)),
                 "--cond", "10", "--format", fmt, "--out-dir", str(other)]) == 0
    args = ["solve", "--method", "exact", "--w", str(other / "w.npy"), "--out", str(other / "r.npz")]
    suffix = ".mtx" if fmt == "mtx" else ".svm"
    args += ["--A", str(other / ("A" + suffix))]
    if fmt == "mtx":
        args += ["--b", str(other / "b.npy")]  # svmlight: b defaults to the file's labels
    assert main(args + ["--quiet"]) == 0
    np.testing.assert_array_equal(_x(other / "r.npz"), _direct(problem_dir, "exact").x)


def test_param_flags_and_toml_job(problem_dir, capsys):
    out1, out2 = problem_dir / "p.npz", problem_dir / "t.npz"
    code = main(["solve", "--param", f"A={problem_dir / 'A.npz'}", "--param",
                 f"b={problem_dir / 'b.npy'}", "--param", "w=6", "--param", "lam=0.01",
                 "--method", "exact", "--out", str(out1), "--quiet"])
    assert code == 0
    (problem_dir / "job.toml").write_text(
        'problem = "exp"\n[params]\nA = "A.npz"\nb = "b.npy"\nw = 6\nlam = 0.01\n'
        '[solver]\nmethod = "exact"\n')
    assert main(["solve", "--job", str(problem_dir / "job.toml"), "--out", str(out2), "--quiet"]) == 0
    A = fio.load_array(problem_dir / "A.npz")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fn.NonConvexWarning)
        ref = fn.minimize(fn.ExpRegression(A, np.load(problem_dir / "b.npy"), 6.0, lam=0.01),
                          method="exact")
    np.testing.assert_array_equal(_x(out1), ref.x)
    np.testing.assert_array_equal(_x(out2), ref.x)
    assert capsys.readouterr().out == ""  # --quiet


def test_not_converged_exits_1_and_still_writes(problem_dir, capsys):
    out = problem_dir / "r.npz"
    code = main(["solve", "--job", str(problem_dir / "job.json"), "--method", "sketch",
                 "--maxiter", "2", "--out", str(out), "--log-format", "json"])
    assert code == 1
    with np.load(out) as npz:
        assert int(npz["nit"]) == 2 and not bool(npz["success"]) and np.isfinite(npz["x"]).all()
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done" and kinds.count("step") == 2
    assert "warning" in kinds  # the ConvergenceWarning, as a log event
    assert events[-1]["exit_code"] == 1


def test_progress_bar_only_on_a_terminal(problem_dir, monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    for stream, expect in ((Tty(), True), (io.StringIO(), False)):
        monkeypatch.setattr(sys, "stdout", stream)
        main(["solve", "--job", str(problem_dir / "job.json"), "--method", "exact",
              "--out", str(problem_dir / "r.npz")])
        assert ("[#" in stream.getvalue()) == expect
        assert stream.getvalue().count("step ") >= 2


@pytest.mark.parametrize("method", ["exact", "sketch"])
def test_resume_reaches_bitwise_the_same_x(problem_dir, method):
    ck, out = problem_dir / "ck.npz", problem_dir / "r.npz"
    base = ["solve", "--job", str(problem_dir / "job.json"), "--method", method, "--quiet",
            "--checkpoint", str(ck), "--out", str(out)]
    assert main(base + ["--maxiter", "2"]) == 1
    assert fio.load_checkpoint(ck, _fingerprint(ck)).nit == 2
    main(base + ["--resume"])
    ref = _direct(problem_dir, method, seed=_seed(problem_dir))
    np.testing.assert_array_equal(_x(out), ref.x)
    with np.load(out) as npz:
        assert int(npz["nit"]) == ref.nit
        np.testing.assert_array_equal(npz["history_fun"], ref.history["fun"])


def _fingerprint(ck):
    with np.load(ck) as npz:
        return str(npz["fingerprint"])


def test_sigkill_mid_run_then_resume(problem_dir):
    """generate -> solve --checkpoint killed by SIGKILL -> solve --resume == uninterrupted."""
    ref = _direct(problem_dir, "sketch", seed=_seed(problem_dir))
    assert ref.nit >= 4  # enough steps left to kill the run in the middle
    ck, out = problem_dir / "ck.npz", problem_dir / "killed.npz"
    cmd = [sys.executable, "-m", "fastnewton.cli", "solve", "--job", str(problem_dir / "job.json"),
           "--method", "sketch", "--checkpoint", str(ck), "--out", str(out)]
    env = dict(os.environ, PYTHONPATH=REPO, FASTNEWTON_TEST_SLEEP_PER_STEP="0.4")
    proc = subprocess.Popen(cmd + ["--quiet"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    nit = 0
    try:
        while nit < 2:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "solver made no progress"
            time.sleep(0.05)
            if ck.exists():
                nit = fio.load_checkpoint(ck, _fingerprint(ck)).nit  # never torn
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()  # killed before the end: no (partial) output
    state = fio.load_checkpoint(ck, _fingerprint(ck))
    assert 2 <= state.nit < ref.nit
    env["FASTNEWTON_TEST_SLEEP_PER_STEP"] = "0"
    resumed = subprocess.run(cmd + ["--resume", "--log-format", "json"], env=env,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == (0 if ref.success else 1), resumed.stderr
    events = [json.loads(line) for line in resumed.stdout.splitlines()]
    assert events[0]["event"] == "start" and events[0]["resumed_from"] == state.nit
    assert [e["nit"] for e in events if e["event"] == "step"] == list(range(state.nit + 1, ref.nit + 1))
    np.testing.assert_array_equal(_x(out), ref.x)


def test_solve_help_documents_every_option(capsys):
    from fastnewton.cli import _build_parser

    parser = _build_parser()
    solve = parser._subparsers._group_actions[0].choices["solve"]
    with pytest.raises(SystemExit) as exc:
        main(["solve", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for action in solve._actions:
        for opt in action.option_strings:
            assert opt in text
        if action.option_strings and action.help is not None:
            assert action.help.split()[0] in text
    for word in ("Exit codes", "--job", "--resume", "--log-format", "svmlight"):
        assert word in text


def test_info_and_small_demo_still_work(capsys):
    assert main(["info"]) == 0
    text = capsys.readouterr().out
    assert "numba threads" in text and "threading layer" in text and "numba cache dir" in text
    assert main(["demo", "--n", "3000", "--d", "8", "--method", "exact", "--threads", "1"]) == 0
    assert "result: success=True" in capsys.readouterr().out


def test_x0_file_is_used_and_fingerprinted(problem_dir):
    ref0 = _direct(problem_dir, "exact")
    x0 = 0.5 * ref0.x
    np.save(problem_dir / "x0.npy", x0)
    out, ck = problem_dir / "r.npz", problem_dir / "ck.npz"
    args = ["solve", "--job", str(problem_dir / "job.json"), "--method", "exact", "--quiet",
            "--out", str(out), "--checkpoint", str(ck)]
    assert main(args + ["--x0", str(problem_dir / "x0.npy")]) == 0
    A = fio.load_array(problem_dir / "A.npz")
    ref = fn.minimize(fn.ExpRegression(A, np.load(problem_dir / "b.npy"), np.load(problem_dir / "w.npy")),
                      x0, method="exact")
    np.testing.assert_array_equal(_x(out), ref.x)
    with np.load(out) as npz:
        assert int(npz["nit"]) == ref.nit
    # the same checkpoint is refused for a run from another start
    assert main(args + ["--resume"]) == 2


def test_generated_job_solves_as_it_is(problem_dir, capsys):
    """``fastnewton solve --job DIR/job.json``, as ``generate`` advertises: the job names
    its output (DIR/x.npz)."""
    assert main(["solve", "--job", str(problem_dir / "job.json"), "--quiet"]) == 0
    assert np.allclose(_x(problem_dir / "x.npz"), _direct(problem_dir, "auto").x, rtol=1e-6,
                       atol=1e-9)


def test_output_paths_are_checked_before_the_solve(problem_dir, capsys):
    job = str(problem_dir / "job.json")
    assert main(["solve", "--job", job, "--out", str(problem_dir / "x.txt"), "--quiet"]) == 2
    assert "--out must name a .npz file" in capsys.readouterr().err
    if os.path.isdir("/proc/self"):  # exists and passes os.access for root, yet refuses files
        assert main(["solve", "--job", job, "--out", "/proc/x.npz", "--quiet"]) == 2
        assert "--out: directory '/proc' is not writable" in capsys.readouterr().err


def test_missing_glm_target_names_a_flag_that_exists(problem_dir, capsys):
    code = main(["solve", "--problem", "glm", "--A", str(problem_dir / "A.npz"), "--out",
                 str(problem_dir / "g.npz"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "needs y (give --param y=VALUE" in err and "--y" not in err
