// The bank example: accounts and transfers between them, the same module
// as guest-rust/examples/bank. `transfer` is the workload of the headline
// benchmark: it reads two rows and writes two rows.
//
// The other reducers exist for the host's failure-mode tests.
#include <worldline/worldline.hpp>

/// An account and its balance.
struct Account {
    /// The account number.
    uint32_t id;
    /// The balance, in the smallest currency unit.
    int64_t balance;
};
WORLDLINE_ROW(Account, id, balance);

inline worldline::Table<Account> account{"account", worldline::Public, worldline::primary_key(&Account::id)};

static void bump(uint32_t id) {
    auto by_id = account.by(&Account::id);
    if (auto row = by_id.find(id)) {
        row->balance += 1;
        by_id.update(*row);
    }
}

/// Opens accounts `0..n`, each with `balance`.
WORLDLINE_REDUCER(seed, (uint32_t, n), (int64_t, balance)) {
    for (uint32_t id = 0; id < n; ++id) account.insert(Account{id, balance});
    return {};
}

/// Moves `amount` from account `from` to account `to`.
WORLDLINE_REDUCER(transfer, (uint32_t, from), (uint32_t, to), (int64_t, amount)) {
    if (amount <= 0) return "the amount must be positive, got " + std::to_string(amount);
    if (from == to)
        return "cannot transfer from account " + std::to_string(from) + " to the same account";
    auto by_id = account.by(&Account::id);
    auto source = by_id.find(from);
    if (!source) return "no account " + std::to_string(from);
    auto target = by_id.find(to);
    if (!target) return "no account " + std::to_string(to);
    if (source->balance < amount)
        return "insufficient funds: account " + std::to_string(from) + " has " +
               std::to_string(source->balance) + ", needs " + std::to_string(amount);
    source->balance -= amount;
    target->balance += amount;
    by_id.update(*source);
    by_id.update(*target);
    return {};
}

/// Does nothing: measures the bare cost of a reducer call.
WORLDLINE_REDUCER(noop) { return {}; }

/// Adds 1 to account `id`, then traps.
WORLDLINE_REDUCER(panic_after_write, (uint32_t, id)) {
    bump(id);
    worldline::panic("boom");
}

/// Adds 1 to account `id`, then returns an error.
WORLDLINE_REDUCER(fail_after_write, (uint32_t, id)) {
    bump(id);
    return "failed on purpose after writing";
}

/// Loops forever; the host must stop it at the deadline.
WORLDLINE_REDUCER(spin) {
    volatile uint64_t x = ctx.rng().next_u64();
    for (;;) x = x * 6364136223846793005ull + 1;
}

/// Allocates and touches `mb` MiB and keeps it.
WORLDLINE_REDUCER(hog_memory, (uint32_t, mb)) {
    auto* kept = new std::vector<std::vector<uint8_t>>();
    for (uint32_t i = 0; i < mb; ++i) kept->emplace_back(size_t{1} << 20, uint8_t{1});
    return {};
}

/// Inserts an account with an id that exists: the insert traps.
WORLDLINE_REDUCER(insert_duplicate, (uint32_t, id)) {
    bump(id);
    account.insert(Account{id, 0});
    return {};
}
