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
