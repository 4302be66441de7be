// The ticker example: a reducer the server runs every second, counting its
// runs. The same module as guest-rust/examples/ticker: a schedule is a
// table whose rows are the reducer's future runs.
#include <worldline/worldline.hpp>

using worldline::Timestamp;

/// How often `tick` runs, in microseconds.
constexpr uint64_t every_micros = 1'000'000;

/// One scheduled run of `tick`: due at `at`, then every `every` µs.
struct TickSchedule {
    uint64_t id;
    Timestamp at;
    uint64_t every;
};
WORLDLINE_ROW(TickSchedule, id, at, every);

inline worldline::Table<TickSchedule> tick_schedule{
    "tick_schedule",
    worldline::Private,
    worldline::primary_key(&TickSchedule::id),
    worldline::auto_inc(&TickSchedule::id),
    worldline::scheduled("tick", &TickSchedule::at, &TickSchedule::every),
};

/// How many times `tick` ran, and when it last did.
struct Counter {
    uint32_t id;
    uint64_t ticks;
    Timestamp last_tick;
};
WORLDLINE_ROW(Counter, id, ticks, last_tick);

inline worldline::Table<Counter> counter{"counter", worldline::Public, worldline::primary_key(&Counter::id)};

/// Starts the counter and schedules the first tick a second from now.
WORLDLINE_INIT(init) {
    counter.insert(Counter{0, 0, ctx.timestamp});
    tick_schedule.insert(TickSchedule{0, ctx.timestamp.plus_micros(every_micros), every_micros});
    return {};
}

/// Counts one run; the server calls it with the schedule's row.
WORLDLINE_REDUCER(tick, (TickSchedule, row)) {
    auto by_id = counter.by(&Counter::id);
    uint64_t ticks = 1;
    if (auto found = by_id.find(0)) {
        found->ticks += 1;
        found->last_tick = ctx.timestamp;
        ticks = by_id.update(*found).ticks;
    } else {
        counter.insert(Counter{0, 1, ctx.timestamp});
    }
    int64_t late = ctx.timestamp.micros > row.at.micros ? ctx.timestamp.micros - row.at.micros : 0;
    worldline::log::info("tick " + std::to_string(ticks) + " (schedule " + std::to_string(row.id) + ", " +
                         std::to_string(late) + " µs after its time)");
    return {};
}
