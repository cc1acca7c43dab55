"""tickflow engine: YAML pipeline specs -> validated DAG -> Spark runs.

The engine knows nothing about finance; domain logic lives in ``transforms``.
"""
