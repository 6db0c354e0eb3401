"""A Flight SQL client no one here wrote (ADBC), against a live scheduler.

Usage: flight_sql_client.py URI TOKEN. Prints one JSON object: each query's
rows and Arrow types, the tables ADBC's catalog calls see, one table's
schema, and what the scheduler answered without the token and with a wrong
one. The Rust test (tests/e2e/flight_sql.rs) checks every value.
"""

import json
import sys

import adbc_driver_flightsql.dbapi as flight_sql
from adbc_driver_flightsql import DatabaseOptions


def connect(uri, token):
    options = {} if token is None else {DatabaseOptions.AUTHORIZATION_HEADER.value: f"Bearer {token}"}
    return flight_sql.connect(uri, db_kwargs=options)


def query(conn, sql, parameters=None):
    with conn.cursor() as cur:
        cur.execute(sql, parameters)
        table = cur.fetch_arrow_table()
    return {
        "rows": table.to_pylist(),
        "types": {field.name: str(field.type) for field in table.schema},
    }


def refusal(uri, token):
    try:
        with connect(uri, token) as conn:
            query(conn, "SELECT 1 AS one")
    except Exception as e:  # the driver's own error types vary by version
        return str(e)
    return None


def main():
    uri, token = sys.argv[1], sys.argv[2]
    out = {}
    with connect(uri, token) as conn:
        out["dcs"] = query(conn, "SELECT dc_id, capacity_units FROM dcs_dim ORDER BY dc_id")
        # A prepared statement, bound twice.
        bigger = "SELECT dc_id FROM dcs_dim WHERE capacity_units > $1 ORDER BY dc_id"
        out["prepared"] = [query(conn, bigger, (600,))["rows"], query(conn, bigger, (100,))["rows"]]
        out["range"] = query(conn, "SELECT count(*) AS n, sum(value) AS total FROM partitioned_range(100000, 4)")
        try:
            query(conn, "SELECT nope FROM dcs_dim")
            out["bad_sql"] = None
        except Exception as e:
            out["bad_sql"] = str(e)
        objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
        out["tables"] = sorted(
            table["table_name"]
            for catalog in objects
            for schema in catalog["catalog_db_schemas"]
            for table in schema["db_schema_tables"]
        )
        out["catalogs"] = sorted(catalog["catalog_name"] for catalog in objects)
        schema = conn.adbc_get_table_schema("dcs_dim", catalog_filter="datafusion", db_schema_filter="public")
        out["dcs_schema"] = {field.name: str(field.type) for field in schema}
    out["no_token"] = refusal(uri, None)
    out["wrong_token"] = refusal(uri, "not-the-token")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
