//! Requests of the HTTP API, run on the database's thread between client
//! messages: describe, call with JSON arguments, SQL, logs, hot swap, stop.

use std::collections::{HashMap, HashSet};

use serde_json::Value;
use tokio::sync::oneshot;
use worldline_host::datastore::{ModuleSchema, ProcedureSchema};
use worldline_host::datastore::{json_to_args, row_to_json};
use worldline_host::outbound::AllowList;
use worldline_host::{CallContext, CallError, Identity, PreparedModule, SwapPolicy, quoted_name};
use worldline_subscriptions::{CompiledQuery, QueryId, SubscriptionEngine};
use worldline_transport::http_api::{CallResult, LogLine, SqlResult, SqlTable};
use worldline_transport::{ServerMessage, TableRows};

use super::{Actor, ConnKey, OnceError, QuerySet, compile_query};
use crate::api::ApiError;

/// Subscribed queries compiled against a new schema, by whether the client
/// is the owner and their SQL: the query, or why it no longer compiles.
#[derive(Default)]
struct Recompiled {
    /// For clients other than the owner (0) and for the owner (1).
    by_client: [HashMap<String, Result<CompiledQuery, String>>; 2],
}

impl Recompiled {
    /// `sql` as compiled for the owner (`owner`) or another client, if it was.
    fn get(&self, sql: &str, owner: bool) -> Option<&Result<CompiledQuery, String>> {
        self.by_client[usize::from(owner)].get(sql)
    }

    /// `sql` compiled against `schema` for the owner (`owner`) or another
    /// client: compiled the first time it is asked for, then kept.
    fn compiled(
        &mut self,
        sql: &str,
        owner: bool,
        schema: &ModuleSchema,
    ) -> &Result<CompiledQuery, String> {
        let compiled = &mut self.by_client[usize::from(owner)];
        if !compiled.contains_key(sql) {
            compiled.insert(sql.to_owned(), compile_query(sql, schema, owner));
        }
        &compiled[sql]
    }
}

/// The answer to an admin request.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, ApiError>>;

/// What the HTTP API asks of a database.
pub(crate) enum Admin {
    /// The schema and owner.
    Describe {
        /// Where the answer goes.
        reply: oneshot::Sender<Description>,
    },
    /// Runs a reducer with JSON arguments; answered once durable. If
    /// `reducer` names a procedure instead, answered at once with its
    /// signature, for the caller to run it (procedures do not run on the
    /// database's thread).
    Call {
        /// Who calls.
        caller: Identity,
        /// The reducer's name.
        reducer: String,
        /// The arguments: an array, an object by parameter name, or a lone value.
        args: Value,
        /// Where the answer goes.
        reply: Reply<CallAnswer>,
    },
    /// Runs a `SELECT` once; answered once what it read is durable.
    Sql {
        /// Who asks; `None` for an anonymous request (public tables only).
        caller: Option<Identity>,
        /// The query.
        query: String,
        /// The most bytes of rows it may answer with, in their binary
        /// encoding and as JSON: the server's `max_message_bytes`.
        max_bytes: usize,
        /// Where the answer goes: the JSON body, a [`SqlResult`].
        reply: Reply<Vec<u8>>,
    },
    /// Module log lines from position `from` on.
    Logs {
        /// Lines with `seq >= from` are returned.
        from: u64,
        /// Where the answer goes.
        reply: oneshot::Sender<Vec<LogLine>>,
    },
    /// Replaces the module in place, keeping data and connections.
    Swap {
        /// The new module, compiled beforehand off the database's thread.
        module: Box<PreparedModule>,
        /// A new HTTP allow-list for the database's procedures, stored once
        /// the swap is made; `None` keeps the current one.
        http_allow: Option<AllowList>,
        /// Where the answer goes: the schema changes applied.
        reply: Reply<Vec<String>>,
    },
    /// Disconnects every client and ends the thread (the database is being deleted).
    Stop {
        /// Told to every client.
        reason: String,
    },
}

impl Admin {
    /// Roughly how many bytes the request holds while it waits.
    pub(super) fn bytes(&self) -> usize {
        match self {
            // JSON arguments arrive in a body of at most 1 MiB; their text
            // length is a fair measure of what the parsed value holds.
            Admin::Call { reducer, args, .. } => reducer.len() + args.to_string().len(),
            Admin::Sql { query, .. } => query.len(),
            Admin::Swap { module, .. } => module.wasm().len(),
            Admin::Stop { reason } => reason.len(),
            Admin::Describe { .. } | Admin::Logs { .. } => 0,
        }
    }
}

