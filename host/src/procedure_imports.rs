//! The host side of the 0.2.0 `transaction` and `http` imports. A
//! procedure's instance opens transactions ([`crate::procedure_tx`]) and
//! sends requests ([`crate::procedure_http`]); reducers and `describe` get
//! `not-a-procedure` and `not-allowed-here`: they stay transactional and
//! replayable.

use crate::bindings::v2::worldline::module::{http, transaction};
use crate::state::HostState;

type HostResult<T> = wasmtime::Result<T>;

impl transaction::Host for HostState {
    fn begin(&mut self) -> HostResult<Result<i64, transaction::TxError>> {
        Ok(self.tx_begin())
    }

    fn commit(&mut self) -> HostResult<Result<(), transaction::TxError>> {
        Ok(self.tx_commit())
    }

    fn rollback(&mut self) -> HostResult<Result<(), transaction::TxError>> {
        Ok(self.tx_rollback())
    }
}

impl http::Host for HostState {
    fn send(
        &mut self,
        request: http::Request,
    ) -> HostResult<Result<http::Response, http::HttpError>> {
        Ok(self.http_send(request))
    }
}
