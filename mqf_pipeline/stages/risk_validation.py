"""Risk validation of a decided book against seed 000 section 7.4: REJECT limits keep the longest run
of increases within them, SCALE limits shrink the kept increases by the largest common fraction that
satisfies them (bisection)."""

from __future__ import annotations

import json

import polars as pl

from mqf_pipeline.risk.book import BookRisk, ReturnsWindow, RiskParams, book_risk, limit_checks

#: Bisection steps for the SCALE fraction of the increases (2^-30 resolution).
SCALE_STEPS = 30


def validate_limits(
    decided: pl.DataFrame,
    current: dict[str, float],
    window: ReturnsWindow,
    sectors: dict[str, str],
    drawdown: float,
    params: RiskParams,
    *,
    max_drawdown: float,
    min_trade: float,
) -> tuple[pl.DataFrame, list[dict[str, object]], BookRisk]:
    """Seed 000 section 7.4 on the decided book.

    REJECT limits (stress loss; drawdown rejects every increase) keep the longest run of increases, in
    the meta-brain's order (|score| descending), whose book satisfies them and reject the rest; SCALE
    limits then shrink the kept increases by the largest common fraction that satisfies them (bisection).
    """
    rows = decided.to_dicts()
    increasing = sorted(
        (r for r in rows if abs(r["position_size"]) > abs(current.get(r["symbol"], 0.0)) + 1e-15),
        key=lambda r: (-abs(r["score"] or 0.0), r["symbol"]),
    )
    base = {r["symbol"]: r["position_size"] for r in rows} | {
        r["symbol"]: current.get(r["symbol"], 0.0) for r in increasing
    }
    for s, w in current.items():
        base.setdefault(s, w)

    def book_at(kept: int, scale: float) -> dict[str, float]:
        out = dict(base)
        for r in increasing[:kept]:
            cur = current.get(r["symbol"], 0.0)
            out[r["symbol"]] = cur + scale * (r["position_size"] - cur)
        return out

    def breached(kept: int, scale: float, action: str) -> list[str]:
        checks = limit_checks(book_risk(book_at(kept, scale), window, sectors, params), drawdown, params)
        return [c["name"] for c in checks if c["breached"] and c["action"] == action and c["name"] != "max_drawdown"]

    kept, scale = len(increasing), 1.0
    reject_reason, scale_reason = None, None
    if increasing and drawdown > max_drawdown:
        kept, reject_reason = 0, "LIMIT_MAX_DRAWDOWN"
    elif increasing and (rejects := breached(kept, 1.0, "REJECT")):
        reject_reason = "LIMIT_" + "_".join(rejects).upper()
        lo, hi = 0, kept  # the longest prefix within the REJECT limits (breached(lo) is False, breached(hi) True)
        if breached(0, 1.0, "REJECT"):
            hi = 0
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if not breached(mid, 1.0, "REJECT") else (lo, mid)
        kept = lo
    if kept and (scales := breached(kept, 1.0, "SCALE")):
        scale_reason = "LIMIT_SCALED_" + "_".join(scales).upper()
        if breached(kept, 0.0, "SCALE"):
            scale = 0.0  # the book without increases already breaches: add nothing
        else:
            lo_s, hi_s = 0.0, 1.0
            for _ in range(SCALE_STEPS):
                mid_s = (lo_s + hi_s) / 2
                lo_s, hi_s = (mid_s, hi_s) if not breached(kept, mid_s, "SCALE") else (lo_s, mid_s)
            scale = lo_s
    outcome = {r["symbol"]: (scale, scale_reason) for r in increasing[:kept]}
    outcome |= {r["symbol"]: (0.0, reject_reason) for r in increasing[kept:]}
    out = [
        _scaled(r, current.get(r["symbol"], 0.0), *outcome[r["symbol"]], min_trade) if r["symbol"] in outcome else r
        for r in rows
    ]
    final = pl.DataFrame(out, schema=decided.schema)
    decided_symbols = set(final["symbol"].to_list())
    final_book = {r["symbol"]: r["position_size"] for r in out if r["position_size"]}
    final_book |= {s: w for s, w in current.items() if s not in decided_symbols and w}
    risk = book_risk(final_book, window, sectors, params)
    return final, limit_checks(risk, drawdown, params), risk


def _scaled(row: dict, current: float, scale: float, reason: str | None, min_trade: float) -> dict:
    """An increase shrunk to ``scale`` of itself by a limit (REJECT when what is left is below min_trade)."""
    if scale >= 1.0:
        return row
    new = current + scale * (row["position_size"] - current)
    checks = {**json.loads(row["risk_checks"]), "limit_scale": scale}
    codes = [*json.loads(row["reason_codes"]), reason]
    keep = abs(new - current) >= min_trade
    changed = {"position_size": new} if keep else {"final_decision": "REJECT", "position_size": current}
    return {**row, **changed, "reason_codes": json.dumps(codes), "risk_checks": json.dumps(checks, sort_keys=True)}
