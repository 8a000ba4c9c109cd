"""What a generated block of figures must keep on a machine whose CPU numerics differ from the one that
wrote it (tools/digits_readme.py runs this check when the numeric signatures differ).

Float rounding of another CPU vendor or instruction set changes trained weights in their last bits, and
training amplifies that: figures move by up to a few points, like a draw with another seed. What must
hold on any machine:

- the text around the figures: the same methods, architectures, checks, rows and image counts;
- every interval "x [lo, hi]" overlaps the block's interval at the same place;
- two intervals of one row that do not overlap in the block keep their order (orderings);
- a difference whose interval excludes zero in the block keeps the sign of its point estimate;
- a verdict does not turn into its opposite (holds <-> does not hold; inconclusive may become either);
- a figure without an interval stays within FIGURE_TOLERANCE points (a coarse check: sanity figures are
  also gated by the workflow itself).

Counts of corruptions on which a method is ahead or behind, and the corruptions they name, are not
checked here: they follow the intervals.
"""

from __future__ import annotations

import re

FIGURE_TOLERANCE = 5.0  # points; differences across vendors measured so far stayed within 2.5

NUMBER = r"[+-]?\d+\.\d+"
INTERVAL = re.compile(rf"({NUMBER}) \[({NUMBER}), ({NUMBER})\]")
VERDICT = re.compile(r"\b(holds|does not hold|is inconclusive|inconclusive)\b(?! on)")
# counts that move with the intervals: "ahead on 9", "behind on 4 (frost, ...)", "3 h / 0 i / 0 n"
COUNT = re.compile(r"\b(ahead|behind|inconclusive) on \d+( \([^)]*\))?|\d+ h / \d+ i / \d+ n")
FIGURE = re.compile(NUMBER)
OPPOSITE = {"holds": "does not hold", "does not hold": "holds"}


def _tokens(line: str) -> tuple[str, list[tuple]]:
    """The line with its figures masked, and the figures in order: ("interval", x, lo, hi),
    ("verdict", word) or ("figure", x)."""
    found: list[tuple[int, tuple]] = []

    def mask(pattern: re.Pattern, kind: str, text: str) -> str:
        def replace(match: re.Match) -> str:
            if kind == "interval":
                found.append((match.start(), ("interval", *(float(g) for g in match.groups()))))
            elif kind == "verdict":
                word = match[1]
                found.append((match.start(), ("verdict", "inconclusive" if "inconclusive" in word else word)))
            elif kind == "figure":
                found.append((match.start(), ("figure", float(match[0]))))
            return "\0" * len(match[0])  # same length: the positions of later matches stay comparable

        return pattern.sub(replace, text)

    text = mask(COUNT, "count", line)
    text = mask(INTERVAL, "interval", text)
    text = mask(VERDICT, "verdict", text)
    text = mask(FIGURE, "figure", text)
    skeleton = re.sub("\0+", "#", text)
    return skeleton, [token for _, token in sorted(found, key=lambda item: item[0])]


def _signed(line: str, value: float) -> bool:
    """Whether a figure of this line is a difference (printed with its sign)."""
    return f"{value:+.1f}" in line


def problems(block: str, generated: str) -> list[str]:
    """What the generated text breaks of the block's (empty: it keeps all of it)."""
    found = []
    block_lines, generated_lines = block.strip("\n").splitlines(), generated.strip("\n").splitlines()
    if len(block_lines) != len(generated_lines):
        return [f"{len(generated_lines)} lines where the block has {len(block_lines)}"]
    for number, (old, new) in enumerate(zip(block_lines, generated_lines), start=1):
        old_skeleton, old_tokens = _tokens(old)
        new_skeleton, new_tokens = _tokens(new)
        if old_skeleton != new_skeleton or [t[0] for t in old_tokens] != [t[0] for t in new_tokens]:
            found.append(f"line {number}: the text differs beyond its figures:\n  block: {old}\n  run:   {new}")
            continue
        intervals = []
        for a, b in zip(old_tokens, new_tokens):
            if a[0] == "interval":
                (x, lo, hi), (y, lo2, hi2) = a[1:], b[1:]
                intervals.append((a[1:], b[1:]))
                if hi2 < lo or lo2 > hi:
                    found.append(f"line {number}: {y} [{lo2}, {hi2}] does not overlap the block's {x} [{lo}, {hi}]")
                if _signed(old, x) and (lo > 0 or hi < 0) and (y > 0) != (x > 0):
                    found.append(f"line {number}: the difference {x:+} (interval excluding 0) became {y:+}")
            elif a[0] == "verdict" and OPPOSITE.get(a[1]) == b[1]:
                found.append(f"line {number}: the verdict '{a[1]}' became '{b[1]}'")
            elif a[0] == "figure" and abs(a[1] - b[1]) > FIGURE_TOLERANCE:
                found.append(f"line {number}: {b[1]} is more than {FIGURE_TOLERANCE:g} points from the block's {a[1]}")
        for i, (old_i, new_i) in enumerate(intervals):
            for old_j, new_j in intervals[i + 1 :]:
                if old_i[2] < old_j[1] and not new_i[0] < new_j[0]:  # i's interval wholly below j's
                    found.append(
                        f"line {number}: {new_i[0]} and {new_j[0]} lost the block's order {old_i[0]} < {old_j[0]}"
                    )
                if old_j[2] < old_i[1] and not new_j[0] < new_i[0]:
                    found.append(
                        f"line {number}: {new_i[0]} and {new_j[0]} lost the block's order {old_i[0]} > {old_j[0]}"
                    )
    return found
