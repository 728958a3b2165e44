"""Risk metrics: value at risk, expected shortfall, EVT tails and VaR backtests (pure numpy)."""
