"""Child orders of a parent order over one session, and the intraday guards that stop them (pure).

A parent :class:`OrderRequest` with a schedule (its ``strategy``: MARKET, LIMIT, TWAP, VWAP, POV, WAIT of
:class:`~mqf_pipeline.execution.strategies.Strategy`) becomes at most one child per bucket of the session:
the session (XNYS, early closes included) is cut into :data:`~strategies.N_BUCKETS` equal buckets and the
child of bucket ``k`` is due at the bucket's start. Planned shares per bucket come from the simulator's own
:func:`~strategies.child_schedule` on the expected bucket volume ``ADV x profile`` (default the U-shaped
:func:`~strategies.u_shaped_profile` the simulator trades against), so the broker works the schedule the
paper broker simulates and the policy costed:

* MARKET / LIMIT: one child at the open (LIMIT at the parent's limit price, else pegged passively
  ``limit_offset_bps`` through the arrival price, see :func:`limit_price_for`);
* TWAP: equal slices; VWAP: proportional to the volume profile; WAIT: TWAP over the second half of the
  session (the strategies module's "delay"), so nothing is sent before midday;
* POV: ``pov_rate`` x each bucket's expected volume, until the parent is done; it may not complete (the
  rest is :attr:`ChildPlan.unplanned_qty`, as in the simulator).

Quantities are whole shares, rounded on the cumulative schedule (each child is within one share of its
planned quantity and they add up exactly); a fractional part of the parent (4 decimals) goes to the last
child. Ids are deterministic: child ``<parent>-c01`` .. ``-c13`` (bucket + 1), cancel-replace revisions
``<child>-r1``, ``-r2`` ... (:func:`child_id`, :func:`revision_id`, :func:`parent_of`).

Guards (seed 002 section 3.4, the simulator's :class:`~sim_inputs.CostParams` thresholds), on a live quote:
PRICE_AWAY when the last price is more than ``price_away_cancel`` (5%) from the arrival price;
VOLUME_ANOMALY when the session's volume so far exceeds ``volume_anomaly_ratio`` (3) x ADV x the share of
the day's expected volume elapsed (the simulator's comparison; at least the first bucket's share, and the
whole ADV at the close). Either stops the parent for the rest of the session, as in the simulator: its
open children are cancelled and no more are sent. A parent with a child cancelled at the broker (by a
guard in an earlier run, or by hand) stays stopped (STOPPED), so a rerun does not resume it.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import numpy as np
import pandas as pd

from mqf_pipeline import calendar
from mqf_pipeline.execution.orders import BrokerOrder, OrderRequest, OrderStatus, OrderType, Side, round_qty
from mqf_pipeline.execution.sim_inputs import CostParams, volume_profile
from mqf_pipeline.execution.strategies import N_BUCKETS, Strategy, child_schedule

#: Alpaca's longest client order id (characters).
MAX_CLIENT_ID_CHARS = 128
PRICE_AWAY = "PRICE_AWAY"
VOLUME_ANOMALY = "VOLUME_ANOMALY"
STOPPED = "STOPPED"  # a child was cancelled at the broker earlier (guard or by hand): send no more
NO_QUOTE = "NO_QUOTE"  # no live quote: the guards cannot be checked, so nothing is sent (nothing cancelled)
SESSION_CLOSED = "SESSION_CLOSED"

_CHILD_ID = re.compile(r"(?P<parent>.+)-c(?P<bucket>\d{2,})(?:-r(?P<revision>\d+))?")
#: Schedules a broker with ``work_children`` works as children over the next session (MARKET and LIMIT go whole).
CHILD_STRATEGIES = frozenset({Strategy.TWAP, Strategy.VWAP, Strategy.POV, Strategy.WAIT})
#: Prefix of ``orders.reason`` for a parent worked by children (status SUBMITTED, ``broker_order_id`` null).
CHILD_ORDERS = "CHILD_ORDERS"


def worked_by_children(strategy: str) -> bool:
    """Whether a parent with this schedule is worked as child orders (TWAP, VWAP, POV, WAIT)."""
    return strategy in CHILD_STRATEGIES


def child_orders_reason(session: dt.date) -> str:
    """The ``orders.reason`` of a parent not submitted whole: its children are worked during ``session``."""
    return f"{CHILD_ORDERS}: worked during {session} by the intraday step"


def revision_number(client_order_id: str) -> int:
    """N of a revision id ``<child>-rN``; 0 for a child id itself or any other id."""
    m = _CHILD_ID.fullmatch(client_order_id)
    return int(m["revision"]) if m and m["revision"] else 0


def child_id(parent_id: str, bucket: int) -> str:
    """The client order id of ``parent_id``'s child in ``bucket`` (0-based): ``<parent>-c01`` for bucket 0."""
    if bucket < 0:
        raise ValueError(f"order {parent_id}: bucket must be >= 0, got {bucket}")
    cid = f"{parent_id}-c{bucket + 1:02d}"
    if len(cid) + 4 > MAX_CLIENT_ID_CHARS:  # room for a revision suffix
        raise ValueError(f"order {parent_id}: id too long for child ids (Alpaca allows {MAX_CLIENT_ID_CHARS} chars)")
    return cid


