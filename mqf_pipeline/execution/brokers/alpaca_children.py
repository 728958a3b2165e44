"""Child orders at Alpaca (:mod:`mqf_pipeline.execution.child_orders`), mixed into :class:`AlpacaBroker`:
the live revision of each child through cancel-replace (``<child>-rN``), the replace itself (``PATCH
/v2/orders/{id}``), and the rerun-safe intraday step that submits the children due and cancels on the
PRICE_AWAY and VOLUME_ANOMALY guards. The methods use the broker's lookup, retrying send and cancel."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from mqf_pipeline import calendar
from mqf_pipeline.execution.brokers.alpaca_orders import _map_order, replace_payload
from mqf_pipeline.execution.brokers.base import BrokerError, OrderRejectedError
from mqf_pipeline.execution.child_orders import (
    NO_QUOTE,
    PRICE_AWAY,
    VOLUME_ANOMALY,
    ChildPlan,
    ChildWork,
    LiveQuote,
    base_child_id,
    due_children,
    next_actions,
    revision_id,
)
from mqf_pipeline.execution.orders import BrokerOrder
from mqf_pipeline.execution.sim_inputs import CostParams

logger = logging.getLogger("mqf_pipeline.execution.brokers.alpaca")


class AlpacaChildOrders:
    """The child-order methods of :class:`~mqf_pipeline.execution.brokers.alpaca.AlpacaBroker` (they call its
    ``_find``, ``_send_once``, ``submit`` and ``cancel``)."""

    name: str
    _client: Any

    def _live_raw(self, client_order_id: str) -> tuple[object | None, int]:
        """A child's live revision as Alpaca's JSON and its number N (``<child>-rN``; 0 the child itself),
        following the revisions while Alpaca reports the order replaced; (None, 0) for an unknown child."""
        base = base_child_id(client_order_id)
        raw, n = self._find(base), 0
        while isinstance(raw, dict) and raw.get("status") in ("replaced", "pending_replace"):
            nxt = self._find(revision_id(base, n + 1))
            if nxt is None:
                if raw.get("status") == "replaced":
                    raise BrokerError(
                        f"{self.name}: order {revision_id(base, n)} ({raw.get('symbol')}) was replaced by an order "
                        f"outside the fund's id scheme ({revision_id(base, n + 1)} is unknown)"
                    )
                break  # pending_replace and the new revision not visible yet: the old one is still live
            raw, n = nxt, n + 1
        return raw, n

    def live_orders(self, client_order_ids: Sequence[str]) -> dict[str, BrokerOrder]:
        """Alpaca's view of each child's live revision (cancel-replace followed), keyed by the child id
        (revision suffix removed); ids Alpaca does not know are absent."""
        out: dict[str, BrokerOrder] = {}
        for cid in dict.fromkeys(base_child_id(c) for c in client_order_ids):
            raw, _ = self._live_raw(cid)
            if raw is not None:
                out[cid] = _map_order(self.name, raw)
        return out

    def replace(
        self, client_order_id: str, *, qty: float | None = None, limit_price: float | None = None
    ) -> BrokerOrder:
        """Cancel-replace a child's live revision N by revision N+1 (``<child>-r<N+1>``, ``PATCH
        /v2/orders/{id}``) with ``qty`` shares and/or ``limit_price`` dollars; returns the new revision.

        Rerun-safe: when the live revision already has that qty and limit price nothing is sent, and the new
        id is never created twice (:meth:`_send_once`). A filled, cancelled or rejected order raises
        :class:`OrderRejectedError` naming it; so do Alpaca's 403/422.
        """
        base = base_child_id(client_order_id)
        raw, n = self._live_raw(base)
        if raw is None:
            raise BrokerError(f"{self.name}: no order {base} to replace")
        live = _map_order(self.name, raw)
        if (qty is None or qty == live.qty) and (limit_price is None or limit_price == live.limit_price):
            return live
        if live.status.terminal:
            raise OrderRejectedError(
                f"{self.name}: order {live.client_order_id} ({live.symbol}) is {live.status.value}; cannot replace it"
            )
        new_id = revision_id(base, n + 1)
        body = replace_payload(live.symbol, new_id, qty, limit_price)
        what = f"replace of order {live.client_order_id} ({live.symbol}) by {new_id}"
        broker_id = live.broker_order_id
        logger.info("%s: %s", self.name, what)
        return _map_order(
            self.name, self._send_once(what, new_id, lambda: self._client.patch(f"/orders/{broker_id}", body))
        )

    def work_children(
        self,
        plans: Sequence[ChildPlan],
        *,
        now: dt.datetime,
        quotes: Mapping[str, LiveQuote],
        params: CostParams | None = None,
        kill_switch: Callable[[], str | None] | None = None,
    ) -> list[ChildWork]:
        """One rerun-safe pass over ``plans`` at ``now`` (timezone-aware); run it every few minutes during
        the session. Per parent: look up its children due by ``now`` (live revisions), decide with
        :func:`~mqf_pipeline.execution.child_orders.next_actions` on ``quotes[symbol]`` (last price dollars,
        session volume shares) and ``params``' guards (default :class:`CostParams`: 5% away, 3x ADV), cancel
        what the guards stop, and submit the due children Alpaca does not know yet, in bucket order.
        Running it twice at the same ``now`` sends nothing the second time.

        ``kill_switch`` (a reason or None) is asked before every submission; a reason stops that parent's
        submissions and is its ``reason``. A child Alpaca refuses (403/422) is listed in ``rejected`` and
        the parent's later children still go.
        """
        params = params or CostParams()
        out: list[ChildWork] = []
        for plan in plans:
            parent, pid = plan.parent, plan.parent.client_order_id
            known = self.live_orders([c.client_order_id for c in due_children(plan, now)])
            quote = quotes.get(parent.symbol)
            actions = next_actions(plan, now, known, quote, params)
            reason = actions.reason
            cancelled: list[str] = []
            submitted: list[str] = []
            rejected: list[tuple[str, str]] = []
            if actions.cancel or reason in (PRICE_AWAY, VOLUME_ANOMALY, NO_QUOTE):
                logger.warning(
                    "%s: %s order %s: %s (quote %s, arrival %g, ADV %g); cancelling %d open child(ren)",
                    self.name,
                    parent.symbol,
                    pid,
                    reason,
                    quote,
                    plan.arrival_price,
                    plan.adv,
                    len(actions.cancel),
                )
            for cid in actions.cancel:
                known[base_child_id(cid)] = self.cancel(cid)
                cancelled.append(cid)
            for child in actions.submit:
                blocked = kill_switch() if kill_switch is not None else None
                if blocked:
                    reason = blocked
                    break
                try:
                    order = self.submit(child.request, session=calendar.previous_session(plan.session))
                except OrderRejectedError as e:
                    rejected.append((child.client_order_id, str(e)))
                    continue
                known[child.client_order_id] = order
                submitted.append(child.client_order_id)
            out.append(
                ChildWork(pid, parent.symbol, reason, tuple(submitted), tuple(cancelled), tuple(rejected), known)
            )
        return out
