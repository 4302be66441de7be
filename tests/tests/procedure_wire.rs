//! Procedure calls over the wire and the HTTP API (#12 item 4): a client
//! calls a procedure over QUIC and WebSocket and gets its value; the
//! transaction it commits reaches subscribers, before its answer; failures
//! are answers, not dropped connections; over HTTP the value is JSON.

use serde::Deserialize;
use worldline_client::ClientError;
use worldline_tests::live::{LiveServer, Transport};
use worldline_tests::process::Http;
use worldline_transport::ReducerStatus;

#[derive(Deserialize, Debug)]
struct Item {
    id: u32,
    sku: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_call_procedures_over_both_transports() {
    let live = LiveServer::start(&[("features", "features")]).await;
    for (round, transport) in Transport::BOTH.into_iter().enumerate() {
        let client = live.connect(transport, "features").await;
        let echoed: String = client
            .call_procedure("echo_proc", &("hello",))
            .await
            .unwrap_or_else(|e| panic!("{transport:?}: {e}"));
        assert_eq!(echoed, "hello", "{transport:?}");

        // The procedure's transaction reaches the caller's subscription
        // before the procedure's answer.
        client
            .subscribe(&["SELECT * FROM item"])
            .await
            .expect("subscribing");
        let sku = format!("from-{transport:?}");
        let count: u32 = client
            .call_procedure("proc_insert", &(0u32, sku.as_str()))
            .await
            .expect("proc_insert");
        assert_eq!(count as usize, round + 1, "{transport:?}");
        let items: Vec<Item> = client.rows("item").expect("rows");
        assert!(
            items.iter().any(|item| item.sku == sku && item.id > 0),
            "{transport:?}: {items:?}"
        );

        // Failures are answers; the connection goes on.
        match client.call_procedure::<_, String>("no_such", &()).await {
            Err(ClientError::ProcedureFailed(message)) => {
                assert!(
                    message.contains("no procedure named `no_such`"),
                    "{message}"
                )
            }
            other => panic!("{transport:?}: {other:?}"),
        }
        match client
            .call_procedure::<_, String>("echo_proc", &(7u8,))
            .await
        {
            Err(ClientError::ProcedureFailed(message)) => {
                assert!(message.contains("invalid arguments"), "{message}")
            }
            other => panic!("{transport:?}: {other:?}"),
        }
        match client.call_procedure::<_, ()>("proc_trap", &()).await {
            Err(ClientError::ProcedureFailed(message)) => {
                assert!(message.contains("proc_trap"), "{message}")
            }
            other => panic!("{transport:?}: {other:?}"),
        }
        let items: Vec<Item> = client.rows("item").expect("rows");
        assert!(
            !items.iter().any(|item| item.sku == "trap"),
            "the trapped transaction left a row: {items:?}"
        );
        // A procedure called as a reducer is told to call it as a procedure.
        let outcome = client
            .call("echo_proc", &("hello",))
            .await
            .expect("an answer");
        assert_eq!(
            outcome.status,
            ReducerStatus::Failed(
                "no reducer named `echo_proc`: `echo_proc` is a procedure; call it as one \
                 (`CallProcedure`)"
                    .into()
            ),
            "{transport:?}"
        );
        let again: String = client
            .call_procedure("echo_proc", &("still here",))
            .await
            .expect("the connection serves after failures");
        assert_eq!(again, "still here");
    }
    live.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_api_calls_procedures_with_json() {
    let live = LiveServer::start(&[("features", "features")]).await;
    let base = format!("http://{}", live.server().http_addr());
    let http = Http::new(&base, Some(&live.owner_token));
    let answer = tokio::task::block_in_place(|| {
        http.post_ok(
            "/v1/database/features/call/echo_proc",
            "application/json",
            br#"["json"]"#,
        )
    });
    assert_eq!(answer["value"], "json");
    assert!(answer["duration_micros"].is_u64(), "{answer}");

    let answer = tokio::task::block_in_place(|| {
        http.post_ok(
            "/v1/database/features/call/proc_insert",
            "application/json",
            br#"{"id": 0, "text": "over-http"}"#,
        )
    });
    assert_eq!(answer["value"], 1);

    let (status, text) = tokio::task::block_in_place(|| {
        http.post(
            "/v1/database/features/call/echo_proc",
            "application/json",
            b"[1, 2]",
        )
    })
    .expect("an answer");
    assert_eq!(status, 400, "{text}");
    assert!(
        text.contains("invalid arguments for procedure `echo_proc`"),
        "{text}"
    );

    let (status, text) = tokio::task::block_in_place(|| {
        http.post(
            "/v1/database/features/call/proc_trap",
            "application/json",
            b"",
        )
    })
    .expect("an answer");
    assert_eq!(status, 422, "{text}");
    assert!(text.contains("the procedure failed"), "{text}");

    // A scheduled reducer is the scheduler's and the owner's only.
    let stranger = tokio::task::block_in_place(|| Http::new_identity(&base));
    let (status, text) = tokio::task::block_in_place(|| {
        stranger.post(
            "/v1/database/features/call/on_schedule",
            "application/json",
            br#"[{"id": 1, "at": 0, "every": 0, "note": "sneaky"}]"#,
        )
    })
    .expect("an answer");
    assert_eq!(status, 403, "{text}");
    assert!(
        text.contains("only the database owner may call it"),
        "{text}"
    );

    let info = tokio::task::block_in_place(|| {
        let (status, text) = http
            .post(
                "/v1/database/features/sql",
                "text/plain",
                b"SELECT * FROM item",
            )
            .expect("an answer");
        assert_eq!(status, 200, "{text}");
        text
    });
    assert!(
        info.contains("over-http") && !info.contains("\"trap\""),
        "{info}"
    );
    live.shutdown().await;
}
