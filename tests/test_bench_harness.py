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