/// The answer to [`Admin::Call`].
pub(crate) enum CallAnswer {
    /// The reducer committed.
    Committed(CallResult),
    /// The name is a procedure's: its signature.
    Procedure(ProcedureSchema),
}

/// A database's schema and owner.
pub(crate) struct Description {
    /// Tables and reducers.
    pub(crate) schema: ModuleSchema,
    /// Who owns the database.
    pub(crate) owner: Identity,
    /// The hosts its procedures may send HTTP requests to.
    pub(crate) http_allow: AllowList,
    /// Why it stopped serving while the server ran (its commit log
    /// failed), if it did: it serves nothing until the server restarts.
    pub(crate) stopped: Option<String>,
    /// Why it refuses calls for now, if it does (its module trapped and
    /// could not be restarted): reads and subscriptions go on.
    pub(crate) refusing_calls: Option<String>,
}

impl Actor {
    /// Runs one admin request.
    pub(super) fn admin(&mut self, request: Admin) {
        match request {
            Admin::Describe { reply } => {
                let _ = reply.send(Description {
                    schema: self.database.schema().clone(),
                    owner: self.database.owner(),
                    http_allow: self.database.http_allow().clone(),
                    stopped: self.stopped.clone(),
                    refusing_calls: self.database.unavailable().map(str::to_owned),
                });
            }
            Admin::Call {
                caller,
                reducer,
                args,
                reply,
            } => self.call_json(caller, &reducer, &args, reply),
            Admin::Sql {
                caller,
                query,
                max_bytes,
                reply,
            } => {
                if reply.is_closed() {
                    // Its client has gone (a read changes nothing): not run.
                    return;
                }
                let result = self.sql(caller, &query, max_bytes);
                // What it read goes out once durable; if the commit log
                // fails first, it may have read what a restart will not have.
                self.after_durable_read(
                    self.newest,
                    Box::new(move |durable| {
                        let _ = reply.send(durable.map_err(ApiError::unavailable).and(result));
                    }),
                );
            }
            Admin::Logs { from, reply } => {
                let _ = reply.send(self.log_lines(from));
            }
            Admin::Swap {
                module,
                http_allow,
                reply,
            } => {
                let _ = reply.send(self.swap(*module, http_allow));
            }
            Admin::Stop { reason } => {
                tracing::info!("{reason}");
                // What ran before goes out first, once durable.
                self.flush();
                self.disconnect_all(reason);
                self.finished = true;
            }
        }
    }

    fn call_json(
        &mut self,
        caller: Identity,
        reducer: &str,
        args: &Value,
        reply: Reply<CallAnswer>,
    ) {
        let schema = self.database.schema();
        if let Some(procedure) = schema.procedure_id(reducer) {
            let signature = schema.procedures[procedure].clone();
            let _ = reply.send(Ok(CallAnswer::Procedure(signature)));
            return;
        }
        let Some(id) = schema.reducer_id(reducer) else {
            let error = ApiError::bad_request(format!(
                "no reducer or procedure named `{}`",
                quoted_name(reducer)
            ))
            .with_hint("`worldline describe` lists the reducers and procedures");
            let _ = reply.send(Err(error));
            return;
        };
        let bytes = match json_to_args(&schema.reducers[id].params, args) {
            Ok(bytes) => bytes,
            Err(e) => {
                let message = format!("invalid arguments for reducer `{reducer}`: {e}");
                let error = ApiError::bad_request(message)
                    .with_hint("`worldline describe` lists each reducer's parameters and types");
                let _ = reply.send(Err(error));
                return;
            }
        };
        match self.run_reducer(reducer, &bytes, CallContext::new(caller)) {
            Ok(ran) => {
                let result = CallResult {
                    duration_micros: ran.duration_micros,
                    value: None,
                };
                self.after_durable(
                    ran.offset,
                    Box::new(move |durable| {
                        let answer = durable
                            .map(|()| CallAnswer::Committed(result))
                            .map_err(ApiError::outcome_unknown);
                        let _ = reply.send(answer);
                    }),
                );
            }
            Err(e) => {
                let error = match e {
                    CallError::NoSuchReducer(_)
                    | CallError::IsAProcedure(_)
                    | CallError::LifecycleReducer(_)
                    | CallError::InvalidArguments { .. } => ApiError::bad_request(e.to_string()),
                    CallError::ScheduledReducer { .. } => ApiError::forbidden(e.to_string()),
                    CallError::Unavailable(_) => ApiError::unavailable(e.to_string()),
                    CallError::OutcomeUnknown(_) => ApiError::outcome_unknown(e.to_string()),
                    _ => ApiError::reducer_failed(format!("the reducer failed: {e}")),
                };
                let _ = reply.send(Err(error));
            }
        }
    }

