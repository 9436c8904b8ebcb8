"""Markdown tables of experiment results for BENCHMARKS.md.

python bench/experiment_table.py WORKSPACE/experiments/*/results.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def cell(summary: dict[str, Any] | None) -> str:
    if summary is None:
        return "n/a"
    if summary.get("low") is None:
        return f"{summary['mean']:.3f}"
    return f"{summary['mean']:.3f} [{summary['low']:.3f}, {summary['high']:.3f}]"


def table(results: dict[str, Any]) -> str:
    experiment = results["experiment"]
    paper = results["paper_reference"][experiment["modality"]]
    lines = [
        f"#### {experiment['name']}: {experiment['modality']}, {len(experiment['classes'])} classes "
        f"({', '.join(experiment['classes'])}), preset {experiment['preset']}, "
        f"{experiment['seeds']} seeds",
        "",
        f"Split: {results['data']['split']['unit']}-level, "
        f"train {sum(results['data']['counts']['train'].values())} / "
        f"test {sum(results['data']['counts']['test'].values())} real images.",
        "",
        "| trained on | honest: accuracy [95% CI] | honest: balanced acc. | paper protocol: accuracy "
        "| paper (reference work) |",
        "|---|---|---|---|---|",
    ]
    conditions = results["conditions"]
    for condition in ("original", "affine", "synthetic", "affine+synthetic"):
        honest = conditions.get(f"honest/{condition}", {}).get("summary", {})
        paper_protocol = conditions.get(f"paper/{condition}", {}).get("summary", {})
        reference = {"original": paper["original"], "synthetic": paper["synthetic"]}.get(condition)
        lines.append(
            f"| {condition} | {cell(honest.get('accuracy'))} | "
            f"{cell(honest.get('balanced_accuracy'))} | {cell(paper_protocol.get('accuracy'))} | "
            f"{reference if reference is not None else '-'} |"
        )
    lines.append("")
    for comparison in results.get("comparisons", []):
        if comparison["metric"] == "accuracy":
            lines.append(
                f"- {comparison['protocol']}: {comparison['b']} - original = "
                f"{comparison['difference']:+.3f} "
                f"(paired t p = {comparison['t_p_value'] if comparison['t_p_value'] is None else round(comparison['t_p_value'], 3)}, n = {comparison['n']})"
            )
    quality = results.get("synthesis_quality") or {}
    memorisation = results.get("memorisation") or {}
    if quality:
        numbers = ", ".join(
            f"{key} {value:.4g}" for key, value in quality.items() if isinstance(value, float)
        )
        lines += ["", f"Synthesis quality ({quality.get('feature_extractor', '')}): {numbers}."]
    if memorisation:
        lines.append(
            f"Memorisation: {memorisation['flagged']} of {memorisation['total']} GAN images flagged "
            f"as near-copies (threshold ratio {memorisation['threshold_ratio']})."
        )
    stages = ", ".join(
        f"{s['name']} {s['seconds']:.0f} s" for s in results["stages"] if s["seconds"]
    )
    total = sum(s["seconds"] or 0 for s in results["stages"])
    lines += ["", f"Stage times: {stages}; total {total / 60:.1f} min.", ""]
    return "\n".join(lines)


def main() -> None:
    for path in sys.argv[1:]:
        print(table(json.loads(Path(path).read_text())))


if __name__ == "__main__":
    main()
