"""The figures of the embedded worlds in the README and in docs/results-*.md, generated from a finished
run's tables, so that the two cannot drift.

    python tools/digits_readme.py --write            # after `make demo` (or `make seeds`): put the figures in
    python tools/digits_readme.py --check            # CI, after `make demo`: exit 1 if a block differs
    python tools/digits_readme.py --check --seeds    # the same, with the summary over seeds of `make seeds`
    python tools/digits_readme.py --check --scenes   # the same, with the digit-scenes block (`make scenes`)
    python tools/digits_readme.py --check --scenes-only   # the digit-scenes block alone

Only the blocks between their markers (BLOCKS names the file of each) are generated, each when its table
exists: the headline, the figures and the claims of seed 0 (`make demo`), the claims over seeds (`make
seeds`) and the digit-scenes world's mIoU (`make scenes`); the prose around them quotes none of their
numbers.

Each block's opening marker records the numeric signature of the machine whose run wrote it
(sda_core.provenance.numeric_signature, kept in the run's provenance file). `--check` compares a block
exactly with the run where the run's signature is the block's; elsewhere (another CPU vendor or
instruction set rounds otherwise) it checks what must hold on any machine (tools/figure_check.py), and
says which check ran.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import sys
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from figure_check import problems as structural_problems  # noqa: E402

from sda_core import methods as methods_registry  # noqa: E402

# From the method registry (sda_core.methods): the paper's columns in its order, then the others in the
# tables' order, each only where the run scored it; the comparisons between the paper's columns and
# the headline's two rows beyond the paper (TENT, SDA on GDA).
PAPER_COLUMNS = list(methods_registry.PAPER_COLUMNS)
# a vlm's own rows (LoRA on source) have a table of their own in the figures block (render_vlm)
VLM_ROWS = [m.name for m in methods_registry.SCORED_METHODS if m.study == methods_registry.LORA_ON_SOURCE_ROWS]
METHODS = PAPER_COLUMNS + [
    m.name for m in methods_registry.SCORED_METHODS if m.name not in PAPER_COLUMNS and m.name not in VLM_ROWS
]
HEADLINE_COMPARED = {*PAPER_COLUMNS, "TENT", "SDA on GDA"}
COMPARISONS = [f"{a} - {b}" for a, b in methods_registry.COMPARISONS if {a, b} <= HEADLINE_COMPARED]
COMPARISONS.append("SDA - LoRA on source")  # a vlm's (its table in the figures block)
# the methods a per-image stage makes, which may cover n images of each set (memo.images, ...), by stage
STAGE_OF = {entry.name: entry.stage.upper() for entry in methods_registry.SCORED_METHODS if entry.stage}
FUSIONS = [
    "SDA",
    "SDA (entropy-weighted)",
    "SDA (confidence-weighted)",
    "SDA (lower entropy)",
    "SDA (higher confidence)",
]
FUSIONS += ["SDA (tuned weight)", "DDA", "DDA (tuned weight)"]
SANITY = {
    "source on clean test": "source on clean test (gate: >= {source_clean_accuracy:g}%)",
    "source on clean after unguided diffusion (misalignment)": "source on clean after unguided diffusion",
    "source on clean after DDA": "source on clean after DDA (guided)",
    "fine-tuned on clean test": "fine-tuned f' on clean test",
    "fine-tuned on clean after unguided diffusion": "fine-tuned f' on clean after unguided diffusion",
    "fine-tuned on clean after DDA": "fine-tuned f' on clean after DDA",
    "source agrees with generator label": "source agrees with the generator's label "
    "(gate: >= {generator_label_agreement:g}%)",
    "source agrees with label after MoD": "source agrees with the label after MoD",
}


def table_row(cells) -> str:
    """One markdown table row."""
    return "| " + " | ".join(cells) + " |"


def table_header(cells: list[str]) -> list[str]:
    """A markdown table's header row and its separator."""
    return [table_row(cells), "|---" * len(cells) + "|"]


