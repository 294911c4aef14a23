"""Worst-case stack depth from GCC's ``-fstack-usage`` (.su) and ``-fcallgraph-info=su`` (.ci).

Each ``.ci`` file is a VCG graph: one node per function defined in the unit (its label carries
the frame size, e.g. ``48 bytes (static)``), one ellipse node per function only called, and one
edge per call. Merging all units of a build gives the program's call graph minus the libraries:
newlib, libgcc and libm are prebuilt without ``.su``/``.ci``, so their frames are *not* counted
(the report lists them in ``uncounted``). Recursion, indirect calls and dynamically sized frames
make the depth unbounded; they are reported in ``unbounded`` and the figure covers the rest.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from deploybench.targets.embedded.compile import FirmwareBuild

DEFAULT_ROOTS = ("Reset_Handler", "main")

_NODE = re.compile(r'^node: \{ title: "(?P<title>[^"]+)" label: "(?P<label>[^"]*)"(?P<rest>.*)\}')
_EDGE = re.compile(r'^edge: \{ sourcename: "(?P<src>[^"]+)" targetname: "(?P<dst>[^"]+)"')
_FRAME = re.compile(r"\\n(?P<bytes>\d+) bytes \((?P<kind>[a-z,]+)\)")
_SU_LINE = re.compile(r"^(?P<where>.*):(?P<name>[^:\t]+)\t(?P<bytes>\d+)\t(?P<kind>[a-z,]+)")
_INDIRECT = "__indirect_call"


@dataclass(frozen=True)
class StackReport:
    """Deepest stack found from the roots, with the call path that reaches it.

    ``bytes`` sums the frames along ``path`` (root first). ``unbounded`` names what makes the
    true worst case unknowable statically (recursion, indirect calls, dynamic frames);
    ``uncounted`` the called functions without stack information (library code).
    """

    bytes: int
    path: list[str]
    unbounded: list[str] = field(default_factory=list)
    uncounted: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class _Graph:
    frames: dict[str, tuple[int, str]] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    calls: dict[str, list[str]] = field(default_factory=dict)


def _read_callgraphs(files: Iterable[Path]) -> _Graph:
    graph = _Graph()
    for path in files:
        for line in path.read_text(errors="replace").splitlines():
            node = _NODE.match(line)
            if node:
                title = node["title"]
                graph.names.setdefault(title, node["label"].split("\\n", 1)[0])
                frame = _FRAME.search(node["label"])
                if frame:
                    graph.frames[title] = (int(frame["bytes"]), frame["kind"])
                continue
            edge = _EDGE.match(line)
            if edge:
                targets = graph.calls.setdefault(edge["src"], [])
                if edge["dst"] not in targets:
                    targets.append(edge["dst"])
    return graph


def _read_stack_usage(files: Iterable[Path], graph: _Graph) -> None:
    """Fill frames the call graph lacks (e.g. a unit compiled without -fcallgraph-info)."""
    for path in files:
        for line in path.read_text(errors="replace").splitlines():
            match = _SU_LINE.match(line)
            if match and match["name"] not in graph.frames:
                graph.frames[match["name"]] = (int(match["bytes"]), match["kind"])


class _Walker:
    def __init__(self, graph: _Graph) -> None:
        self.graph = graph
        self.memo: dict[str, tuple[int, list[str]]] = {}
        self.unbounded: set[str] = set()
        self.uncounted: set[str] = set()

    def deepest(self, title: str, active: tuple[str, ...]) -> tuple[int, list[str]]:
        name = self.graph.names.get(title, title)
        if title in active:
            cycle = " -> ".join(self.graph.names.get(t, t) for t in (*active, title))
            self.unbounded.add(f"recursion: {cycle}")
            return 0, []
        if title in self.memo:
            return self.memo[title]
        if title == _INDIRECT:
            caller = self.graph.names.get(active[-1], active[-1]) if active else "?"
            self.unbounded.add(f"indirect call in {caller}")
            return 0, []
        frame = self.graph.frames.get(title)
        if frame is None:
            self.uncounted.add(name)
            own = 0
        else:
            own, kind = frame
            if kind == "dynamic":
                self.unbounded.add(f"dynamic stack frame in {name}")
        best_depth = 0
        best_path: list[str] = []
        for callee in self.graph.calls.get(title, []):
            depth, path = self.deepest(callee, (*active, title))
            if depth > best_depth or (depth == best_depth and len(path) > len(best_path)):
                best_depth, best_path = depth, path
        result = (own + best_depth, [name, *best_path])
        self.memo[title] = result
        return result


def worst_stack(build: FirmwareBuild, roots: Iterable[str] = DEFAULT_ROOTS) -> StackReport:
    """Worst-case stack bytes from the first of ``roots`` present (Reset_Handler, then main).

    Exception entry frames (32 bytes, 104 with FP context) and library frames are not
    included; see :class:`StackReport`.
    """
    graph = _read_callgraphs(build.callgraph_files)
    _read_stack_usage(build.stack_usage_files, graph)
    present = [root for root in roots if root in graph.frames]
    notes = [
        "library functions (newlib, libgcc, libm) have no .su/.ci and are counted as 0 bytes",
        "exception entry frames (32 bytes, 104 with lazy FP state) are not included",
    ]
    if not present:
        return StackReport(bytes=0, path=[], notes=[*notes, "no root function found"])
    walker = _Walker(graph)
    depth, path = max((walker.deepest(root, ()) for root in present), key=lambda item: item[0])
    return StackReport(
        bytes=depth,
        path=path,
        unbounded=sorted(walker.unbounded),
        uncounted=sorted(walker.uncounted),
        notes=notes,
    )
