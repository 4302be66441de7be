//! `/v1/database...`: list, publish (create, hot swap or replace), describe,
//! delete, call a reducer with JSON arguments, and run SQL.

use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use worldline_host::datastore::{ModuleSchema, ProcedureSchema, json_to_args, value_to_json};
use worldline_host::outbound::{ALLOW_LIST_HINT, AllowList};
use worldline_host::{
    CallError, HostError, Identity, PreparedModule, UnavailableDatabase, check_database_name,
    quoted_name,
};
use worldline_transport::http_api::{
    CallResult, DatabaseInfo, MAX_COMPONENT_BYTES, PublishOutcome, Published,
};

use super::auth::{caller, required_caller};
use super::body::{CALL_OR_QUERY, COMPONENT, read_body};
use super::{ApiError, MAX_REQUEST_BYTES, ask, database, describe};
use crate::database_actor::{Admin, CallAnswer, Description, allow_list_text};
use crate::error::ServerError;
use crate::http_listener::Peer;
use crate::procedures::{ProcedureCall, call_procedure};
use crate::shared::Shared;

/// `GET /v1/database`: every database, by name.
pub(crate) async fn list(
    State(shared): State<Arc<Shared>>,
) -> Result<Json<Vec<DatabaseInfo>>, ApiError> {
    let mut databases: Vec<DatabaseInfo> = shared
        .unavailable_databases()
        .iter()
        .map(unavailable_info)
        .collect();
    for name in shared.database_names() {
        // A database deleted meanwhile is simply not listed.
        if let Ok(description) = describe(&shared, &name).await {
            databases.push(database_info(&name, &description));
        }
    }
    databases.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(databases))
}

/// `GET /v1/database/NAME`: the database's owner, tables and reducers.
pub(crate) async fn info(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
) -> Result<Json<DatabaseInfo>, ApiError> {
    if let Some(unavailable) = shared.unavailable(&name) {
        return Ok(Json(unavailable_info(&unavailable)));
    }
    let description = describe(&shared, &name).await?;
    Ok(Json(database_info(&name, &description)))
}

fn database_info(name: &str, description: &Description) -> DatabaseInfo {
    DatabaseInfo {
        name: name.to_owned(),
        owner: description.owner.to_string(),
        tables: description
            .schema
            .tables
            .iter()
            .map(|t| t.name.clone())
            .collect(),
        reducers: description
            .schema
            .reducers
            .iter()
            .map(|r| r.name.clone())
            .collect(),
        procedures: description
            .schema
            .procedures
            .iter()
            .map(|p| p.name.clone())
            .collect(),
        http_allow: allow_list_text(&description.http_allow),
        unavailable: match (&description.stopped, &description.refusing_calls) {
            (Some(reason), _) => Some(format!(
                "it stopped while the server ran: {reason}; it serves nothing until the server \
                 is restarted, which recovers exactly what is durable"
            )),
            (None, Some(reason)) => Some(format!(
                "it refuses calls for now: {reason}; reads and subscriptions go on"
            )),
            (None, None) => None,
        },
    }
}

/// What is known of a database that could not be recovered at startup.
fn unavailable_info(database: &UnavailableDatabase) -> DatabaseInfo {
    DatabaseInfo {
        name: database.name.clone(),
        owner: database.owner.map(|o| o.to_string()).unwrap_or_default(),
        tables: Vec::new(),
        reducers: Vec::new(),
        procedures: Vec::new(),
        http_allow: String::new(),
        unavailable: Some(database.reason.clone()),
    }
}

/// Checks that `caller` owns the unavailable database, to `action` it.
fn check_unavailable_owner(
    database: &UnavailableDatabase,
    caller: Identity,
    action: &str,
) -> Result<(), ApiError> {
    match database.owner {
        Some(owner) if owner == caller => Ok(()),
        Some(_) => Err(ApiError::not_owner(&database.name, action)),
        None => Err(
            ApiError::not_owner(&database.name, action).with_hint(format!(
                "its owner file could not be read, so no one can prove ownership over the API; \
             with the server stopped, remove databases/{} from the data directory",
                database.name
            )),
        ),
    }
}

