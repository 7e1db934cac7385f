"""Reporting: evaluation records (JSON lines) and the paper-layout tables regenerated from them."""

from ganbench.report.records import append_record, environment_versions, read_records, record_id_of
from ganbench.report.tables import check_tables, render_tables, write_tables

__all__ = ["append_record", "check_tables", "environment_versions", "read_records", "record_id_of",
           "render_tables", "write_tables"]
