"""Print the Markdown tables of docs/PERFORMANCE.md from benchmarks/results/*.json (no hand copying).

    python benchmarks/summarize.py [benchmarks/results]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def evaluation_table(results: list[dict]) -> str:
    lines = ["| model | plain loop (ex/s) | htda-bench attack (ex/s) | speed-up | end to end (ex/s) | "
             "GFLOP/example | achieved GFLOP/s | dense floor GFLOP/s | of floor | outcomes vs plain |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for result in results:
        ev = result["evaluation"]
        same = ev["outcomes_harness_vs_plain"]
        lines.append(
            f"| {result['model']} | {ev['plain_examples_per_s']:.2f} | {ev['harness_attack_examples_per_s']:.2f} | "
            f"{ev['speedup_attack']:.2f}x | {ev['harness_end_to_end_examples_per_s']:.2f} | "
            f"{ev['flops_per_example'] / 1e9:.2f} | {ev['achieved_gflop_per_s']:.1f} | "
            f"{ev['dense_floor_fp32']['gflop_per_s']:.1f} | {ev['fraction_of_floor']:.0%} | "
            f"{same['examples'] - same['differing']}/{same['examples']} identical |")
    return "\n".join(lines)


def ladder_table(result: dict) -> str:
    lines = [f"{result['model']}:", "", "| step | examples/s | x plain | warm-up (s) | outcomes = plain | "
             "outcomes = unoptimised |", "| --- | --- | --- | --- | --- | --- |"]
    plain = result["evaluation"]["plain_examples_per_s"]
    lines.append(f"| plain torchattacks loop | {plain:.2f} | 1.00 | | | |")
    for row in result["evaluation"]["ladder"]:
        cells = []
        for field in ("outcomes_vs_plain", "outcomes_vs_unoptimised"):
            same = row.get(field)
            cells.append("" if same is None else f"{same['examples'] - same['differing']}/{same['examples']}")
        lines.append(f"| {row['variant']} | {row['examples_per_s']:.2f} | {row['examples_per_s'] / plain:.2f} | "
                     f"{row['warm_up_seconds']:.1f} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def training_table(results: list[dict]) -> str:
    lines = ["| model | plain fp32 loop (samples/s) | htda-bench train (samples/s) | speed-up | "
             "GFLOP/sample | achieved GFLOP/s | bf16 dense floor GFLOP/s | of floor |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for result in results:
        if "training" not in result:
            continue
        tr = result["training"]
        lines.append(f"| {result['model']} | {tr['plain_samples_per_s']:.1f} | {tr['htda_bench_samples_per_s']:.1f} | "
                     f"{tr['speedup']:.2f}x | {tr['flops_per_sample'] / 1e9:.2f} | {tr['achieved_gflop_per_s']:.1f} | "
                     f"{tr['dense_floor_bf16']['gflop_per_s']:.1f} | {tr['fraction_of_floor']:.0%} |")
    return "\n".join(lines)


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "results")
    results = [json.loads(path.read_text()) for path in sorted(folder.glob("eval-*.json"))]
    if not results:
        raise SystemExit(f"no eval-*.json in {folder}: run benchmarks/bench_eval.py first")
    print(evaluation_table(results), "", training_table(results), sep="\n")
    for result in results:
        print("", ladder_table(result), sep="\n")
        if "peak_memory_mib" in result:
            print(f"\npeak memory (MiB) by number of examples, batch {result['batch_size']}: {result['peak_memory_mib']}")
    print("\nmachine:", results[0]["hardware"], "| torch", results[0]["package_versions"].get("torch"),
          "| commit", results[0]["git_commit"])


if __name__ == "__main__":
    main()
