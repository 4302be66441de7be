// The chat example: users who set a name and go online and offline, and
// the messages they send. The same module as guest-rust/examples/chat.
#include <worldline/worldline.hpp>

using worldline::Identity;
using worldline::Timestamp;

/// Someone who has connected or set a name.
struct User {
    /// Who they are.
    Identity identity;
    /// The name they chose, if any.
    std::optional<std::string> name;
    /// Whether they are connected now.
    bool online;
};
WORLDLINE_ROW(User, identity, name, online);

inline worldline::Table<User> user{"user", worldline::Public, worldline::primary_key(&User::identity)};

/// A chat message.
struct Message {
    /// Assigned in sending order.
    uint64_t id;
    /// Who sent it.
    Identity sender;
    /// When it was sent.
    Timestamp sent;
    /// What it says.
    std::string text;
};
WORLDLINE_ROW(Message, id, sender, sent, text);

inline worldline::Table<Message> message{
    "message",
    worldline::Public,
    worldline::primary_key(&Message::id),
    worldline::auto_inc(&Message::id),
    worldline::btree(&Message::sender),
    worldline::index("by_sender_sent", &Message::sender, &Message::sent),
};

/// `s` without leading and trailing whitespace.
static std::string trim(const std::string& s) {
    const char* space = " \t\n\v\f\r";
    size_t first = s.find_first_not_of(space);
    if (first == std::string::npos) return {};
    return s.substr(first, s.find_last_not_of(space) - first + 1);
}

/// Sets the caller's name.
WORLDLINE_REDUCER(set_name, (std::string, name)) {
    std::string trimmed = trim(name);
    if (trimmed.empty()) return "names must not be empty";
    auto by_identity = user.by(&User::identity);
    if (auto existing = by_identity.find(ctx.sender)) {
        existing->name = trimmed;
        by_identity.update(*existing);
    } else {
        user.insert(User{ctx.sender, trimmed, false});
    }
    return {};
}

/// Sends a message from the caller.
WORLDLINE_REDUCER(send_message, (std::string, text)) {
    if (trim(text).empty()) return "messages must not be empty";
    Message stored = message.insert(Message{0, ctx.sender, ctx.timestamp, text});
    worldline::log::info("message " + std::to_string(stored.id) + " from " + ctx.sender.to_hex());
    return {};
}

static void set_online(const worldline::ReducerContext& ctx, bool online) {
    auto by_identity = user.by(&User::identity);
    if (auto existing = by_identity.find(ctx.sender)) {
        existing->online = online;
        by_identity.update(*existing);
    } else {
        user.insert(User{ctx.sender, std::nullopt, online});
    }
}

/// Marks the caller online, creating their user row on first connect.
WORLDLINE_CLIENT_CONNECTED(client_connected) {
    set_online(ctx, true);
    return {};
}

/// Marks the caller offline.
WORLDLINE_CLIENT_DISCONNECTED(client_disconnected) {
    set_online(ctx, false);
    return {};
}
