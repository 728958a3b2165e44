"""Execution tests: brokers (paper, Alpaca against a local fake) and the live-trading guard."""
