//! What serves each TCP connection: key validation (`GET /auth`, every request of every game
//! client) answered directly, everything else through the router.
//!
//! The fast path does what the router would do for that route (the [`guarded`] middleware, the
//! [`Authenticated`] extractor, the [`routes::auth::validate`] handler, with the same code) minus
//! the machinery around it: the route lookup, the middleware's boxed `Next`, the extractor
//! plumbing and, above all, the per-request `ConnectInfo` extension (a map allocated for every
//! request) — the peer address is known to the connection. The router keeps its `GET /auth`
//! route, so the two cannot disagree on what the route is, only on how it is reached; the API
//! tests drive both (every `GET /auth` in them goes through this path).

use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::{ConnectInfo, Request};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use axum::serve::IncomingStream;
use axum::Router;
use tokio::net::TcpListener;
use tower_service::Service;

use super::extract::Authenticated;
use super::{guarded, routes, AppState, RequestIds};

/// Makes a [`Connection`] for each accepted TCP connection; give it to `axum::serve`.
#[derive(Clone)]
pub struct MakeConnection {
    router: Router,
    state: AppState,
    ids: RequestIds,
}

impl MakeConnection {
    pub fn new(state: AppState) -> Self {
        Self {
            router: super::router(state.clone()),
            state,
            ids: RequestIds::new(),
        }
    }
}

impl Service<IncomingStream<'_, TcpListener>> for MakeConnection {
    type Response = Connection;
    type Error = Infallible;
    type Future = Ready<Result<Connection, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, stream: IncomingStream<'_, TcpListener>) -> Self::Future {
        ready(Ok(Connection {
            peer: *stream.remote_addr(),
            make: self.clone(),
        }))
    }
}

/// The service of one connection: knows its peer.
#[derive(Clone)]
pub struct Connection {
    peer: SocketAddr,
    make: MakeConnection,
}

type Answer = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl Service<Request> for Connection {
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request) -> Answer {
        if req.method() == Method::GET && req.uri().path() == "/auth" {
            let state = self.make.state.clone();
            let ids = self.make.ids.clone();
            let peer = self.peer;
            return Box::pin(async move {
                Ok(guarded(&ids, &state.metrics, "/auth", req, |req| {
                    validate(req, &state, peer)
                })
                .await)
            });
        }
        req.extensions_mut().insert(ConnectInfo(self.peer));
        Box::pin(self.make.router.call(req))
    }
}

/// `GET /auth`: the [`Authenticated`] extractor and the handler, as the router runs them.
async fn validate(req: Request, state: &AppState, peer: SocketAddr) -> Response {
    let (parts, _body) = req.into_parts();
    match Authenticated::from_headers(&parts.headers, peer.ip(), state).await {
        Ok(auth) => routes::auth::validate(auth).await,
        Err(e) => e.into_response(),
    }
}
