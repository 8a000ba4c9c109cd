"""The numeric signature of a machine and the structural check of generated figures run where it differs
(tools/figure_check.py, tools/digits_readme.py)."""

import os
import subprocess
import sys
from pathlib import Path

from sda_core.provenance import numeric_signature

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from figure_check import problems  # noqa: E402

BLOCK = """Mean top-1 (%), 540 held-out images each:

| arch | Source | DDA | SDA |
|---|---|---|---|
| resnet10t | 41.3 [40.5, 42.2] | 45.7 [44.9, 46.5] | 47.6 [46.8, 48.4] |

| claim | resnet10t |
|---|---|
| SDA - DDA > 0 | +1.9 [+1.5, +2.3]: **holds** |
| f' beats f near t = 700 | -0.7 [-2.7, +1.2]: **inconclusive** |

- resnet10t: ahead on 9, behind on 1 (frost), inconclusive on 5.
| source on clean test (gate: >= 95%) | 99.3 |"""


def changed(old: str, new: str) -> list[str]:
    assert old in BLOCK
    return problems(BLOCK, BLOCK.replace(old, new))


def test_the_same_figures_or_figures_moved_within_their_intervals_pass():
    assert problems(BLOCK, BLOCK) == []
    moved = (
        BLOCK.replace("41.3 [40.5, 42.2]", "42.0 [41.1, 42.8]")
        .replace("+1.9 [+1.5, +2.3]", "+1.4 [+1.0, +1.8]")
        .replace("ahead on 9, behind on 1 (frost)", "ahead on 8, behind on 2 (frost, fog)")
        .replace("| 99.3 |", "| 98.1 |")
        .replace("**inconclusive**", "**holds**")
    )
    assert problems(BLOCK, moved) == []


def test_an_interval_that_no_longer_overlaps_fails():
    found = changed("45.7 [44.9, 46.5]", "43.0 [42.2, 43.8]")
    assert any("does not overlap" in problem for problem in found)


def test_a_verdict_turned_into_its_opposite_fails():
    assert any("verdict" in p for p in changed("+1.9 [+1.5, +2.3]: **holds**", "+1.9 [+1.5, +2.3]: **does not hold**"))


def test_a_difference_whose_interval_excluded_zero_must_keep_its_sign():
    found = changed("+1.9 [+1.5, +2.3]", "-0.1 [-0.6, +1.6]")
    assert any("became -0.1" in problem for problem in found)


def test_separated_intervals_keep_their_order():
    # Source below SDA with room to spare in the block; both still overlap their own old intervals
    found = changed(
        "| 41.3 [40.5, 42.2] | 45.7 [44.9, 46.5] | 47.6 [46.8, 48.4] |",
        "| 42.3 [41.5, 43.2] | 45.7 [44.9, 46.5] | 42.0 [41.2, 47.0] |",
    )
    assert any("lost the block's order" in problem for problem in found)


def test_text_beyond_the_figures_and_far_figures_fail():
    assert any(
        "beyond its figures" in p for p in changed("| arch | Source | DDA | SDA |", "| arch | Source | SDA | DDA |")
    )
    assert any("beyond its figures" in p for p in changed("540 held-out", "60 held-out"))
    assert any("more than 5 points" in p for p in changed("| 99.3 |", "| 90.1 |"))
    assert problems(BLOCK, BLOCK + "\n| one more row |") != []


def test_the_numeric_signature_is_stable_and_sees_the_kernels_torch_picks():
    assert numeric_signature() == numeric_signature()
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "default"}  # the scalar kernels: other rounding of exp, sums
    script = "from sda_core.provenance import numeric_signature; print(numeric_signature())"
    scalar = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert scalar.stdout.strip() != numeric_signature()
