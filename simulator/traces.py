"""Load VM utilisation traces (Bitbrains GWA-T-12, PlanetLab) onto one fixed time grid of CPU demand."""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from virtbalance.errors import ValidationError

GIB = 1024**3
KIB = 1024
DEFAULT_STEP = 300.0
BITBRAINS_COLUMNS = 11
# Bitbrains column positions (header: "Timestamp [ms];\tCPU cores;\t...").
_TS, _CORES, _CPU_PCT, _MEM_USED_KB = 0, 1, 4, 6
_MEM_PROVISIONED_KB = 5

MemoryBasis = Literal["used-max", "provisioned"]
MEMORY_BASES: tuple[MemoryBasis, ...] = ("used-max", "provisioned")


@dataclass(frozen=True)
class VmTrace:
    """One VM: its size and its CPU demand in cores, one value per step of the workload grid."""

    name: str
    vcpus: int
    memory_bytes: int
    cpu: array[float] = field(repr=False)
    # Memory in use per step (bytes), where the trace has it; None: ``memory_bytes`` throughout.
    memory: array[float] | None = field(default=None, repr=False)
    # The step at which the VM is deleted (it then holds no host); None: it runs to the end.
    end: int | None = None


@dataclass(frozen=True)
class Workload:
    """Every VM on the same grid: step ``i`` is at ``start + i * step`` seconds (unix time)."""

    start: float
    step: float
    vms: tuple[VmTrace, ...]
    skipped_lines: tuple[str, ...] = ()

    @property
    def steps(self) -> int:
        return len(self.vms[0].cpu) if self.vms else 0

    @property
    def days(self) -> float:
        return self.steps * self.step / 86400.0

    def limited(self, count: int | None) -> Workload:
        """The first ``count`` VMs (all when None)."""
        if count is None or count >= len(self.vms):
            return self
        return Workload(self.start, self.step, self.vms[:count], self.skipped_lines)

    def window(self, first: int, count: int) -> Workload:
        """Steps ``first`` to ``first + count - 1`` only (a week of a month, say)."""
        vms = tuple(
            VmTrace(
                vm.name,
                vm.vcpus,
                vm.memory_bytes,
                vm.cpu[first : first + count],
                None if vm.memory is None else vm.memory[first : first + count],
                None if vm.end is None or vm.end >= first + count else max(0, vm.end - first),
            )
            for vm in self.vms
        )
        return Workload(self.start + first * self.step, self.step, vms, self.skipped_lines)


@dataclass
class _RawSeries:
    name: str
    vcpus: int
    memory_bytes: int
    samples: list[tuple[float, float]]  # (unix seconds, cores)
    memory: list[float] | None = None  # bytes in use, one per sample (None: not in the trace)


def _natural_key(path: Path) -> tuple[int, str]:
    stem = path.stem
    # Numeric names sort as numbers (2.csv before 10.csv), the rest after them by name.
    return (int(stem), "") if stem.isdigit() else (1 << 62, stem)


def _trace_files(path: Path, pattern: str) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ValidationError(str(path), ["no such trace file or directory"])
    files = sorted((p for p in path.glob(pattern) if p.is_file()), key=_natural_key)
    if not files:
        raise ValidationError(str(path), [f"no trace files matching {pattern!r}"])
    return files


def _malformed(where: str, shown: str, exc: ValueError, strict: bool, skipped: list[str]) -> None:
    """A line that does not read (``shown``: how the error quotes it): an error when ``strict``,
    else skipped and noted in ``skipped``."""
    if strict:
        raise ValidationError(where, [f"malformed line{shown}: {exc}"]) from exc
    skipped.append(f"{where}: {exc}")


def _parse_bitbrains_file(
    path: Path, memory_basis: MemoryBasis, strict: bool, skipped: list[str]
) -> _RawSeries:
    samples: list[tuple[float, float]] = []
    used: list[float] = []
    vcpus = 0
    memory_kb = 0.0
    with path.open(encoding="utf-8", errors="replace") as handle:
        header = handle.readline()
        if not header.startswith("Timestamp"):
            raise ValidationError(
                f"{path}:1", [f"not a Bitbrains trace: header starts {header[:30]!r}"]
            )
        for number, line in enumerate(handle, start=2):
            if not line.strip():
                continue
            # The separator is ";\t"; splitting on ";" also accepts plain ";" (float() and int()
            # ignore the surrounding whitespace).
            parts = line.split(";")
            try:
                if len(parts) != BITBRAINS_COLUMNS:
                    raise ValueError(f"expected {BITBRAINS_COLUMNS} columns, got {len(parts)}")
                # "Timestamp [ms]" holds unix seconds in this trace, despite its name.
                stamp = float(parts[_TS])
                cores = int(float(parts[_CORES]))
                percent = float(parts[_CPU_PCT])
                used_kb = float(parts[_MEM_USED_KB])
                provisioned_kb = float(parts[_MEM_PROVISIONED_KB])
                values = (stamp, percent, used_kb, provisioned_kb)
                if not all(math.isfinite(v) for v in values) or min(values) < 0 or cores < 0:
                    raise ValueError("negative or non-finite value")
            except ValueError as exc:
                _malformed(f"{path}:{number}", "", exc, strict, skipped)
                continue
            vcpus = max(vcpus, cores)
            memory_kb = max(memory_kb, used_kb if memory_basis == "used-max" else provisioned_kb)
            samples.append((stamp, percent * cores / 100.0))
            used.append(used_kb * KIB if memory_basis == "used-max" else provisioned_kb * KIB)
    if not samples:
        raise ValidationError(str(path), ["no usable samples"])
    # Rows with 0 cores and all zeros are periods the VM reported nothing: they count as idle.
    vcpus = max(vcpus, 1)
    # Every VM needs a footprint to be placed and moved, even one that reported no memory: 1 GiB at least.
    memory_bytes = max(int(memory_kb * KIB), GIB)
    # The same floor per step: a migration copies at least that much.
    return _RawSeries(path.stem, vcpus, memory_bytes, samples, [max(u, GIB) for u in used])


