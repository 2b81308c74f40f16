//! What serves each TCP connection: key validation (`GET /auth`, every request of every game
//! client) answered directly, everything else through the router.
//!
//! The fast path does what the router would do for that route (the [`guarded`] middleware, the
//! [`Player`] extractor, the [`routes::auth::validate`] handler, with the same code) minus
//! the machinery around it: the route lookup, the middleware's boxed `Next`, the extractor
//! plumbing and, above all, the per-request `ConnectInfo` extension (a map allocated for every
//! request) — the peer address is known to the connection. The router keeps its `GET /auth`
//! route, so the two cannot disagree on what the route is, only on how it is reached; the API
//! tests drive both (every `GET /auth` in them goes through this path).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper::body::Incoming;
use tower_service::Service as _;

use super::extract::{Authenticated, Player};
use super::{guarded, routes, AppState, RequestIds};

/// Makes a [`Connection`] for each accepted TCP connection (`super::server` calls it).
#[derive(Clone)]
pub struct Connections {
    router: Router,
    state: AppState,
    ids: RequestIds,
}

impl Connections {
    pub fn new(state: AppState) -> Self {
        Self {
            router: super::router(state.clone()),
            state,
            ids: RequestIds::new(),
        }
    }

    /// The service of a connection from `peer`.
    pub fn connection(&self, peer: SocketAddr) -> Connection {
        Connection {
            peer,
            make: self.clone(),
        }
    }
}

/// The service of one connection: knows its peer.
#[derive(Clone)]
pub struct Connection {
    peer: SocketAddr,
    make: Connections,
}

type Answer = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl hyper::service::Service<hyper::Request<Incoming>> for Connection {
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    fn call(&self, req: hyper::Request<Incoming>) -> Answer {
        let mut req: Request = req.map(Body::new);
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
        // A clone is a reference count: the router is an `Arc` inside, always ready.
        Box::pin(self.make.router.clone().call(req))
    }
}

/// `GET /auth`: the [`Player`] extractor and the handler, as the router runs them (a service
/// key is refused with 403 `Forbidden` here as on the router's route).
async fn validate(req: Request, state: &AppState, peer: SocketAddr) -> Response {
    let (parts, _body) = req.into_parts();
    let player = Authenticated::from_headers(&parts.headers, peer.ip(), state)
        .await
        .and_then(|auth| Player::admit(auth, "/auth"));
    match player {
        Ok(player) => routes::auth::validate(player).await,
        Err(e) => e.into_response(),
    }
}
