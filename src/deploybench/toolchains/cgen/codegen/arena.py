"""Static activation arena: one offset per buffer, reused once a tensor is dead."""

from __future__ import annotations

from dataclasses import dataclass

from deploybench.toolchains.cgen.codegen.program import Program

ALIGNMENT = 8


@dataclass(frozen=True)
class ArenaPlan:
    """Byte offsets of every arena buffer (aliases share their root's offset) and the total.
    ``caller`` maps the tensors that live in the caller's buffers to ``"input"`` or
    ``"output"``."""

    offsets: dict[str, int]
    caller: dict[str, str]
    total_bytes: int


def plan_arena(program: Program) -> ArenaPlan:
    """Greedy first-fit by decreasing size over tensor lifetimes (step indices): two buffers may
    share bytes only when their lifetimes do not overlap. The model input stays in the caller's
    buffer and the output is computed straight into the caller's output buffer. Elementwise
    steps write over their input when that input dies there."""
    root: dict[str, str] = {name: name for name in program.buffers}
    for step in program.steps:
        if step.alias:
            root[step.output] = root[step.inputs[0]]
    _share_in_place(program, root)
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for index, step in enumerate(program.steps):
        for name in step.inputs:
            last[root[name]] = max(last.get(root[name], index), index)
        out = root[step.output]
        first.setdefault(out, index)
        last[out] = max(last.get(out, index), index)
    input_root, output_root = root[program.input_name], root[program.output_name]
    caller = {n: "input" for n in program.buffers if root[n] == input_root}
    if output_root != input_root:
        caller.update({n: "output" for n in program.buffers if root[n] == output_root})
    roots = sorted(
        {r for r in root.values() if r not in caller and r in first},
        key=lambda r: (-program.buffers[r].nbytes, first[r]),
    )
    placed: list[tuple[int, int, int, int]] = []  # offset, size, first, last
    offsets: dict[str, int] = {}
    for name in roots:
        size = _aligned(program.buffers[name].nbytes)
        offset = _first_fit(size, first[name], last[name], placed)
        placed.append((offset, size, first[name], last[name]))
        offsets[name] = offset
    total = max((offset + size for offset, size, _, _ in placed), default=0)
    all_offsets = {n: offsets[root[n]] for n in program.buffers if root[n] in offsets}
    return ArenaPlan(all_offsets, caller, total)


def _share_in_place(program: Program, root: dict[str, str]) -> None:
    """Map an in-place-capable step's output onto its first input's root when this step is
    that input's last reader and the two have the same size and type."""
    for index, step in enumerate(program.steps):
        if not step.in_place:
            continue
        # The caller's input is read-only and the model output must survive to the end.
        protected = {root[program.input_name], root[program.output_name]}
        source, target = root[step.inputs[0]], root[step.output]
        src, out = program.buffers[source], program.buffers[target]
        if source in protected or (src.nbytes, src.ctype) != (out.nbytes, out.ctype):
            continue
        readers = [
            i
            for i, other in enumerate(program.steps)
            if any(root[n] == source for n in other.inputs)
        ]
        if max(readers) != index:
            continue
        for name, current in root.items():
            if current == target:
                root[name] = source


def _first_fit(size: int, start: int, stop: int, placed: list[tuple[int, int, int, int]]) -> int:
    """Lowest aligned offset where ``size`` bytes clash with no buffer alive at the same time."""
    offset = 0
    moved = True
    while moved:
        moved = False
        for other_offset, other_size, other_first, other_last in placed:
            if stop < other_first or other_last < start:
                continue
            if offset < other_offset + other_size and other_offset < offset + size:
                offset = _aligned(other_offset + other_size)
                moved = True
    return offset


def _aligned(value: int) -> int:
    return (value + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT
