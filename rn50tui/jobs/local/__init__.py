"""Running an attempt on this host: the local executor, the detached supervisor that owns the engine's
process (signals, grace, exit code), the launcher that builds its command line, and pid identity.
"""
