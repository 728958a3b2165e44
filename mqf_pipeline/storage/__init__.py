"""Storage: the table schemas (declared once in schema.sql), the Parquet lake, the DuckDB catalog."""
