"""Market-data providers behind one protocol (:class:`MarketDataProvider`).

``simulated`` (the built-in market simulator), ``files`` (local CSV/Parquet), ``yahoo``
(yfinance), ``alpaca`` (alpaca-py) and ``fred`` (fredapi). Provider classes are imported lazily,
so importing this package does not import yfinance, alpaca-py or fredapi.
"""

from __future__ import annotations

import importlib
from typing import Any

from mqf_pipeline.market.providers.base import (
    CAPABILITIES,
    CORPORATE_ACTIONS_SCHEMA,
    MACRO_SCHEMA,
    BarsRequest,
    MarketDataProvider,
    ProviderError,
    ProviderResult,
    ProviderTimeoutError,
    ProviderUnavailable,
    RateLimitedError,
    RequestLog,
    TransportControl,
    request_log_frame,
)

#: provider name -> (module, class)
PROVIDER_CLASSES: dict[str, tuple[str, str]] = {
    "simulated": ("mqf_pipeline.market.providers.simulated", "SimulatedProvider"),
    "files": ("mqf_pipeline.market.providers.files", "FilesProvider"),
    "yahoo": ("mqf_pipeline.market.providers.yahoo", "YahooProvider"),
    "alpaca": ("mqf_pipeline.market.providers.alpaca", "AlpacaProvider"),
    "fred": ("mqf_pipeline.market.providers.fred", "FredProvider"),
}


def provider_class(name: str) -> type:
    """The provider class registered under ``name``; the error lists the known names."""
    if name not in PROVIDER_CLASSES:
        raise KeyError(f"unknown provider {name!r}; known: {sorted(PROVIDER_CLASSES)}")
    module, cls = PROVIDER_CLASSES[name]
    return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]


def make_provider(name: str, **kwargs: Any) -> MarketDataProvider:
    """Instantiate the provider ``name`` with its constructor arguments."""
    return provider_class(name)(**kwargs)  # type: ignore[no-any-return]


def __getattr__(attr: str) -> type:
    for module, cls in PROVIDER_CLASSES.values():
        if cls == attr:
            return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


__all__ = [
    "CAPABILITIES",
    "CORPORATE_ACTIONS_SCHEMA",
    "MACRO_SCHEMA",
    "PROVIDER_CLASSES",
    "BarsRequest",
    "MarketDataProvider",
    "ProviderError",
    "ProviderResult",
    "ProviderTimeoutError",
    "ProviderUnavailable",
    "RateLimitedError",
    "RequestLog",
    "TransportControl",
    "make_provider",
    "provider_class",
    "request_log_frame",
]
