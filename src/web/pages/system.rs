//! Boards, the daemon and the Pi, database backup, run-time settings.

use super::{Ctx, Method};
use crate::web::http::Resp;

/// Italian texts of this area (see `web::i18n`).
pub const IT: &[(&str, &str)] = &[];

/// The URLs of this area; `None` when the path is not one of them.
pub fn route(cx: &mut Ctx, method: Method, segments: &[&str]) -> Option<Resp> {
    let _ = (cx, method, segments);
    None
}
