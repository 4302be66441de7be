//! The host side of the 0.2.0 `transaction` and `http` imports. Reducers
//! and `describe` get `not-a-procedure` and `not-allowed-here`: they stay
//! transactional and replayable.

use crate::bindings::v2::worldline::module::{http, transaction};
use crate::module_log::truncate_line;
use crate::state::HostState;

type HostResult<T> = wasmtime::Result<T>;

fn not_a_procedure<T>(call: &str) -> HostResult<Result<T, transaction::TxError>> {
    Ok(Err(transaction::TxError {
        kind: transaction::TxErrorKind::NotAProcedure,
        message: format!(
            "transaction.{call} is for procedures; a reducer runs in the transaction the \
             host opened for it"
        ),
    }))
}

impl transaction::Host for HostState {
    fn begin(&mut self) -> HostResult<Result<i64, transaction::TxError>> {
        not_a_procedure("begin")
    }

    fn commit(&mut self) -> HostResult<Result<(), transaction::TxError>> {
        not_a_procedure("commit")
    }

    fn rollback(&mut self) -> HostResult<Result<(), transaction::TxError>> {
        not_a_procedure("rollback")
    }
}

impl http::Host for HostState {
    fn send(
        &mut self,
        request: http::Request,
    ) -> HostResult<Result<http::Response, http::HttpError>> {
        let mut url = request.url;
        truncate_line(&mut url, 200);
        Ok(Err(http::HttpError {
            kind: http::HttpErrorKind::NotAllowedHere,
            message: format!(
                "{} {url}: outbound HTTP is for procedures only; reducers must stay \
                 deterministic and replayable",
                request.method
            ),
        }))
    }
}
