"""mailproc: a support desk that runs on email.

The flow of one message, each stage in a module of its own name:

    fetch / sources  ->  rawstore  ->  parse  ->  stages.screen  ->  stages.thread
        ->  stages.classify  ->  stages.act  ->  outbox  ->  send

`pipeline` walks the stages; `daemon` runs intake and sending on a schedule.
"""

__version__ = "0.1.0"
