"""The benchmark harness's own plumbing, which CI otherwise meets only at its last step."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_harness_reads_the_worker_count_from_gunicorn_conf(tmp_path: Path) -> None:
    # `python bench/run.py` puts bench/, not the project, on sys.path; gunicorn.conf.py imports
    # webapp, so reading it must not depend on where the harness runs from (CI failed on this).
    env = {k: v for k, v in os.environ.items() if k != "WEB_CONCURRENCY"}
    bench = str(ROOT / "bench")
    code = f"import sys; sys.path.insert(0, {bench!r}); import run; print(run.default_workers())"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) >= 2


def _harness():
    """bench/run.py, imported as `python bench/run.py` would find its neighbours."""
    bench = str(Path(__file__).resolve().parents[1] / "bench")
    if bench not in sys.path:
        sys.path.insert(0, bench)
    import run  # bench/ is not a package: found through sys.path

    return run


def test_cpu_of_a_worker_recycled_during_a_row_counts_only_its_share():
    """gunicorn recycles a worker (max_requests) mid-row: reaping adds its whole life's CPU to
    the master's children; only what it spent after the first snapshot belongs to the row."""
    before = {"reaped workers": 10.0, "worker 11": 40.0, "worker 12": 5.0, "postgres 7": 1.0}
    # Worker 11 used 0.5 s more, then was reaped (40.5 s into "reaped workers"); worker 13
    # replaced it and used 0.25 s; worker 12 used 1 s; the backend 0.5 s.
    after = {"reaped workers": 50.5, "worker 12": 6.0, "worker 13": 0.25, "postgres 7": 1.5}
    assert _harness().cpu_used(before, after) == 0.5 + 0.25 + 1.0 + 0.5