/// `GET /v1/database/NAME/schema`: tables (columns, indexes, visibility) and reducers.
pub(crate) async fn schema(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
) -> Result<Json<ModuleSchema>, ApiError> {
    Ok(Json(describe(&shared, &name).await?.schema))
}

/// The query of `POST /v1/database/NAME`. An unknown parameter is
/// refused: a misspelled `delete_data` must not turn into a hot swap.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PublishOptions {
    /// Delete the database's data and create it afresh instead of migrating.
    #[serde(default)]
    delete_data: bool,
    /// The hosts the database's procedures may send HTTP requests to
    /// (`api.example.com,*.example.org:443`; empty for none). Left out,
    /// a new database allows none and an existing one keeps its list.
    #[serde(default)]
    allow_http: Option<String>,
}

impl PublishOptions {
    /// The allow-list asked for, if any, or why it is refused.
    fn http_allow(&self) -> Result<Option<AllowList>, ApiError> {
        self.allow_http
            .as_deref()
            .map(|text| {
                AllowList::parse(text)
                    .map_err(|e| ApiError::bad_request(e.to_string()).with_hint(ALLOW_LIST_HINT))
            })
            .transpose()
    }
}

/// `POST /v1/database/NAME` with a component as the body: creates the
/// database (the caller owns it), or, for its owner, swaps the module in
/// place (`?delete_data=true`: deletes it and creates it anew).
pub(crate) async fn publish(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    Path(name): Path<String>,
    options: Result<Query<PublishOptions>, QueryRejection>,
    headers: HeaderMap,
    upload: Body,
) -> Result<(StatusCode, Json<Published>), ApiError> {
    // The whole upload is read before any other answer, a malformed query
    // string's included: one sent while the client is still sending would
    // be lost to it (closing a connection with unread input resets it).
    let path = format!("/v1/database/{name}");
    let (wasm, _room) =
        read_body(&shared.uploads, &COMPONENT, peer.addr.ip(), upload, &path).await?;
    let Query(options) = options.map_err(|rejection| {
        ApiError::from_framework(
            rejection.status(),
            &Method::POST,
            &format!("/v1/database/{name}"),
            &rejection.body_text(),
            MAX_COMPONENT_BYTES,
        )
    })?;
    let caller = required_caller(&shared.authority, &headers, "publishing")?;
    check_database_name(&name).map_err(ApiError::publish_refused)?;
    let http_allow = options.http_allow()?;
    // Whoever may not publish here, or not under this name, is told so
    // before the component is compiled (checked again under the publish lock below).
    check_may_publish(&shared, &name, caller).await?;
    // Compile and describe first, without the server-wide publish lock, so
    // that a slow or hostile component holds up no one else's publish: a
    // hot swap or a new database uses it as it is.
    let module = prepare(&shared, wasm).await?;
    let _publishing = shared.publishing.lock().await;
    if let Some(unavailable) = shared.unavailable(&name) {
        // A database that could not be recovered can only be replaced:
        // its stored data cannot be carried over to a module it never ran with.
        check_unavailable_owner(&unavailable, caller, "publish to it")?;
        if !options.delete_data {
            return Err(ApiError::database_unavailable(&unavailable));
        }
        delete_files(&shared, &name).await?;
        let allow = http_allow.unwrap_or_default();
        create(&shared, &name, module, caller, allow).await?;
        let replaced = Published {
            name: name.clone(),
            owner: caller.to_string(),
            outcome: PublishOutcome::Replaced,
            changes: vec![],
        };
        return Ok((StatusCode::CREATED, Json(replaced)));
    }
    let existing = match shared.database(&name) {
        Some(_) => Some(describe(&shared, &name).await?),
        None => None,
    };
    let published = |outcome, changes| Published {
        name: name.clone(),
        owner: caller.to_string(),
        outcome,
        changes,
    };
    let Some(existing) = existing else {
        check_may_create(&shared, &name, caller)?;
        create(
            &shared,
            &name,
            module,
            caller,
            http_allow.unwrap_or_default(),
        )
        .await?;
        return Ok((
            StatusCode::CREATED,
            Json(published(PublishOutcome::Created, vec![])),
        ));
    };
    if existing.owner != caller {
        return Err(ApiError::not_owner(&name, "publish to it"));
    }
    if options.delete_data {
        // The data goes, the owner's grant stays unless it is replaced.
        let allow = http_allow.unwrap_or_else(|| existing.http_allow.clone());
        remove(&shared, &name, caller).await?;
        create(&shared, &name, module, caller, allow)
            .await
            .map_err(|e| {
                e.with_hint(format!(
                    "the database `{name}` and its data were deleted (delete_data) before this \
                     failed, and the new one was not created: the name is free; fix the \
                     module and publish again"
                ))
            })?;
        return Ok((
            StatusCode::CREATED,
            Json(published(PublishOutcome::Replaced, vec![])),
        ));
    }
    let handle = database(&shared, &name)?;
    let changes = ask(&handle, &name, |reply| Admin::Swap {
        module,
        http_allow,
        reply,
    })
    .await??;
    Ok((
        StatusCode::OK,
        Json(published(PublishOutcome::Updated, changes)),
    ))
}

