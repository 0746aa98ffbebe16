"""One container's syscall series, kept as exposition text from one scrape to the next.

With every syscall of 200 containers a scrape has ~16k syscall samples: two thirds of all.
Between two scrapes most of them do not move (an idle container's not at all, a busy one's
only for the few calls it keeps making), so each line is kept with the value it shows and
written again only when that value changes; a container whose counters did not move at all
(the probe readings hand back the very same dict) costs one identity check.
"""
from __future__ import annotations

import heapq
from functools import partial
from typing import Callable

from prometheus_client.samples import Sample

from agent.metrics.text import TextMetric, label_text, value_text

CALLS = "corral_syscalls_total"
ERRORS = "corral_syscall_errors_total"

Counts = dict[int, tuple[int, int]]      # syscall nr -> (calls, errors)


def _samples(family: str, index: int, chosen: list[tuple[int, tuple[int, int]]],
             labels: dict[int, dict]) -> list[Sample]:
    return [Sample(family, labels[nr], value[index], None, None) for nr, value in chosen]


class SyscallText:
    """The text of one container's CALLS and ERRORS lines, and what they were made from.

    labels: syscall nr -> its label dict ({"name", "syscall"}), shared with the latency
        histogram of the same container; never changed once made.
    """

    def __init__(self, name: str, labels: dict[int, dict], top: int | None,
                 syscall_name: Callable[[int], str]) -> None:
        self._name = name
        self._labels = labels
        self._top = top
        self.top = top
        self._syscall_name = syscall_name
        self._counts: Counts | None = None
        self._chosen: list[tuple[int, tuple[int, int]]] = []
        self._prefixes: dict[int, tuple[str, str]] = {}
        self._lines: dict[int, tuple[tuple[int, int], str, str]] = {}
        self._calls_text = self._errors_text = ""

    def chosen(self, counts: Counts) -> list[tuple[int, tuple[int, int]]]:
        """The (nr, (calls, errors)) pairs shown for `counts`, updating the text if they moved."""
        if counts is not self._counts and counts != self._counts:
            self._update(counts)
        return self._chosen

    def add_to(self, calls_out: TextMetric | None, errors_out: TextMetric | None) -> None:
        """This container's chunk of each family (as of the last `chosen()`)."""
        chosen, labels = self._chosen, self._labels
        if calls_out is not None:
            calls_out.add_chunk(self._calls_text, partial(_samples, CALLS, 0, chosen, labels))
        if errors_out is not None:
            errors_out.add_chunk(self._errors_text, partial(_samples, ERRORS, 1, chosen, labels))

    def labels_of(self, nr: int) -> dict:
        labels = self._labels.get(nr)
        if labels is None:
            labels = self._labels[nr] = {"name": self._name, "syscall": self._syscall_name(nr)}
        return labels

    def _update(self, counts: Counts) -> None:
        if self._top is None:
            chosen = list(counts.items())
        else:
            chosen = heapq.nlargest(self._top, counts.items(), key=lambda item: item[1][0])
        old = self._lines
        lines: dict[int, tuple[tuple[int, int], str, str]] = {}
        calls_lines: list[str] = []
        errors_lines: list[str] = []
        for nr, value in chosen:
            line = old.get(nr)
            if line is None or line[0] != value:
                calls_prefix, errors_prefix = self._prefix(nr)
                line = (value, f"{calls_prefix}{value_text(value[0])}\n",
                        f"{errors_prefix}{value_text(value[1])}\n")
            lines[nr] = line
            calls_lines.append(line[1])
            errors_lines.append(line[2])
        self._lines = lines
        self._calls_text = "".join(calls_lines)
        self._errors_text = "".join(errors_lines)
        self._counts = counts
        self._chosen = chosen

    def _prefix(self, nr: int) -> tuple[str, str]:
        prefix = self._prefixes.get(nr)
        if prefix is None:
            text = label_text(self.labels_of(nr))
            prefix = self._prefixes[nr] = (f"{CALLS}{text} ", f"{ERRORS}{text} ")
        return prefix
