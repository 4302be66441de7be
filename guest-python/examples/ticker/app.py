"""The ticker example: a reducer that runs every second on its own.

`init` inserts one row into `tick_schedule`, the schedule of the `tick`
reducer; the host runs `tick` with that row once a second, as the database
owner, and `tick` counts the runs in the public `counter` table.
"""

from dataclasses import dataclass
from typing import Annotated

from worldline import (Timestamp, auto_inc, log, primary_key, reducer, schedule_at,
                       schedule_interval, table, u32, u64)

EVERY_MICROS = 1_000_000
"""How often `tick` runs."""


@table(name="tick_schedule", scheduled="tick")
@dataclass
class TickSchedule:
    """The schedule of `tick`: each row is one repeating run."""

    id: Annotated[u64, primary_key, auto_inc]
    at: Annotated[Timestamp, schedule_at]
    every: Annotated[u64, schedule_interval]


@table(name="counter", public=True)
@dataclass
class Counter:
    """How many times `tick` has run (one row, id 0)."""

    id: Annotated[u32, primary_key]
    ticks: u64
    last_tick: Timestamp


@reducer(init=True)
def init(ctx):
    """Starts the counter at zero and schedules the first tick a second from now."""
    ctx.db.counter.insert(Counter(0, 0, ctx.timestamp))
    ctx.db.tick_schedule.insert(TickSchedule(0, ctx.timestamp + EVERY_MICROS, EVERY_MICROS))


@reducer
def tick(ctx, row: TickSchedule):
    """Counts one tick. The host calls it with the schedule row that is due."""
    counter = ctx.db.counter.id.find(0)
    if counter is not None:
        counter.ticks += 1
        counter.last_tick = ctx.timestamp
        ticks = ctx.db.counter.id.update(counter).ticks
    else:
        ticks = ctx.db.counter.insert(Counter(0, 1, ctx.timestamp)).ticks
    late = max(0, ctx.timestamp - row.at)
    log.info(f"tick {ticks} (schedule {row.id}, {late} µs after its time)")