def revision_id(client_order_id: str, revision: int) -> str:
    """The id of cancel-replace ``revision`` (>= 1) of a child: ``<child>-r<revision>``; 0 is the child itself."""
    base = base_child_id(client_order_id)
    if revision < 0:
        raise ValueError(f"order {client_order_id}: revision must be >= 0, got {revision}")
    return base if revision == 0 else f"{base}-r{revision}"


def base_child_id(client_order_id: str) -> str:
    """A child's id without its revision suffix (an id that is not a revision is returned as is)."""
    m = _CHILD_ID.fullmatch(client_order_id)
    return f"{m['parent']}-c{m['bucket']}" if m else client_order_id


def parent_of(client_order_id: str) -> str:
    """The parent id of a child or revision id; any other id is its own parent."""
    m = _CHILD_ID.fullmatch(client_order_id)
    return m["parent"] if m else client_order_id


def limit_price_for(symbol: str, side: Side, reference_price: float, offset_bps: float) -> float:
    """A passive limit ``offset_bps`` through ``reference_price`` (dollars): below it for a buy, above for a
    sell, rounded away from the market to Alpaca's tick (cents at $1 and above, $0.0001 below)."""
    if not (math.isfinite(reference_price) and reference_price > 0):
        raise ValueError(f"{symbol}: reference price must be > 0 dollars, got {reference_price}")
    if not (math.isfinite(offset_bps) and 0 <= offset_bps < 1e4):
        raise ValueError(f"{symbol}: limit offset must be in [0, 1e4) bps, got {offset_bps}")
    raw = Decimal(repr(reference_price)) * (1 - Decimal(Side(side).sign) * Decimal(repr(offset_bps)) / 10_000)
    tick = Decimal("0.01") if raw >= 1 else Decimal("0.0001")
    price = float(raw.quantize(tick, rounding=ROUND_FLOOR if Side(side) is Side.BUY else ROUND_CEILING))
    if price <= 0:
        raise ValueError(f"{symbol}: limit {offset_bps:g} bps through {reference_price} rounds to no price")
    return price


def policy_request(request: OrderRequest, reference_price: float) -> OrderRequest:
    """``request`` as its schedule trades it as one order: a LIMIT-strategy MARKET request becomes a LIMIT
    order at :func:`limit_price_for` (``limit_offset_bps`` through ``reference_price``, dollars), same time
    in force; anything else (or a request that already has a limit price) is returned unchanged."""
    if Strategy(request.strategy) is not Strategy.LIMIT or request.order_type is not OrderType.MARKET:
        return request
    price = limit_price_for(request.symbol, request.side, reference_price, request.limit_offset_bps)
    return replace(request, order_type=OrderType.LIMIT, limit_price=price)


@dataclass(frozen=True)
class LiveQuote:
    """A live quote: ``last`` trade price (dollars) and ``volume`` traded in the session so far (shares);
    ``open`` the session's opening price (dollars), None while the session has no trade yet."""

    last: float
    volume: float
    open: float | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.last) and self.last > 0):
            raise ValueError(f"live quote: last price must be > 0 dollars, got {self.last}")
        if not (math.isfinite(self.volume) and self.volume >= 0):
            raise ValueError(f"live quote: volume must be >= 0 shares, got {self.volume}")
        if self.open is not None and not (math.isfinite(self.open) and self.open > 0):
            raise ValueError(f"live quote: open price must be > 0 dollars, got {self.open}")


@dataclass(frozen=True)
class ChildOrder:
    """One child: its ``request`` (id ``<parent>-cNN``, shares, type), ``bucket`` and ``due`` (UTC)."""

    request: OrderRequest
    parent_id: str
    bucket: int
    due: dt.datetime

    @property
    def client_order_id(self) -> str:
        return self.request.client_order_id