def interval(row) -> str:
    return f"{row.top1:.1f} [{row.ci_low:.1f}, {row.ci_high:.1f}]"


def render_headline(tables: Path) -> str:
    """The README's headline: the mean top-1 of every method and the paired differences."""
    accuracy = pd.read_csv(tables / "digits_c.csv")
    paired = pd.read_csv(tables / "digits_c_paired.csv")
    archs = list(dict.fromkeys(accuracy.arch))
    means = accuracy[(accuracy.corruption == "mean") & (accuracy.split == "test")].set_index(["arch", "method"])
    per_corruption = accuracy[(accuracy.split == "test") & (accuracy.corruption != "mean")]
    n = int(per_corruption[per_corruption.method == "Source"].n.iloc[0])
    methods = [m for m in METHODS if m in set(accuracy.method)]
    comparisons = [c for c in COMPARISONS if c in set(paired.comparison)]
    counts = per_corruption.groupby("method").n.first()
    memo = limited_note(counts, methods)
    lines = [
        f"Mean top-1 (%) over the 15 test corruptions at severity 5, {n} held-out images each{memo}, 95%",
        "interval of the mean in brackets (`results/tables/digits_c.csv`):",
        "",
        *table_header(["arch", *methods]),
    ]
    for arch in archs:
        lines.append(
            table_row([arch, *(interval(means.loc[arch, m]) if (arch, m) in means.index else "-" for m in methods)])
        )
    lines += [
        "",
        "Paired differences on the 15 test corruptions (`results/tables/digits_c_paired.csv`: both methods",
        "scored on the same images, 95% intervals from the per-image differences), in points"
        + (f", {limited_owners(counts, methods)} on the images they predicted:" if memo else ":"),
        "",
        *table_header(["difference", *archs]),
    ]
    test_pairs = paired[(paired.split == "test") & (paired.corruption == "mean")].set_index(["comparison", "arch"])
    for comparison in comparisons:
        cells = []
        for arch in archs:
            if (comparison, arch) not in test_pairs.index:  # a method not run for it (gda.architectures)
                cells.append("-")
                continue
            row = test_pairs.loc[(comparison, arch)]
            cells.append(f"{row.difference:+.1f} [{row.ci_low:.1f}, {row.ci_high:.1f}]")
        lines.append(table_row([comparison, *cells]))
    return "\n".join(lines)


def render(tables: Path) -> str:
    """The digits results page's figures: the sanity table, contrast, the named target sets."""
    accuracy = pd.read_csv(tables / "digits_c.csv")
    sanity = pd.read_csv(tables / "digits_sanity.csv")
    archs = list(dict.fromkeys(accuracy.arch))
    lines = [
        "Sanity figures, top-1 (%) (`results/tables/digits_sanity.csv`):",
        "",
        *table_header(["check", *archs]),
    ]
    by_check = sanity.set_index(["check", "arch"])
    gates = yaml.safe_load((ROOT / "presets/digits.yaml").read_text())["gates"]  # the preset owns the gates
    for check, label in SANITY.items():
        lines.append(table_row([label.format(**gates), *(f"{by_check.loc[(check, a), 'top1']:.1f}" for a in archs)]))
    for check in dict.fromkeys(c for c in sanity.check if c not in SANITY):  # a vlm's other questions
        cells = [f"{by_check.loc[(check, a), 'top1']:.1f}" if (check, a) in by_check.index else "-" for a in archs]
        lines.append(table_row([f"{check} (gate: >= {gates['source_clean_accuracy']:g}%)", *cells]))
    contrast = accuracy[(accuracy.corruption == "contrast")].set_index(["arch", "method"])
    lines += [
        "",
        "Where adaptation destroys what the source model could still read, the ensembles keep part of its",
        "answer; contrast, top-1 (%):",
        "",
        *table_header(["arch", "Source", "DDA, adapted image only", "DDA", "SDA"]),
    ]
    for arch in archs:
        cells = [f"{contrast.loc[(arch, m), 'top1']:.1f}" for m in ("Source", "DDA (adapted only)", "DDA", "SDA")]
        lines.append(table_row([arch, *cells]))
    return "\n".join(lines + render_vlm(accuracy) + render_targets(tables, archs))


