//! The player page and its script and style, built into the binary. The page's URL field is
//! filled with the default camera (the demo camera's URL, when it runs).

use super::http::Response;
use crate::ice::{self, IceServerConfig};

const INDEX_HTML: &str = include_str!("../../static/index.html");
const CAMGATE_JS: &str = include_str!("../../static/camgate.js");
const PLAYER_CSS: &str = include_str!("../../static/player.css");

/// The file at `route`, if it is one of the player's.
pub(super) fn get(route: &str, default_url: &str, ice: &[IceServerConfig]) -> Option<Response> {
    let r = match route {
        "/" | "/index.html" => {
            // Each page load is a viewer session: its own TURN credentials.
            let servers = ice::mint(ice, &ice::session_name(), ice::unix_now());
            let json = serde_json::to_string(&servers).unwrap_or_else(|_| "[]".into());
            let page = INDEX_HTML
                .replace("{{DEFAULT_URL}}", &html_escape(default_url))
                .replace("{{ICE_SERVERS}}", &html_escape(&json));
            // (Every response is `Cache-Control: no-store`: the credentials are not kept.)
            Response::new(200, "text/html; charset=utf-8", page)
        }
        "/camgate.js" => Response::new(200, "text/javascript; charset=utf-8", CAMGATE_JS),
        "/player.css" => Response::new(200, "text/css; charset=utf-8", PLAYER_CSS),
        _ => return None,
    };
    Some(r)
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
