"""The index: a database derived from the object store (schema, migrations, queries)."""
