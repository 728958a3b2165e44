"""Which failures a retry can cure: the error taxonomy the asset retry policy and run retries follow.

A **transient** failure may pass on its own: the network (connection refused or reset, timeouts), a
provider's rate limit or 5xx, a broker that says retrying may help, the catalog file held by another
process past the wait. Retrying it, with backoff, is right.

A **permanent** failure cannot succeed on a retry because nothing outside the code and its inputs
changes between attempts: a bad config, a table that does not match its schema, a broken data
contract (a signal, bars, a damaged lake file), missing upstream state, and the guards' refusals
(kill switch, live trading without its safeguards). Retrying it only hides it from the operator for
minutes. Anything not recognised is treated as permanent as well: an unknown error is far more often
a bug than a blip, and the step's retries are for blips.

The classification walks the exception's causes (``raise ... from``), so a permanent error wrapped in
a generic one is still seen.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass

import polars.exceptions as pl_exc
import pydantic

from mqf_pipeline.agents.base import SignalContractError
from mqf_pipeline.agents.registry import AgentImportError, UnknownAgentError
from mqf_pipeline.config import ConfigError
from mqf_pipeline.decisions.audit import AuditWriteError
from mqf_pipeline.execution.brokers.base import BrokerError, LiveTradingRefusedError
from mqf_pipeline.execution.orders import OrderStateError
from mqf_pipeline.kill_switch import KillSwitchEngagedError
from mqf_pipeline.market.bars import BarsSchemaError
from mqf_pipeline.market.providers.base import ProviderError
from mqf_pipeline.stages.base import StageStateError
from mqf_pipeline.stages.plan import InceptionError
from mqf_pipeline.storage.catalog import CatalogLockedError
from mqf_pipeline.storage.lake import LakeReadError
from mqf_pipeline.storage.schema import SchemaError


class Kind(enum.Enum):
    """Whether retrying can cure a failure."""

    TRANSIENT = "transient"
    PERMANENT = "permanent"


#: Failures that cannot succeed on a retry, by what they are (for the CLI's one-line reason).
PERMANENT_ERRORS: dict[type[BaseException], str] = {
    ConfigError: "config",
    pydantic.ValidationError: "config",
    SchemaError: "schema",
    pl_exc.SchemaError: "schema",
    pl_exc.ColumnNotFoundError: "schema",
    BarsSchemaError: "data contract",
    SignalContractError: "data contract",
    LakeReadError: "data contract",
    StageStateError: "missing state",
    InceptionError: "config",
    UnknownAgentError: "config",
    AgentImportError: "config",
    OrderStateError: "data contract",
    KillSwitchEngagedError: "guard refusal",
    LiveTradingRefusedError: "guard refusal",
    AuditWriteError: "audit write",
}

#: Failures a retry may cure (network, rate limit, lock timeout).
TRANSIENT_ERRORS: dict[type[BaseException], str] = {
    CatalogLockedError: "lock timeout",
    ConnectionError: "network",
    TimeoutError: "network",
}


def causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the exceptions it was raised from (explicit ``__cause__`` first, else ``__context__``)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _retryable_flag(exc: BaseException) -> bool | None:
    """Providers and brokers say themselves whether retrying may help (429, timeout, 5xx)."""
    if isinstance(exc, ProviderError | BrokerError):
        return bool(exc.retryable)
    return None


@dataclass(frozen=True)
class Classified:
    """A failure's kind, its category (``config``, ``network``...) and the exception that decided it."""

    kind: Kind
    category: str
    error: BaseException

    @property
    def retryable(self) -> bool:
        return self.kind is Kind.TRANSIENT

    def one_line(self, limit: int = 400) -> str:
        """``category: Class: message`` on one line (newlines folded), cut at ``limit`` characters."""
        text = " ".join(str(self.error).split()) or "(no message)"
        line = f"{self.category}: {type(self.error).__name__}: {text}"
        return line if len(line) <= limit else line[: limit - 3] + "..."


def classify(exc: BaseException) -> Classified:
    """The first recognised exception in ``exc``'s cause chain decides; an unrecognised chain is
    permanent (``unexpected``) and reported by its innermost exception, where it went wrong."""
    chain = list(causes(exc))
    for err in chain:
        flag = _retryable_flag(err)
        if flag is not None:
            return Classified(Kind.TRANSIENT if flag else Kind.PERMANENT, "network" if flag else "refused", err)
        for types, kind in ((PERMANENT_ERRORS, Kind.PERMANENT), (TRANSIENT_ERRORS, Kind.TRANSIENT)):
            for cls, category in types.items():
                if isinstance(err, cls):
                    return Classified(kind, category, err)
    return Classified(Kind.PERMANENT, "unexpected", chain[-1])