@dataclass(frozen=True)
class ChildPlan:
    """A parent's children over ``session``. ``arrival_price`` dollars (the PRICE_AWAY reference), ``adv``
    shares, ``profile`` expected volume share per bucket (sums to 1), ``opens_at``/``closes_at`` UTC."""

    parent: OrderRequest
    session: dt.date
    arrival_price: float
    adv: float
    profile: tuple[float, ...]
    opens_at: dt.datetime
    closes_at: dt.datetime
    children: tuple[ChildOrder, ...]

    @property
    def planned_qty(self) -> float:
        """Shares the children add up to."""
        return round_qty(sum(c.request.qty for c in self.children))

    @property
    def unplanned_qty(self) -> float:
        """Shares of the parent no child carries (POV below its participation of expected volume)."""
        return round_qty(self.parent.qty - self.planned_qty)


@dataclass(frozen=True)
class ChildActions:
    """What a run should do now: ``submit`` these children, ``cancel`` these ids, and why it stops."""

    submit: tuple[ChildOrder, ...] = ()
    cancel: tuple[str, ...] = ()
    reason: str | None = None


@dataclass(frozen=True)
class ChildWork:
    """What a submission run did for one parent: ids ``submitted`` and ``cancelled`` now, ``rejected``
    (id, message), the stop ``reason`` (guard, STOPPED, NO_QUOTE, SESSION_CLOSED, a kill switch) and the
    broker's view of each known child after the run, keyed by child id (the live revision's order)."""

    parent_id: str
    symbol: str
    reason: str | None
    submitted: tuple[str, ...] = ()
    cancelled: tuple[str, ...] = ()
    rejected: tuple[tuple[str, str], ...] = ()
    orders: dict[str, BrokerOrder] = field(default_factory=dict)

    @property
    def filled_qty(self) -> float:
        """Shares filled on the children's live revisions. A revision replaced after a partial fill keeps
        that fill on its own id: read it with ``fills([child, child-r1, ...])``."""
        return round_qty(sum(o.filled_qty for o in self.orders.values()))


