"""The suite's own scheduling assumption: ``--dist loadgroup`` keeps each xdist group on one worker.

scripts/test.sh runs pytest-xdist workers (cores + 1) and groups tests (conftest.xdist_groups): the SLURM tests
share one cluster and one time-limit wait, the tests on ``rigorous`` share its UMAP compilation, and tests
of a module fixture build it once. With pytest 9.2, pytest-xdist 3.8 stops grouping without a word
(pytest-dev/pytest-xdist#1386): nothing fails, the suite only gets slower. This test runs a tiny session
the way scripts/test.sh does and fails when a group is split.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.no_data

TESTS = '''
import time
import pytest

@pytest.mark.xdist_group("one")
@pytest.mark.parametrize("i", range(4))
def test_grouped(i):
    time.sleep(0.2)

@pytest.mark.parametrize("i", range(4))
def test_free(i):
    time.sleep(0.2)
'''


def test_loadgroup_keeps_a_group_on_one_worker(tmp_path):
    (tmp_path / "test_tiny.py").write_text(TESTS)
    got = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-vv", "-p", "no:cacheprovider",
                          "-p", "no:randomly", "--rootdir", str(tmp_path), str(tmp_path / "test_tiny.py")],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert got.returncode == 0, got.stdout[-3000:] + got.stderr[-3000:]
    ran = re.findall(r"^\[(gw\d)\] .*PASSED \S*::(test_\w+)\[", got.stdout, re.M)
    assert len(ran) == 8, got.stdout[-3000:]
    workers = {w for w, name in ran if name == "test_grouped"}
    assert len(workers) == 1, f"the group 'one' ran on {sorted(workers)}: --dist loadgroup does not group ({got.stdout[-2000:]})"
