"""Fixtures that make tests cheaper without changing what they check.

``one_thread``: torch on one thread for the test, in this process and in the processes it starts
(``OMP_NUM_THREADS``). At the suite's tiny sizes (64 px translators of 8 channels) an operation takes
microseconds, and a second OpenMP thread mostly waits at barriers; when the 2-core machine has any other
work, the waiting thread spins while the working one is descheduled. Measured (AMD EPYC, 2 cores, load
about 7): 12 training steps 49 s on two threads and 9 s on one; 120 generated images 35 s and 9 s.
Only for tests whose compared results are all made under it (CPU float sums depend on the thread count).

``one_thread_per_job``: the same for a whole module (autouse where imported), set before its module
fixtures run: the launcher tests compare a serial run made by a module fixture with jobs that run two at
once, and two jobs of two threads each on 2 cores wait on each other even on an idle machine.
"""

from __future__ import annotations

from contextlib import contextmanager

import pytest
import torch


@pytest.fixture
def one_thread():
    with _one_thread():
        yield


@pytest.fixture(scope="module", autouse=True)
def one_thread_per_job():
    with _one_thread():
        yield


@contextmanager
def _one_thread():
    before = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OMP_NUM_THREADS", "1")
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(before)