def session_bounds(session: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The XNYS regular open and close of ``session`` (UTC); early closes included."""
    if not calendar.is_session(session):
        raise ValueError(f"{session} is not an XNYS session")
    cal = calendar.xnys()
    ts = pd.Timestamp(session)
    return cal.session_open(ts).to_pydatetime(), cal.session_close(ts).to_pydatetime()


def bucket_starts(opens_at: dt.datetime, closes_at: dt.datetime, n_buckets: int = N_BUCKETS) -> tuple[dt.datetime, ...]:
    """Start of each of ``n_buckets`` equal buckets between the open and the close."""
    step = (closes_at - opens_at) / n_buckets
    return tuple(opens_at + k * step for k in range(n_buckets))


def _whole_shares(symbol: str, planned: np.ndarray, qty: float) -> list[float]:
    """Planned float shares per bucket as whole shares (rounded on the cumulative sum, so the total is exact)
    plus the parent's fractional part on the last child; a complete schedule adds up to ``qty`` exactly."""
    whole = math.floor(round_qty(qty))
    frac = round_qty(qty - whole)
    complete = float(planned.sum()) >= qty * (1 - 1e-9)
    targets = [min(math.floor(c + 0.5), whole) for c in np.cumsum(planned)]
    if complete:
        targets[-1] = whole
    shares: list[float] = [float(t - p) for t, p in zip(targets, [0, *targets[:-1]], strict=True)]
    if complete and frac > 0:
        carriers = [k for k, s in enumerate(shares) if s > 0] or [int(np.flatnonzero(planned > 0)[0])]
        shares[carriers[-1]] = round_qty(shares[carriers[-1]] + frac)
    if complete and round_qty(sum(shares)) != round_qty(qty):
        raise AssertionError(f"{symbol}: children add up to {sum(shares)} shares, not {qty}")
    return shares


def plan_children(
    parent: OrderRequest,
    session: dt.date,
    *,
    arrival_price: float,
    adv: float,
    profile: np.ndarray | None = None,
    n_buckets: int = N_BUCKETS,
) -> ChildPlan:
    """The children of ``parent`` over ``session`` (module docstring).

    ``arrival_price`` dollars: the price the PRICE_AWAY guard measures from and a LIMIT parent without a
    limit price is pegged to (the session's opening price, or the first live quote of the session);
    ``adv`` the average daily volume (shares) the VWAP/POV schedules and the volume guard scale by;
    ``profile`` the expected volume share per bucket (default the simulator's U shape).
    """
    symbol, pid = parent.symbol, parent.client_order_id
    if not (math.isfinite(arrival_price) and arrival_price > 0):
        raise ValueError(f"{symbol} order {pid}: arrival price must be > 0 dollars, got {arrival_price}")
    if not (math.isfinite(adv) and adv > 0):
        raise ValueError(f"{symbol} order {pid}: ADV must be > 0 shares, got {adv}")
    if parent.strategy not in set(Strategy):
        known = [s.value for s in Strategy]
        raise ValueError(f"{symbol} order {pid}: unknown execution strategy {parent.strategy!r}; known: {known}")
    strategy = Strategy(parent.strategy)
    try:
        prof = volume_profile(profile, n_buckets)
    except ValueError as e:
        raise ValueError(f"{symbol} order {pid}: {e}") from None
    request = policy_request(parent, arrival_price)
    opens_at, closes_at = session_bounds(session)
    starts = bucket_starts(opens_at, closes_at, n_buckets)
    planned = child_schedule(strategy, parent.qty, adv * prof, pov_rate=parent.pov_rate)
    children = tuple(
        ChildOrder(
            request=replace(request, client_order_id=child_id(pid, k), qty=qty),
            parent_id=pid,
            bucket=k,
            due=starts[k],
        )
        for k, qty in enumerate(_whole_shares(symbol, planned, parent.qty))
        if qty > 0
    )
    return ChildPlan(
        parent=request,
        session=session,
        arrival_price=float(arrival_price),
        adv=float(adv),
        profile=tuple(float(p) for p in prof),
        opens_at=opens_at,
        closes_at=closes_at,
        children=children,
    )


def elapsed_volume_share(plan: ChildPlan, now: dt.datetime) -> float:
    """Share of the day's expected volume traded by ``now`` under the plan's profile: 0 at the open, 1 at
    the close, linear inside a bucket."""
    _aware(now)
    if now <= plan.opens_at:
        return 0.0
    if now >= plan.closes_at:
        return 1.0
    n = len(plan.profile)
    x = (now - plan.opens_at) / (plan.closes_at - plan.opens_at) * n
    k = min(int(x), n - 1)
    return float(sum(plan.profile[:k]) + (x - k) * plan.profile[k])


def guard(plan: ChildPlan, quote: LiveQuote, now: dt.datetime, params: CostParams) -> str | None:
    """PRICE_AWAY, VOLUME_ANOMALY (checked in that order, as the simulator does) or None (module docstring)."""
    if abs(quote.last / plan.arrival_price - 1) > params.price_away_cancel:
        return PRICE_AWAY
    expected = plan.adv * max(elapsed_volume_share(plan, now), plan.profile[0])
    if quote.volume > params.volume_anomaly_ratio * expected:
        return VOLUME_ANOMALY
    return None


def next_actions(
    plan: ChildPlan,
    now: dt.datetime,
    known: Mapping[str, BrokerOrder],
    quote: LiveQuote | None,
    params: CostParams,
) -> ChildActions:
    """What to do with ``plan`` at ``now`` given the broker's ``known`` children (child id -> the live
    revision's order): after the close nothing; a child cancelled at the broker: cancel the open rest
    (STOPPED); no quote: nothing (NO_QUOTE); a guard hit: cancel the open children; else submit the
    children due by ``now`` that the broker does not know, in bucket order."""
    _aware(now)
    if now >= plan.closes_at:
        return ChildActions(reason=SESSION_CLOSED)
    open_ids = tuple(o.client_order_id for _, o in sorted(known.items()) if not o.status.terminal)
    if any(o.status is OrderStatus.CANCELLED for o in known.values()):
        return ChildActions(cancel=open_ids, reason=STOPPED)
    if now < plan.opens_at:
        return ChildActions()
    if quote is None:
        return ChildActions(reason=NO_QUOTE)
    reason = guard(plan, quote, now, params)
    if reason is not None:
        return ChildActions(cancel=open_ids, reason=reason)
    due = tuple(c for c in plan.children if c.due <= now and c.client_order_id not in known)
    return ChildActions(submit=due)


def due_children(plan: ChildPlan, now: dt.datetime) -> tuple[ChildOrder, ...]:
    """Children whose bucket has started by ``now`` (the ones a run may have submitted)."""
    _aware(now)
    return tuple(c for c in plan.children if c.due <= now)


def _aware(now: dt.datetime) -> None:
    if now.tzinfo is None:
        raise ValueError(f"now must be timezone-aware, got {now}")
