//! Server-sent events exactly as LangGraph writes them: `event: NAME\r\ndata: JSON\r\n`
//! (`id: N\r\n` for resumable runs) and a blank line; `: heartbeat` every 5 s; no end event,
//! the stream just closes when the run ends.

use std::collections::VecDeque;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::sync::broadcast;

use crate::runs::events::{Frame, Subscription};

const HEARTBEAT: Duration = Duration::from_secs(5);

/// Encodes one event.
pub fn encode(id: u64, event: &str, data: &serde_json::Value, with_id: bool) -> Bytes {
    let mut text = format!("event: {event}\r\ndata: {data}\r\n");
    if with_id {
        text.push_str(&format!("id: {id}\r\n"));
    }
    text.push_str("\r\n");
    Bytes::from(text)
}

struct State {
    replay: VecDeque<Frame>,
    live: Option<broadcast::Receiver<Frame>>,
    modes: Option<Vec<String>>,
    with_ids: bool,
}

/// The response for a subscription: replayed events, then live ones until the run ends.
pub fn response(
    subscription: Subscription,
    with_ids: bool,
    location: Option<(String, String)>,
) -> Response {
    let state = State {
        replay: subscription.replay.into(),
        live: subscription.live,
        modes: subscription.modes,
        with_ids,
    };
    let stream = futures_util::stream::unfold(state, |mut state| async move {
        loop {
            let frame = match state.replay.pop_front() {
                Some(frame) => frame,
                None => match state.live.as_mut() {
                    None => return None,
                    Some(live) => match tokio::time::timeout(HEARTBEAT, live.recv()).await {
                        Err(_) => {
                            return Some((
                                Ok::<Bytes, std::io::Error>(Bytes::from_static(
                                    b": heartbeat\r\n\r\n",
                                )),
                                state,
                            ));
                        }
                        Ok(Ok(frame)) => frame,
                        Ok(Err(broadcast::error::RecvError::Lagged(skipped))) => {
                            tracing::warn!(skipped, "a slow stream client missed events");
                            continue;
                        }
                        Ok(Err(broadcast::error::RecvError::Closed)) => return None,
                    },
                },
            };
            match frame {
                Frame::Event { event, .. }
                    if state.modes.as_ref().is_some_and(|m| !m.contains(&event)) =>
                {
                    continue;
                }
                Frame::Event { id, event, data } => {
                    let bytes = encode(id, &event, &data, state.with_ids);
                    return Some((Ok(bytes), state));
                }
                Frame::End(_) => return None,
            }
        }
    });
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    if let Some((location, content_location)) = location {
        headers.extend(super::locations(Some(&location), &content_location));
    }
    (headers, Body::from_stream(stream)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn frames_use_crlf_like_langgraph() {
        assert_eq!(
            encode(0, "metadata", &json!({"run_id": "r", "attempt": 1}), false),
            Bytes::from("event: metadata\r\ndata: {\"run_id\":\"r\",\"attempt\":1}\r\n\r\n")
        );
        assert_eq!(
            encode(3, "values", &json!({}), true),
            Bytes::from("event: values\r\ndata: {}\r\nid: 3\r\n\r\n")
        );
    }
}
