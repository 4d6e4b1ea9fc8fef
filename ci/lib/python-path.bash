# Sourced by the CI scripts that run Python lock commands or programs under control.
# pyenv's `python3` is a shell script that finds the interpreter on each start; under a
# controlled schedule every call of that script is a step, and it costs a Python
# fixture most of its time. Its interpreter goes first on PATH, as tests/suite does
# (`common::test_path`): the same interpreter the shim would run, so what is checked
# does not change.
if pydir=$(python3 -c 'import os, sys; print(os.path.dirname(sys.executable))' 2>/dev/null) &&
  [ -n "$pydir" ]; then
  PATH="$pydir:$PATH"
fi