def render_vlm(accuracy: pd.DataFrame) -> list[str]:
    """The rows of each vlm with its control (LoRA on source): its own table, beside the headline's."""
    means = accuracy[(accuracy.corruption == "mean") & (accuracy.split == "test")].set_index(["arch", "method"])
    archs = [arch for arch in dict.fromkeys(accuracy.arch) if (arch, VLM_ROWS[0]) in means.index]
    if not archs:
        return []
    methods = ["Source", "DDA", "SDA", *VLM_ROWS]
    lines = [
        "",
        "The vision-language model and its control, mean top-1 (%) of its table question over the 15 test",
        "corruptions (LoRA on source: the LoRA recipe of f' on the source images instead of the MoD set):",
        "",
        *table_header(["arch", *methods]),
    ]
    return lines + [table_row([arch, *(interval(means.loc[(arch, m)]) for m in methods)]) for arch in archs]


def limited(counts: pd.Series, methods: list[str]) -> dict[str, int]:
    """stage -> how many images of each set its rows cover, for the stages (STAGE_OF) whose rows among
    `methods` cover fewer images than Source (counts: method -> n)."""
    return {STAGE_OF[m]: int(counts[m]) for m in methods if m in STAGE_OF and counts[m] < counts["Source"]}


def limited_owners(counts: pd.Series, methods: list[str]) -> str:
    """ "MEMO's and GDA's rows": the stages whose rows among `methods` cover fewer images."""
    owners = [f"{stage}'s" for stage in limited(counts, methods)]
    return " and ".join([", ".join(owners[:-1]), owners[-1]] if len(owners) > 1 else owners) + " rows"


def limited_note(counts: pd.Series, methods: list[str]) -> str:
    """' (MEMO's rows: 60, GDA's rows: 60 of them)' for the stages whose rows cover fewer images."""
    found = [f"{stage}'s rows: {n}" for stage, n in limited(counts, methods).items()]
    return f" ({', '.join(found)} of them)" if found else ""


def render_targets(tables: Path, archs: list[str]) -> list[str]:
    """The named target sets of the preset (its `targets:`), each table as the paper's ImageNet-W table."""
    lines = []
    for target in yaml.safe_load((ROOT / "presets/digits.yaml").read_text()).get("targets", []):
        accuracy = pd.read_csv(tables / f"digits_{target['name']}.csv").set_index(["arch", "method"])
        paired = pd.read_csv(tables / f"digits_{target['name']}_paired.csv").set_index(["comparison", "arch"])
        methods = [m for m in PAPER_COLUMNS if m in set(accuracy.index.get_level_values("method"))]
        n = int(accuracy.loc[(archs[0], "Source"), "n"])
        memo = limited_note(accuracy.loc[archs[0]].n, methods)
        lines += [
            "",
            f"The named target set `{target['name']}` ({target['shift']}, the analogue of ImageNet-W; "
            f"`results/tables/digits_{target['name']}.csv`),",
            f"{n} held-out images{memo}, top-1 (%) with 95% intervals,",
            "and SDA - DDA paired over the same images:",
            "",
            *table_header(["arch", *methods, "SDA - DDA"]),
        ]
        for arch in archs:
            pair = paired.loc[("SDA - DDA", arch)]
            lines.append(
                table_row(
                    [
                        arch,
                        *(interval(accuracy.loc[(arch, m)]) if (arch, m) in accuracy.index else "-" for m in methods),
                        f"{pair.difference:+.1f} [{pair.ci_low:.1f}, {pair.ci_high:.1f}]",
                    ]
                )
            )
    return lines


