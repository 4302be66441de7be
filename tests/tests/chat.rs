//! The chat module through the host API: lifecycle reducers, auto-increment
//! ids, input validation, and the per-transaction delta.

use worldline_host::{CallContext, CallError, ConnectionId, Database, Timestamp};
use worldline_tests::{ALICE, BOB, Message, User, args, create_database, rows, test_engine};

fn chat() -> Database {
    create_database(&test_engine(), "chat")
}

fn user(db: &Database, who: worldline_host::Identity) -> Option<User> {
    rows::<User>(db, "user")
        .into_iter()
        .find(|u| u.identity == who.to_bytes())
}

#[test]
fn connect_and_disconnect_toggle_online() {
    let mut db = chat();
    let ctx = CallContext::new(ALICE).with_connection(ConnectionId::from_bytes([7; 16]));
    db.client_connected(ctx)
        .expect("connect")
        .expect("chat has a client_connected reducer");
    assert_eq!(
        user(&db, ALICE),
        Some(User {
            identity: ALICE.to_bytes(),
            name: None,
            online: true
        })
    );
    db.client_disconnected(ctx).expect("disconnect");
    assert!(!user(&db, ALICE).expect("the user row stays").online);
}

#[test]
fn lifecycle_reducers_cannot_be_called_by_name() {
    let mut db = chat();
    assert_eq!(
        db.call_reducer("client_connected", &[], CallContext::new(ALICE))
            .map(drop),
        Err(CallError::LifecycleReducer("client_connected".into()))
    );
    assert!(rows::<User>(&db, "user").is_empty());
}

#[test]
fn set_name_validates_and_upserts() {
    let mut db = chat();
    for empty in ["", "   "] {
        match db.call_reducer("set_name", &args(&(empty,)), CallContext::new(ALICE)) {
            Err(CallError::Failed(message)) => assert!(message.contains("empty"), "{message}"),
            other => panic!("an empty name was accepted: {other:?}"),
        }
    }
    assert!(rows::<User>(&db, "user").is_empty());
    db.call_reducer("set_name", &args(&("alice",)), CallContext::new(ALICE))
        .expect("set_name");
    db.call_reducer("set_name", &args(&("Alice",)), CallContext::new(ALICE))
        .expect("rename");
    let users = rows::<User>(&db, "user");
    assert_eq!(
        users.len(),
        1,
        "renaming must update, not insert: {users:?}"
    );
    assert_eq!(users[0].name.as_deref(), Some("Alice"));
}

// A wall clock set back (here: a transaction stamped an hour ahead of it)
// does not make the next transaction older: timestamps follow commit order.
#[test]
fn transaction_timestamps_never_go_back() {
    let mut db = chat();
    let ahead = Timestamp::from_micros_since_epoch(
        Timestamp::now().to_micros_since_epoch() + 3_600_000_000,
    );
    let ctx = CallContext {
        timestamp: Some(ahead),
        ..CallContext::new(ALICE)
    };
    db.call_reducer("send_message", &args(&("first",)), ctx)
        .expect("send_message");
    let next = db
        .call_reducer("send_message", &args(&("second",)), CallContext::new(BOB))
        .expect("send_message");
    assert_eq!(next.timestamp, ahead);
    let sent: Vec<i64> = rows::<Message>(&db, "message")
        .iter()
        .map(|m| m.sent)
        .collect();
    assert_eq!(sent, [ahead.to_micros_since_epoch(); 2]);
}

#[test]
fn messages_get_increasing_ids_sender_and_timestamp() {
    let mut db = chat();
    let at = Timestamp::from_micros_since_epoch(1_700_000_000_000_000);
    for (who, text) in [(ALICE, "hello"), (BOB, "hi alice"), (ALICE, "how are you?")] {
        let ctx = CallContext {
            timestamp: Some(at),
            ..CallContext::new(who)
        };
        let outcome = db
            .call_reducer("send_message", &args(&(text,)), ctx)
            .expect("send_message");
        let inserted: Vec<Message> = outcome.delta.tables[0]
            .inserts
            .iter()
            .map(|r| postcard::from_bytes(r).unwrap())
            .collect();
        assert_eq!(inserted.len(), 1);
        assert_eq!(inserted[0].text, text);
    }
    match db.call_reducer("send_message", &args(&("",)), CallContext::new(BOB)) {
        Err(CallError::Failed(message)) => assert!(message.contains("empty"), "{message}"),
        other => panic!("an empty message was accepted: {other:?}"),
    }
    let messages = rows::<Message>(&db, "message");
    assert_eq!(
        messages
            .iter()
            .map(|m| (m.id, m.sender, m.text.as_str(), m.sent))
            .collect::<Vec<_>>(),
        vec![
            (1, ALICE.to_bytes(), "hello", at.to_micros_since_epoch()),
            (2, BOB.to_bytes(), "hi alice", at.to_micros_since_epoch()),
            (
                3,
                ALICE.to_bytes(),
                "how are you?",
                at.to_micros_since_epoch()
            ),
        ]
    );
}

#[test]
fn schema_describes_tables_indexes_and_reducers() {
    let db = chat();
    let schema = db.schema();
    let message = &schema.tables[schema.table_id("message").expect("message table")];
    assert!(message.public);
    let pk = &message.indexes[message.primary_key.expect("message has a primary key")];
    assert!(pk.unique);
    assert_eq!(pk.columns, vec![message.column_id("id").unwrap()]);
    assert_eq!(message.auto_inc, vec![message.column_id("id").unwrap()]);
    assert!(
        message
            .indexes
            .iter()
            .any(|i| !i.unique && i.columns == vec![message.column_id("sender").unwrap()]),
        "sender has a btree index: {:?}",
        message.indexes
    );
    let set_name = &schema.reducers[schema.reducer_id("set_name").unwrap()];
    assert_eq!(set_name.params.fields.len(), 1);
    assert_eq!(set_name.params.fields[0].ty.to_string(), "string");
}