/// Refuses `caller` publishing to `name` if the name holds a database
/// (available or not) that someone else owns, or holds none and `caller`
/// may not create databases here.
async fn check_may_publish(
    shared: &Arc<Shared>,
    name: &str,
    caller: Identity,
) -> Result<(), ApiError> {
    if let Some(unavailable) = shared.unavailable(name) {
        return check_unavailable_owner(&unavailable, caller, "publish to it");
    }
    if shared.database(name).is_some() {
        match describe(shared, name).await {
            Ok(existing) if existing.owner != caller => {
                return Err(ApiError::not_owner(name, "publish to it"));
            }
            Ok(_) => return Ok(()),
            // Deleted meanwhile: publishing creates it.
            Err(_) => {}
        }
    }
    check_may_create(shared, name, caller)
}

/// Refuses `caller` creating database `name` if the server names its
/// publishers and `caller` is not one of them.
fn check_may_create(shared: &Shared, name: &str, caller: Identity) -> Result<(), ApiError> {
    let publishers = &shared.config.publishers;
    if publishers.is_empty() || publishers.contains(&caller) {
        return Ok(());
    }
    Err(ApiError::forbidden(format!(
        "no database is named `{}`, and only this server's publishers may create one: \
         identity {caller} is not one of them",
        quoted_name(name)
    ))
    .with_hint("ask the server's operator to add your identity (`worldline start --publisher`)"))
}

/// Compiles and describes a module for a new database or a hot swap, off
/// the async threads; a database being swapped goes on serving meanwhile
/// (#10 item 3): only the switch runs on its thread.
async fn prepare(shared: &Arc<Shared>, wasm: Bytes) -> Result<Box<PreparedModule>, ApiError> {
    let engine = shared.engine.clone();
    tokio::task::spawn_blocking(move || {
        PreparedModule::prepare(&engine, wasm.to_vec()).map(Box::new)
    })
    .await
    .map_err(|e| ApiError::internal(format!("publishing stopped: {e}")))?
    .map_err(ApiError::publish_refused)
}

/// Creates and starts database `name` off the async threads (`init` runs).
async fn create(
    shared: &Arc<Shared>,
    name: &str,
    module: Box<PreparedModule>,
    owner: Identity,
    http_allow: AllowList,
) -> Result<(), ApiError> {
    let shared = shared.clone();
    let name = name.to_owned();
    let created = tokio::task::spawn_blocking(move || {
        shared.create_database(&name, *module, owner, &http_allow)
    })
    .await
    .map_err(|e| ApiError::internal(format!("publishing stopped: {e}")))?;
    created.map_err(|e| match e {
        ServerError::Host(e) => ApiError::publish_refused(e),
        e => ApiError::internal(e.to_string()),
    })
}

