//! The largest request the service takes, refused in the server's own words.
//!
//! tonic would refuse an oversized message itself, but with its own message
//! ("decoded message length too large") and only past 4 MiB. This layer reads the
//! length each gRPC message declares in its 5-byte prefix and refuses one over the
//! limit before anything decodes it, saying what is allowed, on every transport.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, BodyStream, StreamBody};
use tokio_stream::StreamExt;
use tonic::{Status, body::Body, server::NamedService};
use tower::Service;

use super::convert::MAX_PROMPT_BYTES;

/// The largest request message: a prompt of the largest size with room to spare
/// for every other field.
pub const MAX_REQUEST_BYTES: usize = 2 * 1024 * 1024;

/// Wraps a gRPC service, refusing request messages over `MAX_REQUEST_BYTES`.
#[derive(Clone)]
pub struct RequestLimit<S>(pub S);

impl<S: NamedService> NamedService for RequestLimit<S> {
    const NAME: &'static str = S::NAME;
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S> Service<http::Request<Body>> for RequestLimit<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        // The clone that was made ready is the one to call.
        let clone = self.0.clone();
        let mut inner = std::mem::replace(&mut self.0, clone);
        Box::pin(async move {
            let (parts, mut body) = request.into_parts();
            // The first message's prefix: a compression flag and a 4-byte length.
            let mut head = BytesMut::new();
            let mut ended = false;
            while head.len() < 5 && !ended {
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Some(data) = frame.data_ref() {
                            head.extend_from_slice(data);
                        }
                    }
                    // Let tonic report a broken body as it would.
                    Some(Err(_)) | None => ended = true,
                }
            }
            if head.len() >= 5 {
                let declared = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
                if declared > MAX_REQUEST_BYTES {
                    return Ok(too_large(declared).into_http());
                }
            }
            let head = first_frame(Bytes::from(head));
            let rest = BodyStream::new(body);
            let body = Body::new(StreamBody::new(head.chain(rest)));
            inner.call(http::Request::from_parts(parts, body)).await
        })
    }
}

/// The bytes read so far, as the first frame of the body handed on.
fn first_frame(
    head: Bytes,
) -> impl tokio_stream::Stream<Item = Result<http_body::Frame<Bytes>, tonic::Status>> {
    tokio_stream::iter((!head.is_empty()).then(|| Ok(http_body::Frame::data(head))))
}

fn too_large(declared: usize) -> Status {
    Status::invalid_argument(format!(
        "the request is {declared} bytes, more than the {MAX_REQUEST_BYTES} this server takes: \
         a prompt must be at most {MAX_PROMPT_BYTES} bytes (1 MiB)"
    ))
}
