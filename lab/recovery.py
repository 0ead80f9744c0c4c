"""Putting the lab's guests back after a test: on their scenario hosts, running once, no ghosts."""

from __future__ import annotations

import contextlib
from pathlib import Path

import libvirt

from virtbalance.chunks import ChunkMember, find_chunks
from virtbalance.lab import dial
from virtbalance.lab.errors import LabError
from virtbalance.lab.ghosts import ghost_names, qemu_guest, remove_status, status_dir
from virtbalance.lab.guests import LabGuests
from virtbalance.lab.system import start_time
from virtbalance.lab.teardown import namespace_pids


class LabRecovery(LabGuests):
    """Reset, repair and ghost clearing of the scenario's guests."""

    def reset(self) -> None:
        """Every scenario domain back on its scenario host (chunk by chunk) at its initial load."""
        running = self.running_hosts()
        duplicated = {n: h for n, h in running.items() if len(h) > 1 and n in self._scenario_names}
        if duplicated:
            raise LabError(f"cannot reset: domains running on several hosts: {duplicated}")
        for chunk in self._scenario_chunks():
            for name in chunk:
                spec = self.scenario.domain(name)
                hosts = running.get(name, [])
                if not hosts:
                    self._restart_guest(spec)
                elif hosts[0] != spec.host and spec.writable_disk:
                    # its disk holds nothing worth copying back: a fresh guest on its own host
                    self.connection(hosts[0]).lookupByName(name).destroy()
                    self._restart_guest(spec)
                elif hosts[0] != spec.host:
                    self.migrate(name, spec.host)
        for spec in self.scenario.domains:
            level = dial.level_for(spec.load)
            if self.guest_level(spec.name) != level:
                self._press(spec.name, spec.host, level)
        self._record_scenario_loads()

    def repair(self) -> list[str]:
        """Put a guest that does not run exactly once, running, anywhere, back as new on its host.

        For tests after a failure (a guest on two hosts, or paused by an interrupted migration): the lab's
        guests hold no state worth keeping, so every copy is destroyed and the guest starts again.
        Returns what was found, one line per guest repaired.
        """
        found = self.clear_ghosts()
        for spec in self.scenario.domains:
            copies = {}
            for host in self.hosts:
                try:
                    dom = self.connection(host.name).lookupByName(spec.name)
                except libvirt.libvirtError:
                    continue
                copies[host.name] = dom
            states = {}
            for h, d in copies.items():
                with contextlib.suppress(libvirt.libvirtError):  # a transient copy may vanish
                    if d.isActive():
                        states[h] = d.state()[0]
            if list(states.values()) == [libvirt.VIR_DOMAIN_RUNNING]:
                continue
            found.append(
                f"{spec.name}: active copies {states or 'none'}, defined on {sorted(copies)}"
            )
            for dom in copies.values():
                with contextlib.suppress(libvirt.libvirtError):
                    if dom.isActive():
                        dom.destroy()
            self._restart_guest(spec)
        return found

    def clear_ghosts(self) -> list[str]:
        """Remove the domains libvirt lists with no QEMU behind them (lab/ghosts.py), one line each.

        Only a guest with no QEMU process in the host's namespace is touched, so a running guest is
        never forgotten; the host's libvirtd is restarted around the removal, its guests keep running.
        """
        found: list[str] = []
        for host in self.hosts:
            pid = self._libvirtd_pids.get(host.name)
            if pid is None or start_time(pid) is None:
                continue
            ghosts = ghost_names(status_dir(pid), self.qemu_guests(host.name))
            if not ghosts:
                continue
            self.stop_libvirtd(host.name)
            holder = self._holder(host.name)
            if holder is None:  # stop_libvirtd keeps the namespaces in a holder first
                raise LabError(f"no process keeps the namespaces of {host.name} to clear {ghosts}")
            for name in ghosts:
                remove_status(status_dir(holder), name)
            self.start_libvirtd(host.name)
            found.extend(
                f"{name}: listed active on {host.name} with no QEMU (a libvirtd killed while "
                "starting it), its status removed"
                for name in ghosts
            )
        return found

    def qemu_guests(self, host: str) -> set[str]:
        """Names of the guests a QEMU process runs for in ``host``'s network namespace."""
        names = set()
        for pid in namespace_pids(self._layouts[host].netns):
            try:
                name = qemu_guest(Path(f"/proc/{pid}/cmdline").read_bytes())
            except OSError:  # the process ended meanwhile
                continue
            if name is not None:
                names.add(name)
        return names

    @property
    def _scenario_names(self) -> set[str]:
        return {d.name for d in self.scenario.domains}

    def _scenario_chunks(self) -> list[tuple[str, ...]]:
        """The scenario's chunks per scenario host, so members travel back one right after another."""
        chunks: list[tuple[str, ...]] = []
        for host in self.scenario.hosts:
            members = [
                ChunkMember(d.name, d.private_networks, d.group)
                for d in self.scenario.domains_on(host.name)
            ]
            chunks.extend(chunk.members for chunk in find_chunks(members))
        return chunks
