//! Navigation probes for the desktop app's sign-in window, off unless a test turns them on
//! ([`crate::SimHandle::set_navigation_probes`]). With them on, the sign-in page carries what
//! real sign-in pages carry and the window must handle: a frame from another origin (here the
//! API's; a captcha's or an identity provider's on a real page), which is the page's to load; a
//! script that sends the window to that origin by itself once the frame has loaded, which the
//! window must refuse; and a link there ("Help"), which a click opens in the user's browser.
//! The page says what happened in elements tests read (`#probe-frame-status`,
//! `#probe-away-status`).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State as AxState;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::pages::escape;
use crate::state::State;

/// The frame's page, on the API's origin.
pub const FRAME: &str = "/sim/probes/frame";
/// Where the sign-in page goes by itself.
pub const AWAY: &str = "/sim/probes/away";
/// Where its link goes.
pub const HELP: &str = "/sim/probes/help";

/// What the frame posts to the sign-in page once it has loaded.
const FRAME_LOADED: &str = "probe-frame-loaded";

/// The block the sign-in page ends with when the probes are on; `origin` is the API's.
pub fn block(origin: &str) -> String {
    // A JavaScript string inside <script>, where HTML's escapes do not apply: JSON's syntax is
    // JavaScript's, and no `<` may close the element.
    let js = |s: &str| {
        serde_json::Value::from(s)
            .to_string()
            .replace('<', "\\u003c")
    };
    format!(
        "<div id=\"probes\" style=\"margin-top:20px;font-size:13px\">\
         <iframe id=\"probe-frame\" title=\"A frame from another origin\" src=\"{frame}\" \
         style=\"width:100%;height:48px;border:1px dashed var(--border);border-radius:8px\"></iframe>\
         <p class=\"who\">Frame: <span id=\"probe-frame-status\">loading</span>; \
         going away by itself: <span id=\"probe-away-status\">not yet</span></p>\
         <p><a id=\"probe-help\" href=\"{help}\">Help with signing in</a></p>\
         <script>addEventListener('message', (e) => {{\
         if (e.origin !== {origin_js} || e.data !== {loaded}) return;\
         document.getElementById('probe-frame-status').textContent = 'loaded';\
         document.getElementById('probe-away-status').textContent = 'asked';\
         location.assign({away});\
         }});</script></div>",
        frame = escape(&format!("{origin}{FRAME}")),
        help = escape(&format!("{origin}{HELP}")),
        origin_js = js(origin),
        loaded = js(FRAME_LOADED),
        away = js(&format!("{origin}{AWAY}")),
    )
}

/// The probes' pages, served on the API's origin while the probes are on.
pub fn router(state: Arc<State>) -> Router {
    Router::new()
        .route(FRAME, get(frame))
        .route(AWAY, get(away))
        .route(HELP, get(help))
        .with_state(state)
}

fn page(state: &State, html: String) -> Response {
    if state.navigation_probes.load(Ordering::SeqCst) {
        Html(html).into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

async fn frame(AxState(state): AxState<Arc<State>>) -> Response {
    page(
        &state,
        format!(
            "<!doctype html><meta charset=\"utf-8\"><body style=\"margin:6px;font:13px system-ui\">\
             <span id=\"frame-says\">A frame from another origin, loaded in the page</span>\
             <script>parent.postMessage({}, '*');</script></body>",
            serde_json::Value::from(FRAME_LOADED)
        ),
    )
}

async fn away(AxState(state): AxState<Arc<State>>) -> Response {
    page(
        &state,
        heading("away", "A page the sign-in window must not show"),
    )
}

async fn help(AxState(state): AxState<Arc<State>>) -> Response {
    page(&state, heading("help", "Help with signing in"))
}

/// A page that is only a heading, `#id`.
fn heading(id: &str, text: &str) -> String {
    format!(
        "<!doctype html><meta charset=\"utf-8\"><title>{text}</title><h1 id=\"{id}\">{text}</h1>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_block_points_at_the_origin_it_is_given() {
        let b = block("http://127.0.0.1:4100");
        assert!(
            b.contains("src=\"http://127.0.0.1:4100/sim/probes/frame\""),
            "{b}"
        );
        assert!(
            b.contains("href=\"http://127.0.0.1:4100/sim/probes/help\""),
            "{b}"
        );
        assert!(b.contains(r#"e.origin !== "http://127.0.0.1:4100""#), "{b}");
        let odd = block("http://x</script><script>alert(1)//");
        assert!(!odd.contains("</script><script>alert"), "{odd}");
    }
}
