"""Which job runs when (APScheduler 3), who leads, and how each job is doing.

Scheduled monitors must run on exactly one process: two schedulers sharing a job store
produce duplicate and missed runs. Leadership is one thing per process, held by one
thread (:class:`LeaderElection`): with PostgreSQL it takes a session advisory lock on a
connection of its own, checks every ``election_interval`` that the session still holds it,
and steps down the moment it does not (session terminated, database unreachable). If the
process dies its connection closes, the server releases the lock, and a standby takes it
at its next attempt. With SQLite there is one process, so it always leads.

Jobs never touch the lock: a leader-only job asks :attr:`LeaderElection.is_leader` and
does nothing on a standby. (Before, each job tried to take the lock itself; two jobs
starting at the same instant raced, the lock ended up on a pooled connection and the
process never led again while reporting itself healthy.)

Every run is recorded by :class:`JobLedger`: in memory for this process and as a
``job_runs`` row, so a web-only process can see whether the leader's jobs are running.
"""

from forewarn.scheduler.jobs import LEADER_JOB, Scheduler
from forewarn.scheduler.leader import LEADER_LOCK_KEY, LeaderElection
from forewarn.scheduler.ledger import JobLedger, JobState, describe_error, job_rows

__all__ = [
    "LEADER_JOB",
    "LEADER_LOCK_KEY",
    "JobLedger",
    "JobState",
    "LeaderElection",
    "Scheduler",
    "describe_error",
    "job_rows",
]
