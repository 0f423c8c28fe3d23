"""The fairness audit rendered as a self-contained HTML file (inline CSS and SVG, no external
resource) or CSV: pure functions of an :class:`~detectors.fairness_audit.Audit`, kept beside the
audit as Evidently keeps a metric's rendering beside the metric.

``vitmon fairness report`` (``monitor/reports/fairness_report.py``) merges the ``fairness``
detector's window states of a range and calls :meth:`detectors.fairness.Fairness.render_report`,
which audits the merged state once and renders it here; the UI's Fairness page offers the same
files for download.
"""

from __future__ import annotations

import csv
import html
import io
from datetime import datetime, timezone

from detectors.fairness_audit import Audit, Comparison
from detectors.stats.proportions import wilson


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat().replace("+00:00", "Z")


CSV_COLUMNS = ("kind", "dimension", "group", "reference", "metric", "x", "n", "value", "ci_low",
               "ci_high", "reference_value", "reference_n", "difference", "difference_ci_low",
               "difference_ci_high", "ratio", "ratio_ci_low", "ratio_ci_high", "p_value",
               "p_adjusted", "significant", "simultaneous_ci_low", "simultaneous_ci_high",
               "violation")


def rows(result: Audit) -> list[dict[str, object]]:
    """Every number of the report as flat rows: group rates, comparisons, dimension gaps."""
    level = result.config.confidence
    out: list[dict[str, object]] = []
    for g in result.groups:
        for metric, r in g.rates.items():
            lo, hi = wilson(r.x, r.n, level)
            out.append({"kind": "rate", "dimension": g.dimension, "group": g.group,
                        "metric": metric, "x": r.x, "n": r.n, "value": r.value,
                        "ci_low": float(lo), "ci_high": float(hi)})
    for c in result.comparisons:
        out.append({"kind": "comparison", "dimension": c.dimension, "group": c.group,
                    "reference": c.reference, "metric": c.metric, "n": c.n, "value": c.value,
                    "reference_value": c.ref_value, "reference_n": c.ref_n,
                    "difference": c.difference, "difference_ci_low": c.difference_ci[0],
                    "difference_ci_high": c.difference_ci[1], "ratio": c.ratio,
                    "ratio_ci_low": c.ratio_ci[0], "ratio_ci_high": c.ratio_ci[1],
                    "p_value": c.p_value, "p_adjusted": c.p_adjusted,
                    "significant": c.significant, "simultaneous_ci_low": c.simultaneous_ci[0],
                    "simultaneous_ci_high": c.simultaneous_ci[1], "violation": c.violation})
    for s in result.summaries:
        for metric, value in s.gaps.items():
            out.append({"kind": "gap", "dimension": s.dimension, "reference": s.reference,
                        "metric": metric, "value": value})
    return out


def render_csv(result: Audit) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in rows(result):
        writer.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()


def _f(v: float, digits: int = 3) -> str:
    return "–" if v != v else f"{v:.{digits}f}"  # NaN renders as a dash