def _signed(value: float, low: float, high: float) -> str:
    """+1.2 [+0.3, +2.1]; a value without its own interval (the growth of the gain) alone."""
    if pd.isna(low):
        return f"{value:+.1f}"
    return f"{value:+.1f} [{low:+.1f}, {high:+.1f}]"


def render_claims(tables: Path) -> str:
    """The claims of seed 0, the fusion rows and the timestep curve in short."""
    claims = pd.read_csv(tables / "digits_claims.csv")
    archs = list(dict.fromkeys(claims.arch))
    lines = [
        "Each claim measured on this run (`results/tables/digits_claims.csv`, seed 0): the figure with its",
        "95% paired interval, and the verdict (holds: the interval is on the claimed side of zero; does not",
        "hold: on the other side; inconclusive: it covers zero). Differences in points.",
        "",
        *table_header(["claim", "paper (ImageNet)", *archs]),
    ]
    by_claim = claims.set_index(["claim", "arch"])
    for claim in dict.fromkeys(claims.claim):
        first = claims[claims.claim == claim].iloc[0]
        cells = []
        for arch in archs:
            if (claim, arch) not in by_claim.index:  # not made for it (its kind: the vlm's claims, the studies')
                cells.append("-")
                continue
            row = by_claim.loc[(claim, arch)]
            figure = f"ahead on {row.measured:.0f}" if claim == "sda_beats_dda_per_corruption" else None
            cells.append(f"{figure or _signed(row.measured, row.ci_low, row.ci_high)}: **{row.verdict}**")
        lines.append(table_row([first.statement, first.paper, *cells]))
    per_corruption = claims[claims.claim == "sda_beats_dda_per_corruption"]
    lines += ["", "SDA - DDA corruption by corruption (`results/tables/digits_c_paired.csv`):", ""]
    lines += [f"- {row.arch}: {row.detail}." for row in per_corruption.itertuples()]
    accuracy = pd.read_csv(tables / "digits_c.csv")
    means = accuracy[(accuracy.corruption == "mean") & (accuracy.split == "test")].set_index(["method", "arch"])
    fusion = pd.read_csv(tables / "digits_fusion.csv")
    chosen = fusion[fusion.chosen].set_index(["method", "arch"]).weight
    lines += [
        "",
        "Fusions of the two terms, mean top-1 (%) over the 15 test corruptions; the tuned weight w of the",
        "adapted-image term was chosen on the 4 validation corruptions (`results/tables/digits_fusion.csv`):",
        "",
        *table_header(["method", *archs]),
    ]
    for method in FUSIONS:
        cells = []
        for arch in archs:
            if (method, arch) not in means.index:
                cells.append("-")
                continue
            weight = f" (w = {chosen.loc[(method, arch)]:.2f})" if (method, arch) in chosen.index else ""
            cells.append(interval(means.loc[(method, arch)]) + weight)
        lines.append(table_row([method, *cells]))
    steps = pd.read_csv(tables / "digits_timesteps.csv")
    archs = list(dict.fromkeys(steps.arch))  # the classifiers (the study is theirs)
    models = [m for m in ("source", "finetuned", "finetuned_t") if m in set(steps.model)]
    names = {"source": "f", "finetuned": "f'", "finetuned_t": "f'_t"}
    for process, how in (("unguided", "without guidance"), ("dda", "with DDA's guidance")):
        curve = steps[steps.process == process].pivot_table(index="t", columns=["arch", "model"], values="top1")
        lines += [
            "",
            f"Clean test images re-noised to t and denoised {how}, top-1 (%) of f, f' and f'_t",
            "(`results/tables/digits_timesteps.csv`; t = 0: the clean images):",
            "",
            *table_header(["t", *(f"{arch} {names[m]}" for arch in archs for m in models)]),
        ]
        for t, values in curve.iterrows():
            lines.append(table_row([str(t), *(f"{values[(arch, m)]:.1f}" for arch in archs for m in models)]))
    return "\n".join(lines)


