"""The worker's limit on glibc malloc arenas."""

from __future__ import annotations

import platform

import pytest

from streams.runtime.malloc_arenas import limit_malloc_arenas


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_glibc_takes_the_limit() -> None:
    assert limit_malloc_arenas(2) is True


def test_zero_leaves_the_allocator_alone() -> None:
    assert limit_malloc_arenas(0) is False
