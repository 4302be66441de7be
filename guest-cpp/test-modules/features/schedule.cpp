// A scheduled reducer for the end-to-end tests of schedules, as in the Rust
// module's schedule.rs: each run of a `features_schedule` row leaves a row
// in `schedule_runs`.
#include "features.hpp"

using worldline::Timestamp;

/// When to run `on_schedule`, and how often.
struct FeaturesSchedule {
    /// The schedule's id.
    uint64_t id;
    /// When the row is next due.
    Timestamp at;
    /// Repeat every so many microseconds; 0 runs once.
    uint64_t every;
    /// Copied into each run; `fail` makes the run fail after writing.
    std::string note;
};
WORLDLINE_ROW(FeaturesSchedule, id, at, every, note);

inline worldline::Table<FeaturesSchedule> features_schedule{
    "features_schedule",
    worldline::Public,
    worldline::primary_key(&FeaturesSchedule::id),
    worldline::auto_inc(&FeaturesSchedule::id),
    worldline::scheduled("on_schedule", &FeaturesSchedule::at, &FeaturesSchedule::every),
};

/// One run of `on_schedule`.
struct ScheduleRun {
    /// The run's id, in order of runs.
    uint64_t id;
    /// The schedule row's note.
    std::string note;
    /// The run's transaction timestamp.
    Timestamp ran_at;
};
WORLDLINE_ROW(ScheduleRun, id, note, ran_at);

inline worldline::Table<ScheduleRun> schedule_runs{
    "schedule_runs",
    worldline::Public,
    worldline::primary_key(&ScheduleRun::id),
    worldline::auto_inc(&ScheduleRun::id),
};

/// Records the run; a row whose note is `fail` fails after writing, so its
/// run rolls back (and the row is taken off the schedule all the same).
WORLDLINE_REDUCER(on_schedule, (FeaturesSchedule, row)) {
    schedule_runs.insert(ScheduleRun{0, row.note, ctx.timestamp});
    if (row.note == "fail") return "schedule " + std::to_string(row.id) + " failed on purpose";
    return {};
}

/// Schedules `on_schedule` `micros` microseconds from now, repeating every
/// `every` microseconds (0 = once). The first row gets id 1.
WORLDLINE_REDUCER(schedule_in, (uint64_t, micros), (uint64_t, every), (std::string, note)) {
    auto delay = static_cast<int64_t>(std::min<uint64_t>(micros, INT64_MAX));
    features_schedule.insert(FeaturesSchedule{0, ctx.timestamp.plus_micros(delay), every, note});
    return {};
}

/// Cancels schedule `id`.
WORLDLINE_REDUCER(unschedule, (uint64_t, id)) {
    if (features_schedule.by(&FeaturesSchedule::id).erase(id)) return {};
    return "no schedule " + std::to_string(id);
}