def render_seeds(tables: Path) -> str:
    summary = pd.read_csv(tables / "digits_seeds.csv")
    archs = list(dict.fromkeys(summary.arch))
    seeds = int(summary.seeds.max())
    lines = [
        f"Over {seeds} seeds (`make seeds`, `results/tables/digits_seeds.csv`): the mean of each claim's figure,",
        "its standard deviation over seeds, its range, and how many seeds it held in (h), was inconclusive",
        "in (i), did not hold in (n):",
        "",
        *table_header(["claim", *archs]),
    ]
    by_claim = summary.set_index(["claim", "arch"])
    for claim in dict.fromkeys(summary.claim):
        cells = []
        for arch in archs:
            row = by_claim.loc[(claim, arch)]
            cells.append(
                f"{row['mean']:+.1f} ± {row.sd:.1f} ({row['min']:+.1f} to {row['max']:+.1f}); "
                f"{row.holds} h / {row.inconclusive} i / {row.does_not_hold} n"
            )
        lines.append(table_row([by_claim.loc[(claim, archs[0])].statement, *cells]))
    return "\n".join(lines)


# the methods of task segmentation: the registry's without a per-image stage
SCENE_METHODS = list(methods_registry.reference_methods())
SCENE_SANITY = {
    "source on clean test": "source on clean test scenes (gate: >= {source_clean_accuracy:g})",
    "source on clean after unguided diffusion (misalignment)": "source on clean scenes after unguided diffusion",
    "source on clean after DDA": "source on clean scenes after DDA (guided)",
    "fine-tuned on clean test": "fine-tuned f' on clean test scenes",
    "fine-tuned on clean after DDA": "fine-tuned f' on clean scenes after DDA",
    "source agrees with generator label": "source on generated images against their maps "
    "(gate: >= {generator_label_agreement:g})",
    "source agrees with label after MoD": "source on MoD images against their maps",
}


