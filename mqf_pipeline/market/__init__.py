"""Market data: the simulator, providers, the router and the canonical bars contract."""
