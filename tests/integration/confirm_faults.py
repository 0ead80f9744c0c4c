"""Faults in libvirt's migration protocol made on purpose: a Confirm that never reaches the source."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator

import libvirt

# libvirt's RPC program, its version and the procedure of Confirm (phase 3, typed parameters), as read
# off the wire with libvirt 9.0: a client-driven migrate3 sends 302 (Begin), 305 (Perform) and 307
# (Confirm) to the source
REMOTE_PROGRAM, REMOTE_VERSION, PROC_MIGRATE_CONFIRM3_PARAMS = 0x20008086, 1, 307


@contextlib.contextmanager
def confirm_never_arrives(address: str) -> Iterator[None]:
    """Drop every Confirm call sent to ``address``'s libvirtd; every other call goes through.

    The RPC header is matched anywhere in a segment, not only at its start: the actioner's progress
    polls share the connection, and TCP may pack one of them into the same segment as the Confirm.
    """
    header = f"{REMOTE_PROGRAM:08x}{REMOTE_VERSION:08x}{PROC_MIGRATE_CONFIRM3_PARAMS:08x}"
    rule = ["OUTPUT", "-p", "tcp", "-d", address, "--dport", "16509", "-m", "string"]
    rule += ["--algo", "kmp", "--hex-string", f"|{header}|", "-j", "DROP"]
    subprocess.run(["iptables", "-I", *rule], check=True)
    try:
        yield
    finally:
        subprocess.run(["iptables", "-D", *rule], check=False)


def ports_to(pid: int, address: str) -> list[int]:
    """Local ports of ``pid``'s TCP connections to ``address``'s libvirtd."""
    out = subprocess.run(
        ["ss", "-Htnp", "state", "established", "dst", f"{address}:16509"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # with a state filter the columns are: Recv-Q Send-Q Local:Port Peer:Port Process
    return [
        int(line.split()[2].rsplit(":", 1)[1]) for line in out.splitlines() if f"pid={pid}," in line
    ]


def reset_connections(ports: list[int], address: str) -> None:
    """Reset what is left of a killed process's connections to ``address``'s libvirtd.

    Its kernel keeps the sockets until their queued data (the held Confirm) is delivered, and the
    actioner runs no libvirt keepalive, so the source would wait for minutes; a reset carries no
    data, so the Confirm stays undelivered.
    """
    for port in ports:
        subprocess.run(
            ["ss", "-K", "dst", f"{address}:16509", "sport", "=", f":{port}"],
            capture_output=True,
            check=False,
        )


def copy_of(lab, host: str, domain: str) -> tuple[int, int, bool, bool] | None:
    """(state, reason, active, persistent) of ``domain`` on ``host``, None when it is not there."""
    try:
        dom = lab.connection(host).lookupByName(domain)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return None
        raise
    state, reason = dom.state()
    return state, reason, bool(dom.isActive()), bool(dom.isPersistent())
