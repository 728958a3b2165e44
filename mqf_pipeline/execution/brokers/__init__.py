"""Brokers: the paper broker (fills through the simulator's cost model) and Alpaca (alpaca-py)."""
