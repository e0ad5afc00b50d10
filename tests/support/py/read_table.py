"""Reads an Iceberg table back with pyiceberg, independently of the archiver (tests/tests/archive.rs).

Usage: read_table.py sql|rest CATALOG_NAME URI WAREHOUSE NAMESPACE.TABLE
(sql: URI is the SQLite catalog's sqlite:/// URI; rest: the REST catalog's http:// URI)
Prints one JSON object: the row count, the event ids (sorted, with repeats), the schema
(name, type, required per top-level field), the partition spec, and the snapshots' summaries.
"""

import json
import sys

from pyiceberg.catalog.rest import RestCatalog
from pyiceberg.catalog.sql import SqlCatalog


def main() -> None:
    kind, name, uri, warehouse, ident = sys.argv[1:6]
    if kind == "rest":
        catalog = RestCatalog(name, uri=uri, warehouse=warehouse)
    else:
        catalog = SqlCatalog(name, uri=uri, warehouse=warehouse)
    table = catalog.load_table(ident)
    arrow = table.scan().to_arrow()
    ids = sorted(arrow.column("eventId").to_pylist()) if arrow.num_rows else []
    schema = table.schema()
    spec = table.spec()
    out = {
        "rows": arrow.num_rows,
        "event_ids": ids,
        "schema": [
            {"id": f.field_id, "name": f.name, "type": str(f.field_type), "required": f.required}
            for f in schema.fields
        ],
        "partition_spec": [
            {
                "name": f.name,
                "transform": str(f.transform),
                "source": schema.find_column_name(f.source_id),
            }
            for f in spec.fields
        ],
        "snapshots": [
            {"id": s.snapshot_id, "summary": dict(s.summary.additional_properties) if s.summary else {}}
            for s in table.snapshots()
        ],
        "data_files": [t.file.file_path for t in table.scan().plan_files()],
    }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
