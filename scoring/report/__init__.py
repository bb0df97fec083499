"""The HTML report a sales leader reads: the learned ICP, its evidence, and how the scores did.

`render_report` builds the page from a training result; its sections live in `overview`,
`patterns`, `model_sections`, `checklist`, `changes` and `health`; `charts` draws the SVG
figures and `html` holds the page's building blocks.
"""

from icp_engine.scoring.report.build import render_report, tier_summary
from icp_engine.scoring.report.model_sections import dropped_features, is_leak

__all__ = ["dropped_features", "is_leak", "render_report", "tier_summary"]