def _forest(comps: list[Comparison]) -> str:
    """An inline SVG forest plot: each comparison's difference and interval around zero."""
    if not comps:
        return ""
    width, row_h, left, right = 640, 22, 230, 20
    span = max(0.05, max(max(abs(c.difference_ci[0]), abs(c.difference_ci[1])) for c in comps))
    x = lambda v: left + (v + span) / (2 * span) * (width - left - right)  # noqa: E731
    h = row_h * len(comps) + 30
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{h}" '
             f'role="img" aria-label="differences against the reference group">',
             f'<line x1="{x(0):.1f}" y1="0" x2="{x(0):.1f}" y2="{h - 20}" class="zero"/>']
    for i, c in enumerate(comps):
        y = 12 + i * row_h
        cls = "bad" if c.violation else ("sig" if c.significant else "ns")
        parts.append(f'<text x="4" y="{y + 4}">{html.escape(c.group)} · {html.escape(c.metric)}'
                     '</text>')
        parts.append(f'<line x1="{x(c.difference_ci[0]):.1f}" y1="{y}" '
                     f'x2="{x(c.difference_ci[1]):.1f}" y2="{y}" class="{cls}"/>')
        parts.append(f'<circle cx="{x(c.difference):.1f}" cy="{y}" r="4" class="{cls}"/>')
    parts.append(f'<text x="{x(-span):.1f}" y="{h - 4}">{-span:+.2f}</text>'
                 f'<text x="{x(0) - 4:.1f}" y="{h - 4}">0</text>'
                 f'<text x="{x(span) - 30:.1f}" y="{h - 4}">{span:+.2f}</text></svg>')
    return "".join(parts)


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 7px;
text-align:right;font-size:13px}th{background:#f3f3f3}td.l,th.l{text-align:left}
tr.bad td{background:#fde2e1}tr.sig td{background:#fff4d6}.note{color:#555;font-size:13px}
svg text{font-size:11px;fill:#333}svg line{stroke-width:2}svg .zero{stroke:#999;stroke-dasharray:3}
svg .bad{stroke:#c0392b;fill:#c0392b}svg .sig{stroke:#d68910;fill:#d68910}
svg .ns{stroke:#7f8c8d;fill:#7f8c8d}"""


def render_html(result: Audit, model: str, version: str, from_ms: int, to_ms: int,
                windows: int, slice_: str = "all") -> str:
    cfg = result.config
    e = html.escape
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>Fairness audit {e(model)} "
           f"{e(version)}</title><style>{_CSS}</style></head><body>",
           f"<h1>Fairness audit: {e(model)} {e(version)}</h1>",
           f"<p>Event time {_iso(from_ms)} to {_iso(to_ms)} · slice <code>{e(slice_)}</code> · "
           f"{windows} windows · generated {_iso(int(datetime.now(timezone.utc).timestamp() * 1000))}"
           "</p>"]
    flagged = [c for c in result.comparisons if c.violation]
    out.append(f"<p><b>{len(flagged)} significant disparit{'y' if len(flagged) == 1 else 'ies'} "
               "beyond the thresholds</b>: " + (", ".join(
                   f"{e(c.group)} {e(c.metric)} {c.difference:+.3f}" for c in flagged) or "none")
               + ".</p>")
    for s in result.summaries:
        comps = [c for c in result.comparisons if c.dimension == s.dimension]
        groups = [g for g in result.groups if g.dimension == s.dimension]
        out.append(f"<h2>{e(s.dimension)}</h2><p>Reference group <b>{e(s.reference)}</b> "
                   f"({e(s.reference_source)}).</p><table><tr><th class=l>gap</th><th>value</th>"
                   "</tr>" + "".join(f"<tr><td class=l>{e(k)}</td><td>{_f(v)}</td></tr>"
                                     for k, v in s.gaps.items()) + "</table>")
        metrics = list(groups[0].rates) if groups else []
        out.append("<table><tr><th class=l>group</th><th>predictions</th><th>labelled</th>"
                   + "".join(f"<th>{e(m)} [{cfg.confidence:.0%} CI]</th>" for m in metrics)
                   + "</tr>")
        for g in groups:
            cells = []
            for m in metrics:
                r = g.rates[m]
                lo, hi = wilson(r.x, r.n, cfg.confidence)
                cells.append(f"<td>{_f(r.value)} [{_f(float(lo))}, {_f(float(hi))}] n={r.n}</td>")
            out.append(f"<tr><td class=l>{e(g.group)}</td><td>{g.n_predictions}</td>"
                       f"<td>{g.n_labelled}</td>{''.join(cells)}</tr>")
        out.append("</table>")
        out.append("<table><tr><th class=l>group</th><th class=l>metric</th><th>value</th>"
                   "<th>reference</th><th>difference [CI]</th><th>ratio [CI]</th><th>p (adj.)</th>"
                   "<th class=l>verdict</th></tr>")
        for c in comps:
            cls = "bad" if c.violation else ("sig" if c.significant else "")
            verdict = ("significant, beyond threshold" if c.violation else
                       "significant" if c.significant else "not significant")
            out.append(f"<tr class='{cls}'><td class=l>{e(c.group)}</td><td class=l>{e(c.metric)}"
                       f"</td><td>{_f(c.value)} (n={c.n})</td><td>{_f(c.ref_value)} (n={c.ref_n})"
                       f"</td><td>{c.difference:+.3f} [{_f(c.difference_ci[0])}, "
                       f"{_f(c.difference_ci[1])}]</td><td>{_f(c.ratio)} [{_f(c.ratio_ci[0])}, "
                       f"{_f(c.ratio_ci[1])}]</td><td>{c.p_adjusted:.2g}</td>"
                       f"<td class=l>{verdict}</td></tr>")
        out.append("</table>" + _forest(comps))
    out.append(f"""<h2>Method</h2><ul class=note>
<li>Selection rate of class c: share of all predictions of the group predicted as c. Accuracy,
TPR (predicted c among labelled c) and FPR (predicted c among labelled other classes) use the
group's labelled predictions (last label wins). Classes of interest: {list(cfg.positive_classes)}.</li>
<li>Intervals at {cfg.confidence:.0%}: Wilson score for rates, Newcombe hybrid score for
differences, Katz log for ratios (0.5 added to every count when one is zero).</li>
<li>Significance: two-sided Fisher exact test against the reference group,
Bonferroni-corrected over the {result.family_size} comparisons; significant when the adjusted
p-value is at most {cfg.alpha:g}.</li>
<li>Beyond threshold (red rows): the simultaneous interval at level 1 − {cfg.alpha:g}/{result.family_size}
(Bonferroni, the same correction as the p-values) lies entirely outside [{cfg.min_ratio:g},
{1 / cfg.min_ratio:.3g}] for a selection-rate ratio (the four-fifths rule) or beyond
±{cfg.max_difference:g} for an accuracy/TPR/FPR difference. Significant but not surely beyond:
yellow rows. Only groups with at
least {cfg.min_group_size} predictions (labelled ones for label-based rates), and rates with at
least {cfg.min_group_size} trials on both sides, are compared.</li>
<li>Gaps follow Fairlearn: demographic parity, equal opportunity and accuracy difference are
max − min over the compared groups, ratios min / max; equalized odds difference is the larger of
the TPR and FPR differences, its ratio the smaller ratio.</li></ul></body></html>""")
    return "\n".join(out)

