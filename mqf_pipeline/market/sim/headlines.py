"""English headlines whose sentiment follows the simulated news tone.

Each news day (see the engine) yields 1-3 headlines. A headline's template is chosen by the
*perceived* tone (true tone plus noise) among five buckets from strongly negative to strongly
positive, so a lexicon scorer such as VADER recovers the tone imperfectly.
"""

from __future__ import annotations

import numpy as np

from mqf_pipeline.market.sim.engine import Engine
from mqf_pipeline.market.sim.rng import BLOCK, Stream, generator

#: Templates by bucket, from strongly negative to strongly positive; ``{name}`` is the company.
TEMPLATES: tuple[tuple[str, ...], ...] = (
    (
        "{name} plunges after grim sales warning",
        "{name} hit by fraud lawsuit, shares tumble",
        "{name} slashes outlook amid collapsing demand",
        "Regulators probe {name} over accounting failures",
        "{name} misses estimates badly and cuts dividend",
        "{name} shares crash as major customer cancels contract",
        "{name} warns of heavy losses and layoffs",
    ),
    (
        "{name} slips as weak sales disappoint",
        "{name} trims forecast amid weak demand",
        "Analyst cuts {name} rating, citing worries",
        "{name} delays product launch after problems",
        "{name} shares dip after weak guidance",
        "{name} reports lower margins",
        "{name} loses bid for government contract",
    ),
    (
        "{name} to present at industry conference",
        "{name} schedules quarterly earnings call",
        "{name} files annual report with regulators",
        "{name} names new chief financial officer",
        "{name} announces date of shareholder meeting",
        "{name} completes reorganization of business units",
        "{name} opens new office in Chicago",
    ),
    (
        "{name} edges higher on solid sales",
        "{name} reports steady growth in quarterly revenue",
        "{name} expands partnership with major customer",
        "Analyst sees good upside for {name}",
        "{name} gains after favorable product review",
        "{name} secures new supply agreement",
        "{name} raises dividend, rewarding shareholders",
    ),
    (
        "{name} shares soar after record quarterly profit",
        "{name} raises full-year outlook after great quarter",
        "{name} wins landmark contract, stock jumps",
        "Analysts upgrade {name} on outstanding growth",
        "{name} beats estimates with impressive gains",
        "{name} posts excellent results, surpassing expectations",
        "{name} rallies on strong earnings and bold buyback",
    ),
)
#: Upper edges of the perceived-tone buckets (the last bucket is open-ended).
_EDGES = np.array([-0.5, -0.15, 0.15, 0.5])
_PERCEPTION_NOISE = 0.3
_EXTRA_RATE = 0.25  # Poisson mean of headlines beyond the first, capped at 2 extra
MAX_PER_DAY = 3


def headline_rows(engine: Engine, t0: int, t1: int, cols: np.ndarray) -> tuple[list[int], list[int], list[str]]:
    """(session, symbol index, text) of every headline in sessions t0..t1 for symbols ``cols``."""
    out_t: list[int] = []
    out_i: list[int] = []
    out_text: list[str] = []
    names = engine.u.names
    keep = np.zeros(engine.u.n, dtype=bool)
    keep[cols] = True
    for blk in engine.blocks_between(t0, t1):
        b = blk.start // BLOCK
        rng = generator(engine.p.seed, Stream.HEADLINES, b)
        extra = np.minimum(rng.poisson(_EXTRA_RATE, (BLOCK, engine.u.n)), MAX_PER_DAY - 1)
        noise = rng.standard_normal((MAX_PER_DAY, BLOCK, engine.u.n))
        pick = rng.random((MAX_PER_DAY, BLOCK, engine.u.n))
        lo, hi = max(t0 - blk.start, 0), min(t1 - blk.start, blk.length - 1)
        ks, iis = np.nonzero(blk.news[lo : hi + 1] & keep)
        ks = ks + lo
        for j in range(MAX_PER_DAY):
            sel = extra[ks, iis] >= j
            k_j, i_j = ks[sel], iis[sel]
            perceived = blk.tone[k_j, i_j] + _PERCEPTION_NOISE * noise[j, k_j, i_j]
            bucket = np.searchsorted(_EDGES, perceived)
            for k, i, bk, pk in zip(k_j, i_j, bucket, pick[j, k_j, i_j], strict=True):
                group = TEMPLATES[bk]
                out_t.append(blk.start + int(k))
                out_i.append(int(i))
                out_text.append(group[int(pk * len(group))].format(name=names[i]))
    return out_t, out_i, out_text