/// `DELETE /v1/database/NAME`: disconnects every client and deletes the
/// database and its data (owner only).
pub(crate) async fn delete(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let caller = required_caller(&shared.authority, &headers, "deleting a database")?;
    let _publishing = shared.publishing.lock().await;
    if let Some(unavailable) = shared.unavailable(&name) {
        check_unavailable_owner(&unavailable, caller, "delete it")?;
        delete_files(&shared, &name).await?;
        return Ok(StatusCode::NO_CONTENT);
    }
    if describe(&shared, &name).await?.owner != caller {
        return Err(ApiError::not_owner(&name, "delete it"));
    }
    remove(&shared, &name, caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Stops database `name` (owned by `owner`), waits for its thread to end,
/// and deletes its directory. If the files cannot be deleted, nothing was:
/// the database serves again (or, if it cannot, is listed as unavailable).
async fn remove(shared: &Arc<Shared>, name: &str, owner: Identity) -> Result<(), ApiError> {
    let (handle, thread) = shared
        .retire(name)
        .ok_or_else(|| ApiError::no_database(name))?;
    let reason = format!("database `{name}` was deleted");
    let _ = handle.admin(Admin::Stop { reason }).await;
    drop(handle);
    if let Some(thread) = thread {
        tokio::task::spawn_blocking(move || {
            let _ = thread.join();
        })
        .await
        .map_err(|e| ApiError::internal(format!("deleting stopped: {e}")))?;
    }
    let Err(error) = delete_files(shared, name).await else {
        return Ok(());
    };
    // #9 item 2: a deletion the disk refused leaves the database whole.
    let shared = shared.clone();
    let reopened = name.to_owned();
    let restored = tokio::task::spawn_blocking(move || shared.restore_database(&reopened, owner))
        .await
        .map_err(|e| ApiError::internal(format!("reopening stopped: {e}")))?;
    Err(match restored {
        Ok(()) => error.with_hint(
            "nothing was deleted and the database serves again; fix what the message names \
             (permissions, a read-only or failing disk) and delete it again",
        ),
        Err(unavailable) => error.with_hint(format!(
            "nothing was deleted, but the database could not be reopened and is unavailable \
             ({}); fix what the message names and delete it again",
            unavailable.reason
        )),
    })
}

/// Deletes the directory of database `name`, which no thread serves.
async fn delete_files(shared: &Arc<Shared>, name: &str) -> Result<(), ApiError> {
    let shared = shared.clone();
    let name = name.to_owned();
    tokio::task::spawn_blocking(move || shared.delete_database_files(&name))
        .await
        .map_err(|e| ApiError::internal(format!("deleting stopped: {e}")))?
        .map_err(|e| match e {
            ServerError::Host(HostError::NoSuchDatabase(name)) => ApiError::no_database(&name),
            e => ApiError::unavailable(e.to_string()).with_hint(
                "nothing was deleted; fix what the message names (permissions, a read-only or \
                 failing disk) and delete it again",
            ),
        })
}

/// `POST /v1/database/NAME/call/REDUCER` with JSON arguments: runs the
/// reducer as the caller and answers once the transaction is durable.
pub(crate) async fn call(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    Path((name, reducer)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<CallResult>, ApiError> {
    let path = format!("/v1/database/{name}/call/{reducer}");
    let (body, _room) =
        read_body(&shared.bodies, &CALL_OR_QUERY, peer.addr.ip(), body, &path).await?;
    let caller = required_caller(&shared.authority, &headers, "calling a reducer")?;
    let args = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Array(Vec::new())
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("the arguments are not valid JSON: {e}")))?
    };
    let handle = database(&shared, &name)?;
    let answer = ask(&handle, &name, |reply| Admin::Call {
        caller,
        reducer: reducer.clone(),
        args: args.clone(),
        reply,
    })
    .await??;
    match answer {
        CallAnswer::Committed(result) => Ok(Json(result)),
        CallAnswer::Procedure(signature) => {
            run_procedure(&shared, &name, caller, &signature, &args).await
        }
    }
}

/// Runs procedure `signature.name` with JSON arguments and returns its
/// value as JSON.
async fn run_procedure(
    shared: &Shared,
    database: &str,
    caller: Identity,
    signature: &ProcedureSchema,
    args: &Value,
) -> Result<Json<CallResult>, ApiError> {
    let procedure = &signature.name;
    let bytes = json_to_args(&signature.params, args).map_err(|e| {
        ApiError::bad_request(format!(
            "invalid arguments for procedure `{procedure}`: {e}"
        ))
        .with_hint("`worldline describe` lists each procedure's parameters and types")
    })?;
    let call = ProcedureCall {
        caller,
        connection_id: None,
        name: procedure.clone(),
        args: bytes,
    };
    let returned = call_procedure(shared, database, call)
        .await
        .map_err(procedure_error)?;
    // As on the wire (`PROTOCOL.md`, `ProcedureResult`): at most half of
    // `max_queued_bytes`, before the value is turned into JSON, which takes
    // many times its bytes in memory.
    let max = usize::try_from(shared.config.max_queued_bytes / 2).unwrap_or(usize::MAX);
    if returned.value.len() > max {
        return Err(ApiError::reducer_failed(format!(
            "the procedure failed: procedure `{procedure}` returned {} bytes, more than the \
             {max} bytes one answer may hold",
            returned.value.len()
        )));
    }
    let value = value_to_json(&returned.returns, &returned.value).map_err(|e| {
        ApiError::internal(format!(
            "procedure `{procedure}` returned a value that does not convert to JSON: {e}"
        ))
    })?;
    Ok(Json(CallResult {
        duration_micros: u64::try_from(returned.duration.as_micros()).unwrap_or(u64::MAX),
        value: Some(value),
    }))
}

/// The HTTP status of a failed procedure call.
fn procedure_error(error: CallError) -> ApiError {
    match error {
        CallError::Unavailable(_)
        | CallError::TooManyProcedures { .. }
        | CallError::ServerTooManyProcedures { .. }
        | CallError::InstancePoolFull(_) => ApiError::unavailable(error.to_string()),
        CallError::NoSuchDatabase(ref name) => ApiError::no_database(name),
        CallError::NoSuchProcedure(_) | CallError::InvalidProcedureArguments { .. } => {
            ApiError::bad_request(error.to_string())
        }
        CallError::OutcomeUnknown(_) => ApiError::outcome_unknown(error.to_string()),
        _ => ApiError::reducer_failed(format!("the procedure failed: {error}")),
    }
}

/// `POST /v1/database/NAME/sql` with a `SELECT` as the body. Private
/// tables are visible to the owner only.
pub(crate) async fn sql(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let path = format!("/v1/database/{name}/sql");
    let (body, _room) =
        read_body(&shared.bodies, &CALL_OR_QUERY, peer.addr.ip(), body, &path).await?;
    let query = String::from_utf8(body.into()).map_err(|e| {
        let text = format!("the query is not valid UTF-8: {}", e.utf8_error());
        ApiError::from_framework(
            StatusCode::BAD_REQUEST,
            &Method::POST,
            &path,
            &text,
            MAX_REQUEST_BYTES,
        )
    })?;
    let caller = caller(&shared.authority, &headers)?;
    let handle = database(&shared, &name)?;
    let max_bytes = shared.config.max_queued_bytes as usize;
    let result = ask(&handle, &name, |reply| Admin::Sql {
        caller,
        query,
        max_bytes,
        reply,
    })
    .await??;
    // The body is a `SqlResult`, written as JSON by the database; it counts
    // in the server's outgoing budget until written (or its client gone).
    shared
        .outgoing
        .room_for(result.len())
        .map_err(|shortage| ApiError::unavailable(shortage.to_string()))?;
    let body = Bytes::from_owner(shared.outgoing.payload(result));
    let json = [(header::CONTENT_TYPE, "application/json")];
    Ok((json, body).into_response())
}
