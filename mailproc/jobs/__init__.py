"""The workflow's timed work, one module per family of due items.

Each module has `plan(ctx, case)` (the items the case's state calls for, as
`due.Planned`) and `RUN` (kind -> function doing the item), and may have
`refresh(ctx, case, now)` for columns derived from the state; `mailproc.timers`
gathers them and `mailproc.sweep` runs them. `_mail` queues their mail.
"""
