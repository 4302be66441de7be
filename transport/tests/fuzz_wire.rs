//! Fuzzing the wire decoder (#9, "Fuzzing"): random bytes and mutated valid
//! messages, fed to the frame decoder, the message decoder and the
//! fragment reassembler, must come back as a message or a typed error —
//! never a panic — and decoding must never allocate much more than the
//! frame it reads.
//!
//! CI runs a few hundred cases per property. To fuzz longer, raise the
//! case count, e.g.
//! `PROPTEST_CASES=100000 cargo test --release -p worldline-transport --test fuzz_wire`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use proptest::prelude::*;
use serde_bytes::ByteBuf;
use worldline_transport::{
    ClientMessage, FrameDecoder, FrameError, PROTOCOL_VERSION, Reassembler, ReducerEvent,
    ReducerStatus, RowUpdate, ServerMessage, TableRows, TableUpdate, decode_message, encode_frame,
    encode_message, split_message,
};

/// Counts the largest single allocation made by this thread while armed.
struct Watching;

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Watching {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn note(size: usize) {
    // `try_with`: allocations during thread teardown are not watched.
    let _ = ARMED.try_with(|armed| {
        if armed.get() {
            LARGEST.with(|largest| largest.set(largest.get().max(size)));
        }
    });
}

#[global_allocator]
static ALLOCATOR: Watching = Watching;

/// Runs `f`, returning its result and the largest allocation it made.
fn watched<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|largest| largest.set(0));
    ARMED.with(|armed| armed.set(true));
    let result = f();
    ARMED.with(|armed| armed.set(false));
    (result, LARGEST.with(Cell::get))
}

/// What decoding may allocate beyond the input: serde preallocates at most
/// about 1 MiB for a sequence whose length it is told.
const SLACK: usize = 1 << 20;

fn client_messages() -> impl Strategy<Value = ClientMessage> {
    let text = "[a-z_ ]{0,12}";
    let bytes = proptest::collection::vec(any::<u8>(), 0..40).prop_map(ByteBuf::from);
    prop_oneof![
        (
            any::<u16>(),
            text,
            proptest::option::of("[A-Za-z0-9.]{0,30}")
        )
            .prop_map(|(version, database, token)| ClientMessage::Hello {
                version,
                database,
                token,
            }),
        (any::<u32>(), text, bytes.clone()).prop_map(|(request_id, reducer, args)| {
            ClientMessage::CallReducer {
                request_id,
                reducer,
                args,
            }
        }),
        (any::<u32>(), proptest::collection::vec(text, 0..4)).prop_map(
            |(query_set_id, queries)| ClientMessage::Subscribe {
                query_set_id,
                queries,
            }
        ),
        any::<u32>().prop_map(|query_set_id| ClientMessage::Unsubscribe { query_set_id }),
        (any::<u32>(), text)
            .prop_map(|(request_id, query)| ClientMessage::Query { request_id, query }),
        (text, bytes)
            .prop_map(|(reducer, args)| ClientMessage::CallReducerUnreliable { reducer, args }),
    ]
}

fn server_messages() -> impl Strategy<Value = ServerMessage> {
    let rows = proptest::collection::vec(
        proptest::collection::vec(any::<u8>(), 0..30).prop_map(ByteBuf::from),
        0..6,
    );
    prop_oneof![
        (any::<[u8; 32]>(), any::<[u8; 16]>(), any::<u32>()).prop_map(
            |(identity, connection_id, max)| ServerMessage::Welcome {
                version: PROTOCOL_VERSION,
                identity,
                token: "t".into(),
                connection_id,
                max_frame_bytes: max,
                max_message_bytes: max,
            }
        ),
        (any::<u32>(), rows.clone()).prop_map(|(query_set_id, rows)| {
            ServerMessage::SubscribeApplied {
                query_set_id,
                tables: vec![TableRows {
                    table: "t".into(),
                    rows,
                }],
            }
        }),
        (rows.clone(), rows, any::<Option<[u8; 16]>>(), any::<i64>()).prop_map(
            |(inserts, deletes, connection_id, timestamp)| ServerMessage::TransactionUpdate {
                tables: vec![TableUpdate {
                    table: "t".into(),
                    updates: vec![RowUpdate {
                        old: ByteBuf::from(vec![1]),
                        new: ByteBuf::from(vec![2]),
                    }],
                    inserts,
                    deletes,
                }],
                event: ReducerEvent {
                    caller: [3; 32],
                    connection_id,
                    reducer: "r".into(),
                    timestamp,
                    duration_micros: 5,
                },
            }
        ),
        (any::<u32>(), "[a-z ]{0,20}").prop_map(|(request_id, message)| {
            ServerMessage::ReducerResult {
                request_id,
                status: ReducerStatus::Failed(message),
                duration_micros: 1,
            }
        }),
        ("[a-z ]{0,20}", any::<bool>())
            .prop_map(|(message, fatal)| ServerMessage::Error { message, fatal }),
    ]
}

