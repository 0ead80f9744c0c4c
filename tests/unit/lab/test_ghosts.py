"""Finding the domains libvirt lists with no QEMU behind them, from status files and command lines."""

from __future__ import annotations

from pathlib import Path

from virtbalance.lab.ghosts import ghost_names, qemu_guest, remove_status

STARTED = "<domstatus state='running' reason='migrated' pid='4242'>\n  <domain type='kvm'/>\n</domstatus>\n"
NEVER_STARTED = (
    "<domstatus state='paused' reason='starting up' pid='0'>\n"
    "  <job type='none' async='migration in' phase='prepare' flags='0x5b'/>\n"
    "</domstatus>\n"
)


def statuses(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / f"{name}.xml").write_text(text)
        (tmp_path / f"{name}.pid").write_text("0")
    return tmp_path


def test_a_status_with_pid_0_and_no_qemu_is_a_ghost_and_one_with_a_process_is_not(tmp_path):
    directory = statuses(tmp_path, {"app1": NEVER_STARTED, "web1": STARTED})
    assert ghost_names(directory, qemu_guests={"web1"}) == ["app1"]


def test_a_pid_0_status_whose_guest_has_a_qemu_is_left_alone(tmp_path):
    # a guest caught between its status file and its handshake: QEMU runs, so it is no ghost
    directory = statuses(tmp_path, {"app1": NEVER_STARTED})
    assert ghost_names(directory, qemu_guests={"app1"}) == []


def test_pid_values_that_merely_start_with_0_digits_elsewhere_do_not_count(tmp_path):
    directory = statuses(tmp_path, {"db1": STARTED.replace("4242", "10")})
    assert ghost_names(directory, qemu_guests=set()) == []


def test_removing_a_ghost_drops_its_status_and_pid_files_only(tmp_path):
    directory = statuses(tmp_path, {"app1": NEVER_STARTED, "web1": STARTED})
    remove_status(directory, "app1")
    assert sorted(p.name for p in directory.iterdir()) == ["web1.pid", "web1.xml"]


def test_the_guest_name_comes_from_a_qemu_command_line_only():
    qemu = b"/usr/bin/qemu-system-x86_64\0-name\0guest=app1,debug-threads=on\0-S\0"
    assert qemu_guest(qemu) == "app1"
    assert qemu_guest(b"/bin/sleep\0guest=app1,x\0") is None
    assert qemu_guest(b"/usr/bin/qemu-system-x86_64\0-M\0pc\0") is None
    assert qemu_guest(b"") is None