def render_scenes(tables: Path) -> str:
    """The digit-scenes world (presets/digit_scenes.yaml): mIoU per test corruption and mean, SDA - DDA."""
    miou = pd.read_csv(tables / "digit_scenes_c.csv")
    paired = pd.read_csv(tables / "digit_scenes_c_paired.csv")
    sanity = pd.read_csv(tables / "digit_scenes_sanity.csv")
    (arch,) = set(miou.arch)
    test = miou[miou.split == "test"].set_index(["corruption", "method"])
    sda_dda = paired[(paired.comparison == "SDA - DDA") & (paired.split == "test")].set_index("corruption")
    n, severity = int(test.loc[("mean", "Source"), "n"]), int(test.loc[("mean", "Source"), "severity"])
    lines = [
        f"mIoU (%) of `{arch}` on the {n} held-out scenes under each test corruption at severity {severity}, and",
        "their mean with a 95% bootstrap interval over scenes (`runs/digit_scenes/results/tables/digit_scenes_c.csv`);",
        "the last",
        "column is SDA - DDA in points, paired on the same resampled scenes (`digit_scenes_c_paired.csv`):",
        "",
        *table_header(["corruption", *SCENE_METHODS, "SDA - DDA"]),
    ]
    corruptions = list(dict.fromkeys(c for c, _ in test.index))
    for corruption in [c for c in corruptions if c != "mean"] + ["mean"]:
        cells = []
        for method in SCENE_METHODS:
            row = test.loc[(corruption, method)]
            cells.append(
                f"{row.miou:.1f} [{row.ci_low:.1f}, {row.ci_high:.1f}]" if corruption == "mean" else f"{row.miou:.1f}"
            )
        pair = sda_dda.loc[corruption]
        cells.append(f"{pair.difference:+.1f} [{pair.ci_low:.1f}, {pair.ci_high:.1f}]")
        lines.append(table_row(["**mean**" if corruption == "mean" else corruption, *cells]))
    mean = sda_dda.loc["mean"]
    single = sda_dda.drop("mean")
    verdict = "holds" if mean.ci_low > 0 else "does not hold" if mean.ci_high < 0 else "is inconclusive"
    validation = miou[(miou.split == "validation") & (miou.corruption == "mean")].set_index("method").miou
    validation_sets = miou[(miou.split == "validation") & (miou.corruption != "mean")].corruption.nunique()
    lines += [
        "",
        f"SDA > DDA on the mean over the test corruptions {verdict} in this run: "
        f"{mean.difference:+.1f} [{mean.ci_low:.1f}, {mean.ci_high:.1f}] points. On single corruptions SDA is "
        f"ahead on {int((single.ci_low > 0).sum())}, behind on {int((single.ci_high < 0).sum())} of "
        f"{len(single)} (paired interval above or below zero).",
        "",
        f"Mean over the {validation_sets} validation corruptions (what the adaptation settings were chosen on): "
        + ", ".join(f"{m} {validation[m]:.1f}" for m in ("Source", "DDA", "SDA")),
        "",
        "Sanity figures, mIoU (%) (`digit_scenes_sanity.csv`):",
        "",
        *table_header(["check", arch]),
    ]
    by_check = sanity.set_index("check").miou
    gates = yaml.safe_load((ROOT / "presets/digit_scenes.yaml").read_text())["gates"]
    for check, label in SCENE_SANITY.items():
        lines.append(table_row([label.format(**gates), f"{by_check[check]:.1f}"]))
    return "\n".join(lines + render_scene_seeds(tables))


def render_scene_seeds(tables: Path) -> list[str]:
    """The test mean of every seed run in the same folder (`--config seed=N`: results/seed-N/), if any."""
    runs = {0: tables}
    for folder in sorted(tables.parent.glob("seed-*/tables")):
        if (folder / "digit_scenes_c.csv").exists():
            runs[int(folder.parent.name.removeprefix("seed-"))] = folder
    if len(runs) == 1:
        return []
    lines = [
        "",
        "The same configuration with other seeds (`--config seed=N`: other scenes, other training; mean over the",
        "test corruptions, 95% bootstrap intervals over scenes):",
        "",
        *table_header(["seed", "Source", "DDA", "SDA", "SDA - DDA", "DDA - Source"]),
    ]
    for seed, folder in sorted(runs.items()):
        miou = pd.read_csv(folder / "digit_scenes_c.csv")
        means = miou[(miou.split == "test") & (miou.corruption == "mean")].set_index("method")
        paired = pd.read_csv(folder / "digit_scenes_c_paired.csv")
        pairs = paired[(paired.split == "test") & (paired.corruption == "mean")].set_index("comparison")
        cells = [f"{means.miou[m]:.1f}" for m in ("Source", "DDA", "SDA")]
        for comparison in ("SDA - DDA", "DDA - Source"):
            row = pairs.loc[comparison]
            cells.append(f"{row.difference:+.1f} [{row.ci_low:.1f}, {row.ci_high:.1f}]")
        lines.append(table_row([str(seed), *cells]))
    return lines


# generated block name -> (renderer, table it needs, the run that makes it: --check checks "demo" always,
# "seeds" with --seeds, "scenes" with --scenes; the file that holds the block)
BLOCKS = {
    "digits-headline": (render_headline, "digits_c.csv", "demo", "README.md"),
    "digits-figures": (render, "digits_c.csv", "demo", "docs/results-digits.md"),
    "digits-claims": (render_claims, "digits_claims.csv", "demo", "docs/results-digits.md"),
    "digits-seeds": (render_seeds, "digits_seeds.csv", "seeds", "README.md"),
    "digit-scenes": (render_scenes, "digit_scenes_c.csv", "scenes", "docs/results-scenes.md"),
}


