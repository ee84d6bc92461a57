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


def _unlabeled_cell(a: dict) -> str:
    u = a.get("unlabeled")
    return "-" if not u else f"{u['changed']} of {u['n']}"


def export_table(rep: dict) -> str:
    rows = [["model.keras (reference)", "keras", "fp32", "-", fmt(rep["reference"]["accuracy"], ".2%"),
             "-", "-", "-", "-"]]
    for a in rep["artifacts"]:
        wc = a.get("worst_class") or {}
        rows.append([a["artifact"], a["format"], a["precision"], f"{a['size_mb']:.2f}", fmt(a["accuracy"], ".2%"),
                     fmt(a.get("accuracy_drop_pp"), "+.2f") + _interval((a.get("paired") or {}).get("drop_ci_pp")),
                     fmt(wc.get("drop_pp"), "+.1f"),
                     fmt(a.get("top1_agreement"), ".2%"), str(len(a.get("flips", [])))]
                    + ([_unlabeled_cell(a)] if rep.get("unlabeled") else []))
    unlabeled = ["unlabeled changed"] if rep.get("unlabeled") else []
    if unlabeled:
        rows[0].append("-")
    out = table(["artifact", "format", "precision", "MB", "accuracy", "drop pp [95%]", "worst class pp",
                 "agree", "flips", *unlabeled], rows)
    for a in rep["artifacts"]:
        if a.get("route"):
            r, g = a["route"], a.get("graph") or {}
            out += (f"\n{a['artifact']}: {r['chosen']} ({r['reason']})"
                    + ("; integer-only" if g.get("integer_only") else ""))
    b = rep.get("budget")
    if b:
        out += f"\nINT8 budget: {b['decision']}"
        fb = b.get("fallback")
        if fb and fb.get("artifact"):
            out += (f"\nfallback kept {len(fb['float_ops'])} op(s) in float -> {fb['artifact']}: "
                    f"{fb['verdict']}")
            if fb.get("cost"):
                c = fb["cost"]
                out += (f"\nfallback cost: {c['size_mb']['mixed']:.2f} MB vs {c['size_mb']['int8']:.2f} MB, "
                        f"p50 {c['latency_p50_ms']['mixed']:.2f} vs {c['latency_p50_ms']['int8']:.2f} ms "
                        f"(x{c['latency_ratio']:.2f}, {c['note']})")
    out += f"\n{rep['eval_images']} images of {rep['eval_data']}; calibration: {rep['calibration']['source']}; {rep['export_s']:.0f} s"
    if rep.get("unlabeled"):
        u = rep["unlabeled"]
        out += (f"\n{u['images']} unlabeled photos of {u['source']}: a changed prediction bounds the drop, so the drop "
                f"interval combines them with the labelled images (95% overall)")
    if rep.get("skipped"):
        out += (f"\n{len(rep['skipped'])} unreadable image(s) not counted: "
                + "; ".join(f"{s['path']} ({s['reason']})" for s in rep["skipped"][:5])
                + (" ..." if len(rep["skipped"]) > 5 else ""))
    return out
