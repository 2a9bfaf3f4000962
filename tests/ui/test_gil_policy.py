"""ui/jobs/gil_policy.py: the switch interval while the app runs, and back as it was afterwards."""

from __future__ import annotations

import sys

from medcal_gui.ui.jobs.gil_policy import SWITCH_INTERVAL_S, GilPolicy


def test_install_sets_the_interval_and_uninstall_restores_it() -> None:
    before = sys.getswitchinterval()
    policy = GilPolicy()
    try:
        sys.setswitchinterval(0.005)
        assert policy.install() is policy
        assert abs(sys.getswitchinterval() - SWITCH_INTERVAL_S) < 1e-9
        policy.install()  # twice: still restores the interval found first
        policy.uninstall()
        assert abs(sys.getswitchinterval() - 0.005) < 1e-9
        policy.uninstall()  # twice: nothing more
        assert abs(sys.getswitchinterval() - 0.005) < 1e-9
    finally:
        sys.setswitchinterval(before)


def test_while_installed_no_thread_lowers_its_priority() -> None:
    """A thread at nice 19 holding the GIL when the kernel preempts it stalls the GUI thread behind the machine's
    other work: the output hash's thread lowers itself only outside the app (see gil_policy's docstring)."""
    from medcal_gui.quantize import output_hash

    assert output_hash.LOWER_PRIORITY
    policy = GilPolicy().install()
    try:
        assert not output_hash.LOWER_PRIORITY
    finally:
        policy.uninstall()
    assert output_hash.LOWER_PRIORITY
