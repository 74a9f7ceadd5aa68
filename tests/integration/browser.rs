//! The panel in a real headless browser (Debian's Chromium over the DevTools protocol):
//! log in as a person would, see the dashboard follow a card tap without a reload, and
//! save screenshots of the main pages at phone and desktop widths
//! (`target/tmp/screenshots/*.png`) for a human to look at.

use crate::common::chrome::Chrome;
use crate::common::*;
use serde_json::Value;
use std::time::{Duration, Instant};

const PHONE: (u32, u32) = (390, 844);
const DESKTOP: (u32, u32) = (1280, 800);

#[test]
fn panel_in_a_real_browser() {
    let Some(mut c) = Chrome::start() else { return };
    let (_lab, d) = start_f();
    let base = format!("http://{}", d.panel);
    let first = d.admin_password.clone().expect("one-time password");

    c.viewport(PHONE.0, PHONE.1, true);
    c.goto(&format!("{base}/login"));
    c.screenshot("login-phone");
    c.viewport(DESKTOP.0, DESKTOP.1, false);
    c.screenshot("login-desktop");
    c.submit(&[("email", "admin@fabgate.local"), ("password", &first)]);
    c.wait_for("location.pathname === '/password'");
    c.screenshot("password-desktop");
    c.submit(&[
        ("current", &first),
        ("new", "correct horse 42"),
        ("repeat", "correct horse 42"),
    ]);
    c.wait_for("location.pathname === '/'");

    // Live update: mark this page, tap a card on board 1, the card changes in place.
    c.wait_for("document.getElementById('live-dot').classList.contains('on')");
    c.eval("window.__sameDocument = 'yes'");
    let board = d.board("1");
    let t0 = Instant::now();
    board.must(r#"{"action":"checkuser","uid":"aabbccd3"}"#);
    board.must(r#"{"action":"startuse", "uid":"aabbccd3"}"#);
    c.wait_for(r#"document.querySelector('[data-machine="1"]').textContent.includes('Carla')"#);
    let took = t0.elapsed();
    // Pushed, not the 30-second fallback refresh (a wide margin for a loaded CI machine).
    assert!(
        took < Duration::from_secs(5),
        "dashboard followed the tap after {took:?}"
    );
    assert_eq!(
        c.eval("window.__sameDocument"),
        Value::String("yes".into()),
        "the page was reloaded"
    );
    board.publish(r#"{"action":"alive","version":"hardware-rev0-it_IT,1.0.1","ip":"192.168.1.42","serial":"a0b1c2d3e4f5","heap":"183452"}"#);
    d.board("2").must(r#"{"action":"checkmachine"}"#);

    for (path, name) in [
        ("/", "dashboard"),
        ("/members", "members"),
        ("/members/3", "member"),
        ("/roles", "roles"),
        ("/unknown-cards", "unknown-cards"),
        ("/authorizations?machine=1", "authorizations"),
        ("/presence", "presence"),
        ("/machines", "machines"),
        ("/machines/4", "machine"),
        ("/machine-types", "machine-types"),
        ("/maintenance", "maintenance"),
        ("/uses", "history"),
        ("/exports", "exports"),
        ("/outbox", "outbox"),
        ("/system", "system"),
        ("/settings", "settings"),
    ] {
        c.viewport(DESKTOP.0, DESKTOP.1, false);
        c.goto(&format!("{base}{path}"));
        c.screenshot(&format!("{name}-desktop"));
        c.viewport(PHONE.0, PHONE.1, true);
        c.goto(&format!("{base}{path}"));
        c.screenshot(&format!("{name}-phone"));
        // Inline style attributes would be blocked by the CSP: the stylesheet does it all.
        assert_eq!(
            c.eval("document.querySelectorAll('[style]').length"),
            Value::from(0),
            "{path} has inline styles"
        );
        assert_eq!(
            c.eval("document.title.startsWith('404')"),
            Value::Bool(false),
            "{path} is missing"
        );
        // Nothing wider than the phone's screen: no horizontal scrolling of the page.
        let wide = c.eval("document.documentElement.scrollWidth <= window.innerWidth + 1");
        assert_eq!(
            wide,
            Value::Bool(true),
            "{path} scrolls sideways on a phone"
        );
    }
}
