//! The names of what the harness puts in a trial's directory besides the store and the
//! ledger (theirs are `store::FILE_NAME`, `ledger::FILE_NAME`): the harness makes these
//! entries, and the reading of a stopped system call (`seccomp::call`) tells them from
//! the buyers' own files.

/// The socket of the trial's own Redis server (a command's `{redis}`).
pub(crate) const REDIS_SOCKET: &str = "redis.sock";

/// The directory of the trial's own PostgreSQL cluster and socket.
pub(crate) const PG_DIR: &str = "pg";

/// The socket `postgres` listens on, in [`PG_DIR`].
pub(crate) const PG_SOCKET: &str = ".s.PGSQL.5432";

/// The trial's clock file, which a user's command's processes map: oversell's own,
/// never a step.
pub(crate) const CLOCK_FILE: &str = "clock.bin";

/// Where a whole program's standard output goes (its sales are read from it).
pub(crate) const PROGRAM_OUTPUT: &str = "program.out";
