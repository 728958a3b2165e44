"""Dagster assets: one module per stage; each reads inputs, calls the domain, writes, reports."""
