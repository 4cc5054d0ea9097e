"""The job service's core: states and their one transition table, the records, the store (the only place
SQL runs) with its schema and migrations, workspaces, executor options and the cards this host has.

Nothing here imports the layers above (policy, executors, the service modules): tests/test_boundaries.py.
"""
