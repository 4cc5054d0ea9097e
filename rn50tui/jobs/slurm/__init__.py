"""Running jobs on a Slurm cluster: the executor, the batch script, the per-node runner, the scheduler's
commands and states, and the watcher that turns them into job states."""