    fn sql(
        &self,
        caller: Option<Identity>,
        query: &str,
        max_bytes: usize,
    ) -> Result<Vec<u8>, ApiError> {
        // #9 item 6: after a commit-log failure the tables may hold
        // transactions that are not durable; they are not served.
        if let Some(reason) = self.unreadable() {
            return Err(ApiError::unavailable(reason));
        }
        let owner = caller == Some(self.database.owner());
        let (table, rows) = self
            .query_once(query, owner, max_bytes)
            .map_err(|e| match e {
                OnceError::Query(e) => ApiError::query(e),
                e @ (OnceError::TooLarge(_) | OnceError::TooMuchWork) => {
                    ApiError::bad_request(e.to_string())
                }
            })?;
        let table = &self.database.schema().tables[table];
        let columns: Vec<String> = (0..table.columns.fields.len())
            .map(|c| table.column_name(c))
            .collect();
        // The body is written row by row, as a `SqlResult` serializes, and
        // held to `max_bytes`: a tree of JSON values for every row first
        // took some thirty times the rows' bytes (a byte of a `bytes` column
        // is a JSON number), 4.5 GB for a 60 MiB table.
        let too_large = || ApiError::bad_request(OnceError::TooLarge(max_bytes).to_string());
        let head = SqlResult {
            tables: vec![SqlTable {
                table: table.name.clone(),
                columns: columns.clone(),
                rows: Vec::new(),
            }],
        };
        let mut body = serde_json::to_vec(&head).map_err(|e| ApiError::internal(e.to_string()))?;
        // `...,"rows":[]}]}`: the rows go between the brackets.
        let tail = body.split_off(body.len() - "]}]}".len());
        for (i, row) in rows.iter().enumerate() {
            let mut object = row_to_json(&table.columns, row)
                .map_err(|e| ApiError::internal(format!("a stored row does not decode: {e}")))?;
            let values: Vec<Value> = columns
                .iter()
                .map(|name| {
                    let value = object.as_object_mut().and_then(|o| o.remove(name));
                    value.unwrap_or(Value::Null)
                })
                .collect();
            if i > 0 {
                body.push(b',');
            }
            serde_json::to_writer(&mut body, &values)
                .map_err(|e| ApiError::internal(e.to_string()))?;
            if body.len() > max_bytes {
                return Err(too_large());
            }
        }
        body.extend_from_slice(&tail);
        Ok(body)
    }

    fn log_lines(&self, from: u64) -> Vec<LogLine> {
        let log = self.database.log();
        let first = log.dropped();
        log.records()
            .enumerate()
            .map(|(position, record)| (first + position as u64, record))
            .filter(|(seq, _)| *seq >= from)
            .map(|(seq, record)| LogLine {
                seq,
                timestamp: record.timestamp.to_micros_since_epoch(),
                level: record.level.to_string(),
                message: record.message.clone(),
            })
            .collect()
    }

    /// Swaps the module, then compiles every subscription again against
    /// the new schema (table ids may have moved). A query the new schema
    /// no longer accepts ends its query set with a `SubscriptionError`.
    fn swap(
        &mut self,
        module: PreparedModule,
        http_allow: Option<AllowList>,
    ) -> Result<Vec<String>, ApiError> {
        if let Some(reason) = &self.stopped {
            return Err(ApiError::unavailable(reason.clone()));
        }
        let recompiled = self.recompile(module.schema());
        let ending = self.rows_of_sets_ended_by(&recompiled);
        let plan = self
            .database
            .hot_swap_prepared(module, SwapPolicy::Compatible)
            .map_err(ApiError::publish_refused)?;
        self.resubscribe_all(recompiled, ending);
        let mut changes: Vec<String> = plan.to_string().lines().map(str::to_owned).collect();
        if let Some(allow) = http_allow
            && &allow != self.database.http_allow()
        {
            let shown = allow_list_text(&allow);
            self.database.set_http_allow(allow).map_err(|e| {
                ApiError::internal(format!(
                    "the module was swapped, but its new HTTP allow-list could not be stored \
                     ({e}); the old list stays in force: publish again"
                ))
            })?;
            changes.push(format!("~ HTTP allowed: {shown}"));
        }
        Ok(changes)
    }

