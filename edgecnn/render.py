"""Tables for the terminal and Markdown (no logic beyond formatting)."""

from __future__ import annotations


def fmt(v, spec: str, none: str = "-") -> str:
    return none if v is None else format(v, spec)


def table(headers: list[str], rows: list[list[str]], markdown: bool = False) -> str:
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def _interval(ci) -> str:
    return f" [{ci[0]:+.1f}, {ci[1]:+.1f}]" if ci else ""


def _unlabeled_cell(a) -> str:
    u = a.unlabeled
    return "-" if not u else f"{u.changed} of {u.n}"


def export_table(rep) -> str:
    """An export report (results.ExportReport) as the console's table and notes."""
    rows = [["model.keras (reference)", "keras", "fp32", "-", fmt(rep.reference.accuracy, ".2%"),
             "-", "-", "-", "-"]]
    for a in rep.artifacts:
        rows.append([a.artifact, a.format, a.precision, f"{a.size_mb:.2f}", fmt(a.accuracy, ".2%"),
                     fmt(a.accuracy_drop_pp, "+.2f") + _interval(a.paired.drop_ci_pp if a.paired else None),
                     fmt(a.worst_class.drop_pp if a.worst_class else None, "+.1f"),
                     fmt(a.top1_agreement, ".2%"), str(len(a.flips or []))]
                    + ([_unlabeled_cell(a)] if rep.unlabeled else []))
    unlabeled = ["unlabeled changed"] if rep.unlabeled else []
    if unlabeled:
        rows[0].append("-")
    out = table(["artifact", "format", "precision", "MB", "accuracy", "drop pp [95%]", "worst class pp",
                 "agree", "flips", *unlabeled], rows)
    for a in rep.artifacts:
        if a.route:
            out += (f"\n{a.artifact}: {a.route['chosen']} ({a.route['reason']})"
                    + ("; integer-only" if (a.graph or {}).get("integer_only") else ""))
    out += _budget_lines(rep.budget) if rep.budget else ""
    out += f"\n{rep.eval_images} images of {rep.eval_data}; calibration: {rep.calibration.source}; {rep.export_s:.0f} s"
    if rep.unlabeled:
        u = rep.unlabeled
        out += (f"\n{u.images} unlabeled photos of {u.source}: a changed prediction bounds the drop, so the drop "
                f"interval combines them with the labelled images (95% overall)")
    if rep.skipped:
        out += (f"\n{len(rep.skipped)} unreadable image(s) not counted: "
                + "; ".join(f"{s.path} ({s.reason})" for s in rep.skipped[:5])
                + (" ..." if len(rep.skipped) > 5 else ""))
    return out


def _budget_lines(b) -> str:
    out = f"\nINT8 budget: {b.decision}"
    fb = b.fallback
    if fb and fb.artifact:
        out += f"\nfallback kept {len(fb.float_ops)} op(s) in float -> {fb.artifact}: {fb.verdict}"
        if fb.cost:
            c = fb.cost
            out += (f"\nfallback cost: {c.size_mb['mixed']:.2f} MB vs {c.size_mb['int8']:.2f} MB, "
                    f"p50 {c.latency_p50_ms['mixed']:.2f} vs {c.latency_p50_ms['int8']:.2f} ms "
                    f"(x{c.latency_ratio:.2f}, {c.note})")
    return out