def _grid(series: Sequence[_RawSeries], step: float, start: float | None) -> Workload:
    """Resample onto one grid: mean of the samples in each step, gaps hold the last value.

    Before its first sample a VM demands nothing (it is placed but idle), which keeps a trace that
    starts late from inventing load.
    """
    first = min(s.samples[0][0] for s in series) if start is None else start
    origin = math.floor(first / step) * step if start is None else first
    last = max(max(t for t, _ in s.samples) for s in series)
    count = int((last - origin) // step) + 1
    vms = []
    for raw in series:
        sums = [0.0] * count
        hits = [0] * count
        for stamp, cores in raw.samples:
            index = int((stamp - origin) // step)
            if 0 <= index < count:
                sums[index] += cores
                hits[index] += 1
        cpu = array("d", bytes(8 * count))
        current = 0.0
        for index in range(count):
            if hits[index]:
                current = sums[index] / hits[index]
            cpu[index] = current
        vms.append(
            VmTrace(
                raw.name, raw.vcpus, raw.memory_bytes, cpu, _memory_grid(raw, origin, step, count)
            )
        )
    return Workload(origin, step, tuple(vms))


def _memory_grid(raw: _RawSeries, origin: float, step: float, count: int) -> array[float] | None:
    """Memory in use on the grid: the mean per step, gaps hold the last value, the first value before it."""
    if raw.memory is None:
        return None
    sums = [0.0] * count
    hits = [0] * count
    for (stamp, _), used in zip(raw.samples, raw.memory, strict=True):
        index = int((stamp - origin) // step)
        if 0 <= index < count:
            sums[index] += used
            hits[index] += 1
    current = raw.memory[0]
    out = array("d", bytes(8 * count))
    for index in range(count):
        if hits[index]:
            current = sums[index] / hits[index]
        out[index] = current
    return out


def load_bitbrains(
    path: str | Path,
    *,
    limit: int | None = None,
    step: float = DEFAULT_STEP,
    memory_basis: MemoryBasis = "used-max",
    strict: bool = False,
) -> Workload:
    """Load a Bitbrains GWA-T-12 directory (``1.csv``, ``2.csv``, ...) or one file.

    CPU demand is ``CPU usage [%] * CPU cores / 100`` cores. A VM's memory footprint is the largest
    memory in use over the trace (``used-max``, what a live migration copies and a host must hold) or
    the provisioned memory. A malformed line raises an error naming file and line when ``strict``;
    otherwise it is skipped and listed in ``Workload.skipped_lines``.
    """
    files = _trace_files(Path(path), "*.csv")
    if limit:
        files = files[:limit]
    skipped: list[str] = []
    series = [_parse_bitbrains_file(f, memory_basis, strict, skipped) for f in files]
    workload = _grid(series, step, None)
    return Workload(workload.start, workload.step, workload.vms, tuple(skipped))


def load_planetlab(
    path: str | Path,
    *,
    limit: int | None = None,
    step: float = DEFAULT_STEP,
    vcpus: int = 1,
    memory_bytes: int = 2 * GIB,
    start: float = 0.0,
    strict: bool = False,
) -> Workload:
    """Load a PlanetLab day directory (one file per VM, one integer CPU percentage per line) or one file.

    The traces carry no sizes, so every VM gets ``vcpus`` and ``memory_bytes``; demand is
    ``percent * vcpus / 100`` cores. Lines are the steps, from ``start``.
    """
    files = _trace_files(Path(path), "*")
    if limit:
        files = files[:limit]
    skipped: list[str] = []
    vms = []
    length = 0
    for file in files:
        values = _parse_planetlab_file(file, vcpus, strict, skipped)
        length = max(length, len(values))
        vms.append((file.name, values))
    traces = []
    for name, values in vms:
        # Shorter files hold their last value, like gaps in Bitbrains.
        padded = values + [values[-1]] * (length - len(values))
        traces.append(VmTrace(name, vcpus, memory_bytes, array("d", padded)))
    return Workload(start, step, tuple(traces), tuple(skipped))


def _parse_planetlab_file(path: Path, vcpus: int, strict: bool, skipped: list[str]) -> list[float]:
    values: list[float] = []
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            text = line.strip()
            if not text:
                continue
            try:
                percent = int(text)
                if percent < 0:
                    raise ValueError(f"negative percentage {percent}")
            except ValueError as exc:
                _malformed(f"{path}:{number}", f" {text[:40]!r}", exc, strict, skipped)
                continue
            values.append(percent * vcpus / 100.0)
    if not values:
        raise ValidationError(str(path), ["no usable samples"])
    return values


def synthetic(
    start: float, step: float, vms: Iterable[tuple[str, int, int, Sequence[float]]]
) -> Workload:
    """A workload from in-memory series: (name, vcpus, memory_bytes, cores per step)."""
    traces = tuple(VmTrace(n, c, m, array("d", cpu)) for n, c, m, cpu in vms)
    lengths = {len(t.cpu) for t in traces}
    if len(lengths) > 1:
        raise ValidationError("workload", [f"series of different lengths: {sorted(lengths)}"])
    return Workload(start, step, traces)