    /// Every subscribed query compiled against `schema`, the new module's:
    /// each distinct query once per kind of client (owner or not), however
    /// many connections hold it.
    fn recompile(&self, schema: &ModuleSchema) -> Recompiled {
        let owner = self.database.owner();
        let mut recompiled = Recompiled::default();
        for connection in self.connections.values() {
            let is_owner = connection.identity == owner;
            for sql in connection.query_sets.values().flat_map(|set| &set.sql) {
                recompiled.compiled(sql, is_owner, schema);
            }
        }
        recompiled
    }

    /// The query sets `schema` will no longer accept (a table made private,
    /// for a client other than the owner; a join on an index removed), by
    /// connection and set id, each with the rows it takes away from its
    /// client: those of its queries that no set staying holds, each query
    /// once per connection, as an `Unsubscribe` would. Read before the swap,
    /// while the old queries still match the old tables.
    fn rows_of_sets_ended_by(
        &self,
        recompiled: &Recompiled,
    ) -> HashMap<(ConnKey, u32), Vec<TableRows>> {
        let owner = self.database.owner();
        let mut ending = HashMap::new();
        for (key, connection) in &self.connections {
            let is_owner = connection.identity == owner;
            let accepted = |set: &QuerySet| {
                set.sql
                    .iter()
                    .all(|sql| recompiled.get(sql, is_owner).is_some_and(Result::is_ok))
            };
            let (staying, ended): (Vec<_>, Vec<_>) = connection
                .query_sets
                .iter()
                .partition(|(_, set)| accepted(set));
            let mut kept: HashSet<QueryId> = staying
                .iter()
                .flat_map(|(_, set)| set.ids.iter().copied())
                .collect();
            for (set_id, set) in ended {
                let taken: Vec<QueryId> = set
                    .ids
                    .iter()
                    .copied()
                    .filter(|id| kept.insert(*id))
                    .collect();
                ending.insert((*key, *set_id), self.current_rows(&taken));
            }
        }
        ending
    }

    /// Compiles every query set again after a swap. A set the new schema
    /// no longer accepts ends: its client gets `UnsubscribeApplied` with
    /// the rows `ending` says it held, then a `SubscriptionError` saying why.
    fn resubscribe_all(
        &mut self,
        mut recompiled: Recompiled,
        mut ending: HashMap<(ConnKey, u32), Vec<TableRows>>,
    ) {
        self.engine = SubscriptionEngine::default();
        self.subscribers.clear();
        self.query_tables.clear();
        let owner = self.database.owner();
        let keys: Vec<_> = self.connections.keys().copied().collect();
        for key in keys {
            let Some(connection) = self.connections.get_mut(&key) else {
                continue;
            };
            let is_owner = connection.identity == owner;
            let sets = std::mem::take(&mut connection.query_sets);
            for (set_id, set) in sets {
                let compiled = set
                    .sql
                    .iter()
                    .map(|sql| {
                        recompiled
                            .compiled(sql, is_owner, self.database.schema())
                            .clone()
                    })
                    .collect::<Result<Vec<_>, _>>();
                match compiled.map(|compiled| self.subscribe_compiled(key, compiled)) {
                    Ok(ids) => {
                        if let Some(connection) = self.connections.get_mut(&key) {
                            let sql = set.sql;
                            connection.query_sets.insert(set_id, QuerySet { ids, sql });
                        }
                    }
                    Err(message) => {
                        let tables = ending.remove(&(key, set_id)).unwrap_or_default();
                        self.send(
                            key,
                            &ServerMessage::UnsubscribeApplied {
                                query_set_id: set_id,
                                tables,
                            },
                        );
                        self.send(
                            key,
                            &ServerMessage::SubscriptionError {
                                query_set_id: set_id,
                                message: format!(
                                    "the module was updated and this query set ended: {message}"
                                ),
                            },
                        );
                    }
                }
            }
        }
    }
}

/// An allow-list as `describe` and publish show it: its text, or `none`.
pub(crate) fn allow_list_text(allow: &AllowList) -> String {
    if allow.is_empty() {
        "none".to_owned()
    } else {
        allow.to_string()
    }
}
