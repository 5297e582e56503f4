"""Evaluation results as files: ``results.json``, ``samples.csv``, ``report.html`` and figures.

    summary = build_results(model_results, protocol, device="cpu", world_size=1, version=...)
    write_report(summary, model_results, Path("eval/"))
"""
from .files import build_results, write_report

__all__ = ["build_results", "write_report"]
