"""The libvirt helpers the lab and the actioner share: no printed errors, a kept connection's health."""

from __future__ import annotations

import libvirt
import pytest

from virtbalance.libvirt_client import is_alive, quiet_libvirt

TEST_DRIVER = "test:///default"  # libvirt's own test hypervisor: no daemon needed


class _Connection:
    def __init__(self, answer: int | None) -> None:
        self.answer = answer

    def isAlive(self) -> int:
        if self.answer is None:
            raise libvirt.libvirtError("the connection is closed")
        return self.answer


def test_a_kept_connection_is_alive_only_while_libvirt_says_so() -> None:
    assert is_alive(_Connection(1)) is True
    assert is_alive(_Connection(0)) is False
    assert is_alive(_Connection(None)) is False


def test_quieted_libvirt_raises_its_errors_without_printing_them(
    capfd: pytest.CaptureFixture[str],
) -> None:
    connection = libvirt.open(TEST_DRIVER)
    try:
        libvirt.registerErrorHandler(None, None)  # libvirt's own handler, which prints
        try:
            with pytest.raises(libvirt.libvirtError):
                connection.lookupByName("no-such-guest")
            assert "Domain not found" in capfd.readouterr().err
        finally:
            quiet_libvirt()
        with pytest.raises(libvirt.libvirtError):
            connection.lookupByName("no-such-guest")
        assert capfd.readouterr().err == ""
    finally:
        connection.close()
