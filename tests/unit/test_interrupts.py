"""Ctrl-C held to the end of a block that must not be cut (a commit and the counts of it)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from crm_renewals.connector.interrupts import deferred_interrupt


def _ctrl_c() -> None:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.05)  # Python runs the handler at its next check


def test_ctrl_c_inside_the_block_is_raised_when_the_block_ends():
    finished = False
    with pytest.raises(KeyboardInterrupt), deferred_interrupt():
        _ctrl_c()
        finished = True
    assert finished
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_block_without_ctrl_c_ends_normally_and_nested_blocks_hold_it_to_the_outer_end():
    with deferred_interrupt():
        pass
    steps = []
    with pytest.raises(KeyboardInterrupt), deferred_interrupt():
        with deferred_interrupt():
            _ctrl_c()
            steps.append("inner")
        steps.append("outer")
    assert steps == ["inner", "outer"]


def test_ctrl_c_is_not_held_where_it_does_not_mean_keyboard_interrupt():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with deferred_interrupt():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