/// Flips, overwrites, inserts or removes bytes of `bytes`.
fn mutate(mut bytes: Vec<u8>, edits: &[(u16, u8, u8)]) -> Vec<u8> {
    for &(position, value, kind) in edits {
        let at = usize::from(position) % (bytes.len() + 1);
        match kind % 4 {
            0 if at < bytes.len() => bytes[at] ^= value | 1,
            1 if at < bytes.len() => bytes[at] = value,
            2 => bytes.insert(at, value),
            _ if at < bytes.len() => {
                bytes.remove(at);
            }
            _ => bytes.push(value),
        }
    }
    bytes
}

/// Decodes `bytes` as both kinds of message, checking the allocation bound.
fn decode_both(bytes: &[u8]) {
    let (_, largest) = watched(|| {
        let _ = decode_message::<ClientMessage>(bytes);
        let _ = decode_message::<ServerMessage>(bytes);
    });
    assert!(
        largest <= bytes.len() + SLACK,
        "decoding {} bytes allocated {largest} bytes at once",
        bytes.len()
    );
}

/// 256 cases unless `PROPTEST_CASES` says otherwise.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn random_bytes_decode_or_fail_with_a_typed_error(
        bytes in proptest::collection::vec(any::<u8>(), 0..512)
    ) {
        decode_both(&bytes);
    }

    #[test]
    fn mutated_messages_decode_or_fail_with_a_typed_error(
        message in client_messages(),
        reply in server_messages(),
        edits in proptest::collection::vec((any::<u16>(), any::<u8>(), any::<u8>()), 1..6),
    ) {
        // Unmutated, each round-trips.
        prop_assert_eq!(decode_message::<ClientMessage>(&encode_message(&message)), Ok(message.clone()));
        prop_assert_eq!(decode_message::<ServerMessage>(&encode_message(&reply)), Ok(reply.clone()));
        decode_both(&mutate(encode_message(&message), &edits));
        decode_both(&mutate(encode_message(&reply), &edits));
    }

    #[test]
    fn a_frame_stream_in_any_chunks_yields_frames_or_a_typed_error(
        messages in proptest::collection::vec(client_messages(), 1..5),
        edits in proptest::collection::vec((any::<u16>(), any::<u8>(), any::<u8>()), 0..4),
        chunk in 1usize..64,
        max_frame in 16u32..256,
    ) {
        let stream: Vec<u8> = messages.iter().flat_map(encode_frame).collect();
        let stream = mutate(stream, &edits);
        let mut decoder = FrameDecoder::new(max_frame);
        'feed: for piece in stream.chunks(chunk) {
            decoder.push(piece);
            loop {
                match decoder.next_frame() {
                    Ok(Some(frame)) => {
                        prop_assert!(frame.len() <= max_frame as usize);
                        decode_both(&frame);
                    }
                    Ok(None) => break,
                    Err(FrameError::TooLarge { len, max }) => {
                        prop_assert!(len > u64::from(max));
                        break 'feed;
                    }
                    Err(FrameError::Malformed(_)) => prop_assert!(false, "framing never says malformed"),
                }
            }
        }
    }

    #[test]
    fn mutated_fragments_reassemble_or_fail_with_a_typed_error(
        reply in server_messages(),
        max_frame in 64u32..128,
        edits in proptest::collection::vec((any::<u16>(), any::<u8>(), any::<u8>()), 0..4),
        target in any::<prop::sample::Index>(),
    ) {
        let whole = encode_message(&reply);
        let mut pieces: Vec<Vec<u8>> = split_message(&whole, max_frame).map(|p| p.into_owned()).collect();
        prop_assert!(pieces.iter().all(|p| p.len() <= max_frame as usize));
        let chosen = target.index(pieces.len());
        pieces[chosen] = mutate(std::mem::take(&mut pieces[chosen]), &edits);
        let mut reassembler = Reassembler::new(1 << 16);
        let mut out = Vec::new();
        for piece in &pieces {
            let Ok(message) = decode_message::<ServerMessage>(piece) else { break };
            match reassembler.accept(message) {
                Ok(Some(message)) => out.push(message),
                Ok(None) => {}
                Err(_) => break,
            }
        }
        if edits.is_empty() {
            prop_assert_eq!(out, vec![reply]);
        }
    }
}
