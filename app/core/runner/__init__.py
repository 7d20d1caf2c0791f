"""Start, supervise and stop the embedded Strata stack, one job per module:

* `paths`       - where the stack keeps its files, and the binaries it runs;
* `environment` - what each supervised program gets in its environment;
* `config`      - the supervisord and Valkey configuration (`strata run` rewrites
  both on every start), and the embedded Valkey's password;
* `supervise`   - `run()` supervisord in the foreground, `stop()` it from any
  shell, `supervisorctl()` single programs, clean up what a killed one left;
* `frontend`    - the production frontend build, skipped while its inputs are
  unchanged;
* `web`         - the supervisor's `web` program: Reflex's production server
  with that build mounted, on one port.

Command line (used by the supervisor config, Makefile and Dockerfile):
``python -m app.core.runner {web,build-frontend,config,run,stop}``.

Nothing in this package is imported when Reflex compiles the app (a test checks
it), so the frontend fingerprint leaves it out: editing supervision code never
costs a frontend rebuild.
"""