def markers(name: str, numerics: str | None) -> tuple[str, str]:
    """A block's opening marker (with the numeric signature of the run that wrote it) and its closing one."""
    signature = f"; numerics {numerics}" if numerics else ""
    return (
        f"<!-- {name}: generated by tools/digits_readme.py from a run's tables{signature}; do not edit by hand -->",
        f"<!-- /{name} -->",
    )


def opening_marker(name: str) -> re.Pattern:
    """A block's opening marker, whatever signature it records (group 1; None in a block written before
    signatures were recorded, which is checked structurally)."""
    return re.compile(
        rf"<!-- {re.escape(name)}: generated by tools/digits_readme\.py from a run's tables"
        r"(?:; numerics (\w+))?; do not edit by hand -->"
    )


@functools.cache  # asked once per block, read once per run
def run_numerics(tables: Path) -> str:
    """The numeric signature of the machine that made a run's tables: from its provenance file
    (sda_core.provenance), or, for a run made before it recorded one, this machine's."""
    for provenance in sorted(tables.glob("*_provenance.json")):
        numerics = json.loads(provenance.read_text()).get("cpu", {}).get("numerics")
        if numerics:
            return numerics
    from sda_core.provenance import numeric_signature

    print(f"{tables} records no numeric signature: taking this machine's")
    return numeric_signature()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true")
    mode.add_argument("--check", action="store_true")
    parser.add_argument("--seeds", action="store_true", help="--check also the summary over seeds")
    parser.add_argument("--scenes", action="store_true", help="--check also the digit-scenes block")
    parser.add_argument("--scenes-only", action="store_true", help="--check the digit-scenes block alone")
    parser.add_argument("--tables", type=Path, default=Path("results/tables"), help="the digits run's tables")
    parser.add_argument(
        "--scenes-tables", type=Path, default=Path("runs/digit_scenes/results/tables"), help="`make scenes`' tables"
    )
    args = parser.parse_args()
    texts = {name: (ROOT / name).read_text() for name in dict.fromkeys(block[3] for block in BLOCKS.values())}
    failed = False
    checked = {"demo", *(["seeds"] if args.seeds else []), *(["scenes"] if args.scenes else [])}
    if args.scenes_only:
        checked = {"scenes"}
    for name, (renderer, needs, run, file) in BLOCKS.items():
        opening = opening_marker(name).search(texts[file])
        end = markers(name, None)[1]
        if opening is None or end not in texts[file]:
            parser.error(f"{file} has no {name} markers")
        before, rest = texts[file][: opening.start()], texts[file][opening.end() :]
        current, after = rest.split(end)
        block_numerics = opening[1]
        tables = args.scenes_tables if run == "scenes" else args.tables
        if args.write:
            if (tables / needs).exists():
                begin = markers(name, run_numerics(tables))[0]
                texts[file] = before + begin + "\n" + renderer(tables) + "\n" + end + after
            continue
        if run not in checked:
            continue
        generated = renderer(tables)
        numerics = run_numerics(tables)
        if block_numerics == numerics:
            found = [] if current.strip("\n") == generated else ["its figures differ (exact check)"]
            how = f"exact check: the run's numeric signature {numerics} is the block's"
        else:
            found = structural_problems(current, generated)
            how = (
                f"structural check (tools/figure_check.py): the run's numeric signature {numerics} is not the "
                f"block's {block_numerics or '(none recorded)'}"
            )
        if found:
            print(f"{file}'s {name} block is not that of this run ({how}; python tools/digits_readme.py --write):")
            print("\n".join(found))
            print(generated)
            failed = True
        else:
            print(f"{file}'s {name} block is that of this run ({how})")
    if args.write:
        for file, text in texts.items():
            (ROOT / file).write_text(text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
